"""Generator family C: a physics-informed paramedian sagittal lumbar sweep.

Written independently of families A (phantom_sagittal.py) and B
(phantom_sag_b.py); numpy + scipy only at render time. The imaging kernels come
from the MUST ultrasound simulator: derive_psf_c.py runs pymust once and caches
in psf_c.npz the two-way RF pulse and the two-way lateral beam profiles (focused
transmit x dynamically focused receive) at 22 depths and 3 transmit foci, for
an L11-5v-like linear and a C5-2v-like convex array. Per frame this module:

  1. builds a reflectivity map in *beam space* (beams x RF samples along each
     beam; beams are parallel for a linear probe and radiate from a virtual
     apex for a convex one) from point scatterers fixed to the tissue: a
     deterministic integer hash of the tissue cell, so speckle moves with the
     probe. Scatterer density and a compound gamma texture (K-distributed,
     partially developed speckle) vary by tissue: skin, fat with septa,
     fascia, striated muscle, ligamentum flavum/dura, anechoic canal;
  2. bone: per beam, the first intersection with the bone surface (along the
     beam, so convex shadows follow the fan's rays), a specular echo whose
     strength falls with the angle between beam and surface normal, a shadow
     with residual texture (scatterers at 1-6 % amplitude) and reverberation
     copies of the bone echo at multiples of its range;
  3. convolves axially with the simulated RF pulse (rescaled to the sweep's
     centre frequency), laterally with the simulated depth-dependent beam
     profile (interpolated per RF sample; widened with depth by a per-sweep
     aberration factor), takes the Hilbert envelope, applies attenuation,
     a TGC curve, log compression with the sweep's dynamic range, and a grey
     map (gamma or S-curve); adds near-field clutter haze;
  4. scan-converts to square screen pixels (black outside the fan).

Anatomy (per sweep): level spacing 20-45 mm, interlaminar windows 4-16 mm,
lamina depth 20-80 mm (within the depth setting), lamina profiles "ramp",
"cap", "arch" or "step" (some laminae weak), sacrum "plane", "arch",
"segmented" or "rough" with surface tilt 0-20 deg, imaging depth 40-130 mm;
linear 5-10 MHz or convex 2-5 MHz (radius 40-60 mm, field of view 50-75 deg).
Screen: 640x480 with a left tool column, a top banner, a grey-bar, a dotted
depth scale, a focus marker and a clock, the image placed per sweep.

Truth contract (the same as families A and B, gen_sweeps.py's JSON): the class
of a frame is the structure under the image's centre column (the central beam
of a convex probe); positions "S1", "L5".."T12", "L5-S1".."T12-L1"; probe_mm is
the probe's position along the spine (cephalad +); region the image's bounding
box on the screen; mm_per_px its square-pixel spacing.

    Sweep(seed, probe="linear"|"convex")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage, signal

from truth_contract import sweep_truth

SCREEN_W, SCREEN_H = 640, 480
LEVELS = ("L5", "L4", "L3", "L2", "L1", "T12")
INTERSPACES = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
PSF = Path(__file__).resolve().parent / "psf_c.npz"
_PSF_CACHE = {}
SOUND_MM_US = 1.54


def psf(probe: str):
    if probe not in _PSF_CACHE:
        d = np.load(PSF)
        _PSF_CACHE[probe] = {k[:-len(probe) - 1]: d[k] for k in d.files if k.endswith("_" + probe)}
    return _PSF_CACHE[probe]


def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """32-bit integer hash of tissue cell (i, j): deterministic scatterers fixed to the tissue."""
    h = (i.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (j.astype(np.uint32) * np.uint32(0xD8163841)) ^ np.uint32(salt)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h


class Spine:
    """Bone surface along the spine (s mm, cephalad +; z mm below the skin) and the window truth."""

    def __init__(self, rng: np.random.Generator, max_depth_mm: float):
        base = rng.uniform(20.0, 45.0)
        self.lam_shape = str(rng.choice(["ramp", "cap", "arch", "step"]))
        self.sac_shape = str(rng.choice(["plane", "arch", "segmented", "rough"]))
        self.tilt = np.tan(np.deg2rad(rng.uniform(0.0, 20.0)))
        deepest = min(80.0, max_depth_mm - 14.0)
        d0 = rng.uniform(20.0, max(20.5, deepest))
        lo, hi, dep, drop, amp = [], [], [], [], []
        s = 0.0
        d = d0
        for k in range(6):
            seg = base * rng.uniform(0.88, 1.12)
            win = rng.uniform(4.0, min(16.0, 0.5 * seg))
            lo.append(s + win)  # lamina k: [lo, hi); window k: [hi[k-1] (or 0), lo[k])
            hi.append(s + seg)
            dep.append(np.clip(d, 18.0, deepest))
            drop.append(rng.uniform(3.0, 10.0))
            amp.append(rng.uniform(0.25, 0.55) if rng.random() < 0.18 else rng.uniform(0.8, 1.2))
            s += seg
            d += rng.normal(0.0, 2.0) - 0.6  # thoracolumbar laminae a little shallower on average
        self.lo, self.hi = np.array(lo), np.array(hi)
        self.dep, self.drop, self.amp = np.array(dep), np.array(drop), np.array(amp)
        self.sac_d0 = self.dep[0] + rng.uniform(1.0, 9.0)
        self.sac_amp = rng.uniform(0.8, 1.2)
        self.sac_curv = rng.uniform(0.002, 0.012)  # arch: 1/mm
        self.sac_seg = rng.uniform(8.0, 13.0)
        self.rough = (rng.uniform(0.3, 1.2), rng.uniform(3.0, 9.0), rng.uniform(0, 2 * np.pi))
        # Window contents: ligamentum flavum/posterior dura and the anterior complex (vertebral body).
        self.pc_off = rng.uniform(2.0, 6.0)
        self.ac_off = rng.uniform(12.0, 22.0)
        self.pc_amp = rng.uniform(0.25, 0.9)
        self.ac_amp = rng.uniform(0.35, 0.8)

    def label(self, s: float):
        if s < 0.0:
            return "sacrum", "S1"
        for k in range(6):
            start = self.hi[k - 1] if k else 0.0
            if start <= s < self.lo[k]:
                return "interspace", INTERSPACES[k]
            if self.lo[k] <= s < self.hi[k]:
                return "lamina", LEVELS[k]
        return "lamina", None

    def _lamina_profile(self, u):
        """0 at the shallow part .. 1 at the deepest (u: 0 caudal .. 1 cephalad)."""
        if self.lam_shape == "ramp":
            return u ** 1.3
        if self.lam_shape == "cap":  # rounded cap at the caudal tip, then a flat shelf sloping down
            return 0.5 * (1 - np.exp(-u / 0.12)) + 0.5 * u
        if self.lam_shape == "arch":
            return 1.0 - np.sin(np.pi * (0.15 + 0.75 * u))
        return np.where(u < 0.55, 0.15 * u, 0.3 + 0.7 * (u - 0.55) / 0.45)  # step

    def bone(self, s: np.ndarray):
        """(depth mm of the first bone/reflector below the skin at s, reflectivity, unused, is_window)."""
        s = np.asarray(s, np.float64)
        z = np.full(s.shape, np.inf)
        a = np.zeros(s.shape)
        sac = s < 0.0
        t = -s[sac]
        zs = self.sac_d0 + self.tilt * t
        if self.sac_shape == "arch":
            zs = zs + self.sac_curv * t * t
        elif self.sac_shape == "segmented":
            zs = zs + 0.8 * ((t % self.sac_seg) / self.sac_seg)
        elif self.sac_shape == "rough":
            ra, rp, ph = self.rough
            zs = zs + ra * np.sin(2 * np.pi * t / rp + ph) + 0.4 * ra * np.sin(2 * np.pi * t / (0.37 * rp))
        # The sacrum's cephalad edge rounds off over its last 2 mm.
        zs = zs + 3.0 * np.clip(1 - t / 2.0, 0, 1) ** 2
        z[sac] = zs
        a[sac] = self.sac_amp
        if self.sac_shape == "segmented":
            gap = (t % self.sac_seg) > self.sac_seg - 1.2
            a[np.flatnonzero(sac)[gap]] *= 0.3
        win = np.zeros(s.shape, bool)
        for k in range(6):
            on = (s >= self.lo[k]) & (s < self.hi[k])
            u = (s[on] - self.lo[k]) / (self.hi[k] - self.lo[k])
            z[on] = self.dep[k] + self.drop[k] * self._lamina_profile(u)
            a[on] = self.amp[k]
            start = self.hi[k - 1] if k else 0.0
            w = (s >= start) & (s < self.lo[k])
            ref = self.dep[k - 1] + self.drop[k - 1] if k else self.sac_d0
            z[w] = 0.5 * (ref + self.dep[k]) + self.ac_off
            a[w] = self.ac_amp
            win |= w
        top = s >= self.hi[5]
        z[top] = self.dep[5] + 2.0
        a[top] = 1.0
        return z, a, None, win


class Sweep:
    def __init__(self, seed: int, probe: str = "linear"):
        rng = np.random.default_rng([seed, 0xC3C3])
        self.seed, self.probe = seed, probe
        self.fps = int(rng.choice([12, 18, 20, 24, 25, 30]))
        self.depth_mm = rng.uniform(40.0, 130.0) if probe == "linear" else rng.uniform(60.0, 130.0)
        self.spine = Spine(rng, self.depth_mm)
        k = psf(probe)
        self.f_mhz = rng.uniform(5.0, 10.0) if probe == "linear" else rng.uniform(2.0, 5.0)
        self.scale = float(k["fc_mhz"]) / self.f_mhz  # kernels widen in proportion to wavelength
        lam = SOUND_MM_US / self.f_mhz
        self.dz = max(lam / 3.0, self.depth_mm / 1100.0)
        self.nz = int(self.depth_mm / self.dz)
        self.r = (np.arange(self.nz) + 0.5) * self.dz  # range along each beam below the skin/face
        self.nb = 168
        if probe == "linear":
            self.width_mm = rng.uniform(36.0, 58.0)
            self.beam_x = np.linspace(-self.width_mm / 2, self.width_mm / 2, self.nb)
            self.beam_th = np.zeros(self.nb)
            self.radius = 0.0
        else:
            self.radius = rng.uniform(40.0, 60.0)
            self.fov = np.deg2rad(rng.uniform(50.0, 75.0))
            self.beam_th = np.linspace(-self.fov / 2, self.fov / 2, self.nb)
            self.beam_x = np.zeros(self.nb)
        # Tissue sample positions (s offset from the probe centre, z below the skin) of every RF sample.
        rr = self.r[:, None]
        if probe == "linear":
            self.s_off = np.broadcast_to(self.beam_x[None, :], (self.nz, self.nb)).astype(np.float32)
            self.z = np.broadcast_to(rr, (self.nz, self.nb)).astype(np.float32)
        else:
            th = self.beam_th[None, :]
            self.s_off = ((self.radius + rr) * np.sin(th)).astype(np.float32)
            self.z = (rr * np.cos(th)).astype(np.float32)
        # Imaging chain parameters.
        fi = int(rng.integers(0, len(k["focus"])))
        self.focus_mm = float(k["focus"][fi])
        self.aberr = rng.uniform(0.0, 0.8)
        self._lateral_kernels(k, fi)
        pz = np.arange(len(k["pulse"])) * float(k["pulse_dz"]) * self.scale
        n = int(pz[-1] / self.dz) + 1
        self.pulse = np.interp(np.arange(n) * self.dz, pz, k["pulse"]).astype(np.float32)
        self.pulse -= self.pulse.mean()
        g = np.interp(self.r, k["depth"], k["gain"][fi])
        self.beam_gain = (0.5 + 0.5 * g / g.max()).astype(np.float32)
        self.alpha = rng.uniform(0.4, 0.9)  # dB/cm/MHz
        atten_db = 2 * self.alpha * self.f_mhz * self.r / 10.0
        tgc_knots = np.linspace(0, self.depth_mm, 6)
        tgc_db = np.interp(self.r, tgc_knots, rng.uniform(-6.0, 6.0, 6))
        comp = rng.uniform(0.7, 1.05)  # how much of the attenuation the TGC compensates
        self.depth_gain = (self.beam_gain * 10 ** ((-atten_db * (1 - comp) + tgc_db) / 20)).astype(np.float32)
        self.dyn_db = rng.uniform(40.0, 75.0)
        self.map_kind = str(rng.choice(["gamma", "scurve"]))
        self.gamma = rng.uniform(0.7, 1.5)
        self.s_gain = rng.uniform(4.0, 9.0)
        self.offset_db = rng.uniform(-4.0, 2.0)
        self.shadow_resid = rng.uniform(0.01, 0.06)
        self.reverb = rng.uniform(0.05, 0.35)
        self.clutter = rng.uniform(0.0, 0.25)
        self.bone_gain = rng.uniform(6.0, 14.0)
        self.spec_n = rng.uniform(1.0, 4.0)  # specular fall-off with incidence angle
        # Soft tissue layers (depth below the skin, mm).
        self.skin = rng.uniform(1.0, 3.0)
        self.fat = self.skin + rng.uniform(4.0, min(22.0, 0.5 * self.spine.dep.min()))
        self.septa = [(rng.uniform(self.skin, self.fat), rng.uniform(-0.08, 0.08)) for _ in range(int(rng.integers(1, 5)))]
        self.fascia = [(rng.uniform(self.fat + 3, max(self.fat + 4, self.spine.dep.min() - 2)), rng.uniform(-0.05, 0.05), rng.uniform(0.2, 0.7))
                       for _ in range(int(rng.integers(0, 4)))]
        self.fat_density = rng.uniform(0.04, 0.25)
        self.musc_density = rng.uniform(0.4, 1.0)
        self.musc_period = rng.uniform(0.8, 2.5)
        self.musc_tilt = rng.uniform(-0.15, 0.15)
        self.musc_stria = rng.uniform(0.1, 0.6)
        self.fat_level = rng.uniform(0.3, 0.8)
        self.k_nu_fat = rng.uniform(0.3, 2.0)
        self.k_nu_musc = rng.uniform(1.0, 10.0)
        self.cell_s, self.cell_z = 0.09, 0.045
        self.salt = int(seed) * 7919 + 17
        # A low-resolution compound (gamma) texture fixed to the tissue: K-distributed speckle.
        wr = np.random.default_rng([seed, 0xC3C3, 1])
        self.tex_cell = 0.7
        self.tex_s0 = -140.0
        ns = int((float(self.spine.hi[5]) + 150.0 - self.tex_s0) / self.tex_cell)
        nzt = int(self.depth_mm / self.tex_cell) + 3
        nu = np.where(np.arange(nzt)[:, None] * self.tex_cell < self.fat, self.k_nu_fat, self.k_nu_musc)
        self.tex = np.sqrt(wr.gamma(nu, 1.0 / nu, (nzt, ns))).astype(np.float32)
        self.tex = ndimage.uniform_filter(self.tex, 2)
        self._geometry(rng)
        self._path(rng)
        self._screen(rng)

    # ------------------------------------------------------------------ kernels
    def _lateral_kernels(self, k, fi):
        """Per RF sample, lateral taps across neighbouring beams from the simulated beam profile."""
        lat = k["lat"][fi].astype(np.float32)
        x = k["x"]
        if self.probe == "linear":
            spacing = np.full(self.nz, self.width_mm / (self.nb - 1))
        else:
            spacing = (self.radius + self.r) * (self.fov / (self.nb - 1))
        half = 7
        taps = np.arange(-half, half + 1)
        widen = self.scale * (1.0 + self.aberr * self.r / 100.0)
        # profile at each RF sample's depth (linear interpolation between simulated depths)
        dpos = np.interp(self.r, k["depth"], np.arange(len(k["depth"])))
        d0 = np.floor(dpos).astype(int)
        d1 = np.minimum(d0 + 1, len(k["depth"]) - 1)
        wd = (dpos - d0)[:, None]
        # The beams sample the field no finer than the line spacing: keep the -6 dB
        # width at least two line spacings (else neighbouring lines decorrelate).
        w6 = np.array([np.ptp(x[row > 0.5]) for row in lat.astype(np.float64)])
        w6_r = np.interp(self.r, k["depth"], w6) * widen
        widen = widen * np.maximum(1.0, 2.0 * spacing / np.maximum(w6_r, 1e-3))
        xq = taps[None, :] * spacing[:, None] / widen[:, None]
        K = np.empty((self.nz, len(taps)), np.float32)
        for row in range(self.nz):
            p = (1 - wd[row, 0]) * lat[d0[row]] + wd[row, 0] * lat[d1[row]]
            K[row] = np.interp(xq[row], x, p, left=0.0, right=0.0)
        K /= np.sqrt((K ** 2).sum(1, keepdims=True)) + 1e-9
        self.lat_taps = taps
        self.lat_K = K

    # ------------------------------------------------------------------ geometry / path
    def _geometry(self, rng):
        """Screen placement and scan-conversion lookup."""
        if self.probe == "linear":
            ext_w, ext_h = self.width_mm, self.depth_mm
            top = 0.0
        else:
            r1 = self.radius + self.depth_mm
            ext_w = 2 * r1 * np.sin(self.fov / 2)
            top = self.radius * np.cos(self.fov / 2)  # apex-to-top distance
            ext_h = r1 - top
        avail_w, avail_h = SCREEN_W - 90 - 60, SCREEN_H - 40 - 30
        h = rng.uniform(0.7, 1.0) * avail_h
        mpp = ext_h / h
        if ext_w / mpp > avail_w:
            mpp = ext_w / avail_w
        self.mm_per_px = float(mpp)
        self.img_w = int(np.ceil(ext_w / mpp))
        self.img_h = int(np.ceil(ext_h / mpp))
        self.rx = int(rng.integers(90, max(91, SCREEN_W - 60 - self.img_w)))
        self.ry = int(rng.integers(40, max(41, SCREEN_H - 30 - self.img_h)))
        ys, xs = np.mgrid[0:self.img_h, 0:self.img_w].astype(np.float64)
        xm = (xs + 0.5) * mpp - ext_w / 2
        ym = (ys + 0.5) * mpp
        if self.probe == "linear":
            bi = (xm + self.width_mm / 2) / self.width_mm * (self.nb - 1)
            ri = ym / self.dz - 0.5
            inside = (xm >= -self.width_mm / 2) & (xm <= self.width_mm / 2) & (ym <= self.depth_mm)
        else:
            yy = ym + top
            rad = np.hypot(xm, yy)
            th = np.arctan2(xm, yy)
            bi = (th + self.fov / 2) / self.fov * (self.nb - 1)
            ri = (rad - self.radius) / self.dz - 0.5
            inside = (np.abs(th) <= self.fov / 2) & (rad >= self.radius) & (rad <= self.radius + self.depth_mm)
        self.inside = inside
        self.iy, self.ix = np.nonzero(inside)
        # Decimate RF-rate samples to about the pixel size before scan conversion.
        self.dec = max(1, int(mpp / self.dz / 1.5))
        self.coords = np.stack([ri[inside] / self.dec, bi[inside]]).astype(np.float32)

    def _path(self, rng):
        pos, lift = [], []
        s = rng.uniform(-40.0, -10.0)
        top = float(self.spine.hi[4]) - rng.uniform(2.0, 8.0)
        for _ in range(int(rng.uniform(0.3, 1.5) * self.fps)):
            pos.append(s + rng.normal(0, 0.08))
        v = rng.uniform(4.0, 15.0)
        backed = rng.random() > 0.5
        lifted = rng.random() > 0.35
        while s < top and len(pos) < 3000:
            v = float(np.clip(v + rng.normal(0, 1.5), 3.0, 22.0))
            if rng.random() < 0.006:  # pause
                pos += [s + rng.normal(0, 0.08) for _ in range(int(rng.uniform(0.4, 1.0) * self.fps))]
            if not backed and s > self.spine.hi[1] and rng.random() < 0.01:
                back = rng.uniform(5.0, 15.0)
                for _ in range(int(back / (v / self.fps))):
                    s -= v / self.fps
                    pos.append(s)
                backed = True
            if not lifted and s > self.spine.hi[0] and rng.random() < 0.01:
                n = int(rng.uniform(0.3, 0.8) * self.fps)
                lift += list(range(len(pos), len(pos) + n))
                pos += [s] * n
                lifted = True
            s += v / self.fps
            pos.append(s + rng.normal(0, 0.05))
        self.positions = np.array(pos)
        self.lift = set(lift)

    def __len__(self):
        return len(self.positions)

    # ------------------------------------------------------------------ rendering
    def _reflectivity(self, s_probe: float) -> np.ndarray:
        sw = s_probe + self.s_off
        z = self.z
        i = np.floor(sw / self.cell_s).astype(np.int64)
        j = np.floor(z / self.cell_z).astype(np.int64)
        h = _hash(i, j, self.salt)
        u1 = (h & np.uint32(0xFFFF)).astype(np.float32) / 65536.0
        u2 = (h >> np.uint32(16)).astype(np.float32) / 65536.0 - 0.5
        # Tissue-dependent scatterer density (partially developed speckle where sparse) and level.
        dens = np.where(z < self.fat, self.fat_density, self.musc_density).astype(np.float32)
        level = np.where(z < self.fat, self.fat_level, 1.0).astype(np.float32)
        level = np.where(z < self.skin, 2.5, level)
        dens = np.where(z < self.skin, 1.0, dens)
        stria = 1.0 + self.musc_stria * np.sin(2 * np.pi * (z + self.musc_tilt * sw) / self.musc_period)
        level = np.where(z >= self.fat, level * stria, level)
        for z0, sl in self.septa:
            level = level + 3.0 * np.exp(-((z - z0 - sl * sw) / 0.3) ** 2)
        level = level + 4.0 * np.exp(-((z - self.fat) / 0.4) ** 2)  # thoracolumbar fascia
        for z0, sl, a in self.fascia:
            level = level + 4.0 * a * np.exp(-((z - z0 - sl * sw) / 0.35) ** 2)
        ti = np.clip((z / self.tex_cell).astype(np.int64), 0, self.tex.shape[0] - 1)
        tj = np.clip(((sw - self.tex_s0) / self.tex_cell).astype(np.int64), 0, self.tex.shape[1] - 1)
        refl = np.where(u1 < dens, u2, 0.0) * level * self.tex[ti, tj]
        return refl.astype(np.float32), sw

    def _bone(self, refl, sw):
        """Per beam: first bone hit, specular echo, shadow with residual texture, reverberation."""
        spine = self.spine
        zb, ab, slope, win = spine.bone(sw[::2].ravel())
        zb = zb.reshape(sw[::2].shape)
        ab = ab.reshape(zb.shape)
        win = win.reshape(zb.shape)
        zc = self.z[::2]
        below = zc >= zb
        hit = below.any(0)
        first = np.argmax(below, 0)
        cols = np.arange(self.nb)
        r_hit = np.where(hit, self.r[::2][first], np.inf)
        amp = ab[first, cols]
        s_hit = sw[::2][first, cols]
        is_win = win[first, cols] & hit
        # Surface slope along the spine at the hit, and the beam direction there.
        d = 0.6
        z_plus = spine.bone(s_hit + d)[0]
        z_minus = spine.bone(s_hit - d)[0]
        ok = np.isfinite(z_plus) & np.isfinite(z_minus)
        sl = np.where(ok, (z_plus - z_minus) / (2 * d), 0.0)
        n_s, n_z = -sl, np.ones_like(sl)  # surface normal (unnormalised)
        b_s, b_z = np.sin(self.beam_th), np.cos(self.beam_th)
        cosang = np.abs(n_s * b_s + n_z * b_z) / np.hypot(n_s, n_z)
        spec = 0.3 + 0.7 * cosang ** (self.spec_n * 2)
        out = refl.copy()
        r = self.r[:, None]
        dist = r - r_hit[None, :]
        after = dist > 0.0
        # Shadow beyond bone (the anterior complex seen through a window shadows too).
        out = np.where(after, out * self.shadow_resid, out)
        # Echo: a thin specular layer just beyond the hit (coherent, same sign).
        e = np.exp(-((dist - 0.3) / 0.35) ** 2) * (amp * spec)[None, :] * self.bone_gain
        rough = 1.0 + 0.25 * np.sin(7.3 * sw + 1.7 * r)
        out += (e * rough).astype(np.float32) * (self.tex.mean() * 0.5)
        # Reverberation between face and bone: fainter copies at 2x, 3x the range.
        for m, a in ((2, self.reverb), (3, self.reverb * 0.4)):
            out += (np.exp(-((r - m * r_hit[None, :]) / 0.4) ** 2) * (a * amp * spec)[None, :] * self.bone_gain * 0.3).astype(np.float32)
        # Ligamentum flavum / posterior dura in the windows (above the anterior complex); canal anechoic.
        if is_win.any():
            pc = r_hit - self.spine.ac_off + self.spine.pc_off
            wcols = is_win[None, :]
            ddp = r - pc[None, :]
            canal = (ddp > 1.0) & (dist < -0.5) & wcols
            out = np.where(canal, out * 0.12, out)
            out += (np.exp(-(ddp / 0.5) ** 2) * wcols * self.spine.pc_amp * self.bone_gain * 0.25).astype(np.float32)
        return out

    def frame(self, i: int) -> np.ndarray:
        screen = self.static.copy()
        self._clock(screen, i)
        rng = np.random.default_rng([self.seed, 0xC3C3, 2, i])
        if i in self.lift:
            # Probe in air: ring-down bands near the face, noise below.
            v = rng.normal(0.0, 0.02, (self.nz // self.dec + 1, self.nb))
            rr = np.arange(v.shape[0])[:, None] * self.dz * self.dec
            v += 0.35 * np.exp(-rr / 15.0) * (np.cos(2 * np.pi * rr / rng.uniform(3.0, 6.0)) > 0.6)
            img = np.clip(v, 0, 1) * 255
        else:
            refl, sw = self._reflectivity(float(self.positions[i]))
            refl = self._bone(refl, sw)
            rf = ndimage.convolve1d(refl, self.pulse, axis=0, mode="constant")
            lat = np.zeros_like(rf)
            for t, col in zip(self.lat_taps, self.lat_K.T):
                sh = np.roll(rf, t, axis=1)
                if t > 0:
                    sh[:, :t] = 0
                elif t < 0:
                    sh[:, t:] = 0
                lat += sh * col[:, None]
            env = np.abs(signal.hilbert(lat, N=self.nz + 64, axis=0)[:self.nz]).astype(np.float32)
            env *= self.depth_gain[:, None]
            if self.clutter > 0:
                haze = ndimage.zoom(rng.random((6, 8)).astype(np.float32), (env.shape[0] / 6, env.shape[1] / 8), order=1)[:env.shape[0], :env.shape[1]]
                env += self.clutter * np.median(env) * haze * np.exp(-self.r / 25.0)[:, None]
            if self.dec > 1:
                n = env.shape[0] // self.dec * self.dec
                env = env[:n].reshape(-1, self.dec, self.nb).mean(1)
            ref = np.percentile(env, 99.5) + 1e-9
            db = 20 * np.log10(env / ref + 1e-9) + self.offset_db
            v = np.clip(1 + db / self.dyn_db, 0, 1)
            if self.map_kind == "gamma":
                v = v ** self.gamma
            else:
                v = 1 / (1 + np.exp(-self.s_gain * (v - 0.55)))
                v = (v - v.min()) / (v.max() - v.min() + 1e-9)
            v = v + rng.normal(0, 0.015, v.shape)
            img = np.clip(v, 0, 1) * 255
        vals = ndimage.map_coordinates(img.astype(np.float32), self.coords, order=1, mode="nearest")
        screen[self.ry + self.iy, self.rx + self.ix] = np.clip(vals, 0, 255).astype(np.uint8)
        return screen

    # ------------------------------------------------------------------ screen
    def _screen(self, rng):
        s = np.zeros((SCREEN_H, SCREEN_W), np.uint8)
        panel = int(rng.integers(25, 55))
        s[:, :80] = panel  # tool column
        for k in range(int(rng.integers(4, 9))):  # icons
            y = 50 + k * 48
            if y + 30 < SCREEN_H:
                s[y:y + 30, 20:60] = int(rng.integers(70, 160))
                s[y + 6:y + 24, 26:54] = panel
        s[:28, 80:] = int(rng.integers(10, 35))  # banner with glyph rows
        for k in range(int(rng.integers(2, 5))):
            x = int(rng.integers(90, SCREEN_W - 120))
            glyphs = (rng.random((7, 100)) > 0.55) * int(rng.integers(150, 240))
            s[8:15, x:x + 100] = np.maximum(s[8:15, x:x + 100], glyphs.astype(np.uint8))
        # Grey-bar right of the image.
        gx = min(self.rx + self.img_w + 12, SCREEN_W - 14)
        gh = min(120, self.img_h)
        s[self.ry:self.ry + gh, gx:gx + 8] = np.linspace(255, 0, gh)[:, None].astype(np.uint8)
        # Dotted depth scale left of the image (1 cm dots, 5 cm bigger).
        top = 0.0 if self.probe == "linear" else 0.0
        for cm in range(0, int(self.depth_mm / 10) + 1):
            y = self.ry + int(round((cm * 10.0) / self.mm_per_px + top))
            if y + 3 >= SCREEN_H:
                break
            big = cm % 5 == 0
            x0 = self.rx - 10
            s[y:y + (3 if big else 2), x0:x0 + (4 if big else 2)] = 210
        # Focus marker: a small triangle at the transmit focus depth.
        fy = self.ry + int(self.focus_mm / self.mm_per_px)
        if fy + 5 < SCREEN_H:
            for k in range(5):
                s[fy + k - 2, self.rx - 20:self.rx - 20 + (5 - abs(k - 2) * 2)] = 230
        # Thumbnails at the bottom right.
        for k in range(3):
            x = SCREEN_W - 60 * (k + 1)
            s[SCREEN_H - 24:SCREEN_H - 4, x:x + 50] = int(rng.integers(30, 90))
        self.static = s
        self.clock_x = int(rng.integers(100, 300))

    def _clock(self, screen, i):
        """A clock text in the banner that changes once per second."""
        sec = i // self.fps
        g = np.random.default_rng([self.seed, sec]).random((7, 40)) > 0.5
        screen[8:15, SCREEN_W - 60:SCREEN_W - 20] = g * 200

    # ------------------------------------------------------------------ truth
    def _region(self):
        ys, xs = self.iy, self.ix
        return {"x_px": self.rx + int(xs.min()), "y_px": self.ry + int(ys.min()),
                "width_px": int(xs.max() - xs.min() + 1), "height_px": int(ys.max() - ys.min() + 1)}

    def truth(self):
        return sweep_truth(seed=self.seed, family="C", probe=self.probe, fps=self.fps, screen_wh=(SCREEN_W, SCREEN_H),
                           region=self._region(), mm_per_px=self.mm_per_px, positions=self.positions, lift=self.lift,
                           label=self.spine.label)
