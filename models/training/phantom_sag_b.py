"""Generator family B: a paramedian sagittal lumbar sweep rendered by a
different method from family A (phantom_sagittal.py), written independently.

numpy + scipy only. What differs from A, on purpose:
  * image formation: a complex scatterer field fixed to the tissue, sampled
    at the probe's beam positions, convolved with a depth-dependent PSF
    (Gabor pulse axially; Gaussian beam laterally whose width grows with
    depth beyond the focus), envelope-detected, log-compressed, with TGC,
    dynamic range and gamma drawn per sweep;
  * probes: linear (rectangular image) and convex (curvilinear: a fan, beams
    from a virtual apex behind the skin, radius 40-60 mm, field of view
    50-75 deg, scan-converted to square pixels, black outside the fan, shadows
    along the beams);
  * anatomy drawn per sweep from the ranges patients have: level spacing
    20-45 mm, interlaminar windows 4-16 mm, lamina depth 20-80 mm (limited to
    what the depth setting shows), sacral surface tilt 0-20 deg with an
    undulating or fragmented surface, laminae rounded, sawtooth or
    "horse-head", some weak;
  * screen: the image placed at a per-sweep position and size (aspect
    0.6-1.6) on a 640x480 capture, with its own UI blocks, a depth scale and
    a frame counter.

Truth contract (the same as family A, gen_sweeps.py's JSON): the class of a
frame is the structure under the image's centre column (the beam through the
apex and the fan's centre for a convex probe); positions "S1", "L5".."T12",
"L5-S1".."T12-L1"; ``probe_mm`` is the probe's position along the spine
(cephalad +); ``region`` is the image's bounding box on the screen and
``mm_per_px`` its true square-pixel spacing.

    Sweep(seed, probe="linear"|"convex")
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from truth_contract import sweep_truth

SCREEN_W, SCREEN_H = 640, 480
LEVELS = ("L5", "L4", "L3", "L2", "L1", "T12")
INTERSPACES = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
WORLD_MM_PER_CELL = 0.2


class Anatomy:
    """Bone surface depth along the spine (s mm, cephalad +) and the window truth."""

    def __init__(self, rng: np.random.Generator, max_depth_mm: float):
        self.spacing = rng.uniform(20.0, 45.0)
        self.sac_tilt = np.deg2rad(rng.uniform(0.0, 20.0))
        self.sac_style = rng.choice(["smooth", "undulating", "fragmented"])
        self.lam_style = rng.choice(["rounded", "sawtooth", "horse_head"])
        self.depth0 = rng.uniform(20.0, min(80.0, max_depth_mm - 12.0))
        self.trend = rng.uniform(-1.5, 1.5)
        starts, ends = [], []
        pos = 0.0
        for k in range(6):
            spacing = self.spacing * rng.uniform(0.9, 1.1)
            window = rng.uniform(4.0, min(16.0, 0.45 * spacing))
            starts.append(pos + window)  # lamina k starts after window k
            ends.append(pos + spacing)
            pos += spacing
        self.lam_start = np.array(starts)
        self.lam_end = np.array(ends)
        self.weak = rng.random(6) < 0.2
        self.lam_depth = self.depth0 + self.trend * np.arange(6) + rng.normal(0, 1.0, 6)
        self.lam_drop = rng.uniform(2.0, 8.0, 6)
        self.undulation = (rng.uniform(0.5, 1.5), rng.uniform(6.0, 14.0))

    def label(self, s: float):
        """(class, position) of the structure at spine position s."""
        if s < 0.0:
            return "sacrum", "S1"
        for k in range(6):
            lo = self.lam_end[k - 1] if k else 0.0
            if lo <= s < self.lam_start[k]:
                return "interspace", INTERSPACES[k]
            if self.lam_start[k] <= s < self.lam_end[k]:
                return "lamina", LEVELS[k]
        return "lamina", None

    def surface(self, s: np.ndarray):
        """Bone depth (mm; inf = no bone) and echo strength at spine positions s."""
        depth = np.full(s.shape, np.inf)
        strength = np.zeros(s.shape)
        sac = s < 0.0
        d_sac = self.depth0 + 4.0 + np.tan(self.sac_tilt) * (-s[sac])
        if self.sac_style != "smooth":
            amp, period = self.undulation
            d_sac = d_sac + amp * np.sin(2 * np.pi * s[sac] / period)
        depth[sac] = d_sac
        strength[sac] = 1.0
        if self.sac_style == "fragmented":
            gaps = (np.floor(-s[sac] / 7.0) % 3 == 1) & ((-s[sac] % 7.0) < 1.5)
            strength[np.flatnonzero(sac)[gaps]] = 0.35
        for k in range(6):
            on = (s >= self.lam_start[k]) & (s < self.lam_end[k])
            u = (s[on] - self.lam_start[k]) / (self.lam_end[k] - self.lam_start[k])  # 0 caudal .. 1 cephalad
            if self.lam_style == "rounded":
                prof = 1.0 - np.sin(np.pi * np.clip(u, 0, 1)) ** 0.7
            elif self.lam_style == "sawtooth":
                prof = u
            else:  # horse-head: a bump at the caudal tip, a dip, then the rise
                prof = 0.6 * u + 0.4 * np.exp(-((u - 0.15) / 0.12) ** 2) * -1.0 + 0.4
            depth[on] = self.lam_depth[k] + self.lam_drop[k] * prof
            strength[on] = 0.35 if self.weak[k] else 1.0
        return depth, strength


class Sweep:
    def __init__(self, seed: int, probe: str = "linear"):
        rng = np.random.default_rng([seed, 0xB0B])
        self.seed, self.probe = seed, probe
        self.fps = int(rng.integers(15, 31))
        self.depth_mm = rng.uniform(40.0, 130.0) if probe == "linear" else rng.uniform(70.0, 130.0)
        self.anat = Anatomy(rng, self.depth_mm)
        self.freq_mhz = rng.uniform(5.0, 10.0) if probe == "linear" else rng.uniform(2.0, 5.0)
        # Geometry of the image on the screen.
        if probe == "linear":
            self.width_mm = rng.uniform(38.0, 50.0)
            aspect = np.clip(self.width_mm / self.depth_mm, 0.6, 1.6)
        else:
            self.radius_mm = rng.uniform(40.0, 60.0)
            self.fov = np.deg2rad(rng.uniform(50.0, 75.0))
            r1 = self.radius_mm + self.depth_mm
            self.width_mm = 2 * r1 * np.sin(self.fov / 2)
            self.height_total_mm = r1 - self.radius_mm * np.cos(self.fov / 2)
            aspect = np.clip(self.width_mm / self.height_total_mm, 0.6, 1.6)
        img_h = int(rng.integers(300, 420))
        img_w = int(np.clip(round(img_h * aspect), 200, 600))
        img_h = min(img_h, int(round(img_w / aspect)), 440)
        self.img_w, self.img_h = img_w, img_h
        self.rx = int(rng.integers(10, SCREEN_W - img_w - 10 + 1))
        self.ry = int(rng.integers(20, SCREEN_H - img_h - 10 + 1))
        extent_h = self.depth_mm if probe == "linear" else self.height_total_mm
        self.mm_per_px = max(self.width_mm / img_w, extent_h / img_h)
        # Image formation parameters.
        self.dyn_range_db = rng.uniform(45.0, 70.0)
        self.gamma = rng.uniform(0.8, 1.3)
        self.gain = rng.uniform(0.85, 1.15)
        self.atten = rng.uniform(0.3, 0.8) * self.freq_mhz / 5.0  # dB/mm-ish, compensated by TGC
        self.tgc = rng.uniform(0.6, 1.0)
        self.focus_mm = rng.uniform(0.35, 0.6) * self.depth_mm
        self.k_shape = rng.uniform(0.6, 6.0)  # K-distribution shape of the scatterer amplitudes
        self.tissue = rng.uniform(0.08, 0.25)  # soft-tissue backscatter relative to a bone echo of ~9
        # The tissue: a complex scatterer field fixed to the world (s along the spine, z depth).
        self.s_min = -45.0
        self.s_max = float(self.anat.lam_end[4]) + 25.0
        nz = int((self.depth_mm + 70) / WORLD_MM_PER_CELL)
        ns = int((self.s_max - self.s_min + 2 * self.width_mm) / WORLD_MM_PER_CELL)
        wr = np.random.default_rng([seed, 0xB0B, 1])
        amp = np.sqrt(wr.gamma(self.k_shape, 1.0 / self.k_shape, (nz, ns)))
        self.world = (amp * np.exp(2j * np.pi * wr.random((nz, ns)))).astype(np.complex64)
        self.world_s0 = self.s_min - self.width_mm
        layers = 1.0 + 0.5 * np.sin(np.arange(nz)[:, None] * WORLD_MM_PER_CELL / wr.uniform(3, 8)) * wr.uniform(0.2, 0.8)
        self.world *= layers.astype(np.float32)
        self._path(rng)
        self._screen_static(rng)

    # ------------------------------------------------------------------ probe path
    def _path(self, rng):
        """Probe positions per frame: still on the sacrum, then up with pauses and reversals."""
        pos = []
        s = rng.uniform(-35.0, -8.0)
        top = float(self.anat.lam_end[4]) - rng.uniform(2.0, 8.0)
        still = int(rng.integers(5, 30))
        pos += [s + rng.normal(0, 0.05) for _ in range(still)]
        self.lift = []
        lift_at = rng.random() < 0.4
        lifted_frames = 0
        reversed_once = False
        while s < top and len(pos) < 2500:
            v = rng.uniform(5.0, 25.0) / self.fps
            if not reversed_once and s > self.anat.lam_end[1] and rng.random() < 0.01:
                back = rng.uniform(8.0, 20.0)
                for _ in range(int(back / v)):
                    s -= v
                    pos.append(s)
                reversed_once = True
            if lift_at and lifted_frames == 0 and s > self.anat.lam_end[0] and rng.random() < 0.01:
                n = int(rng.integers(5, 20))
                self.lift += list(range(len(pos), len(pos) + n))
                pos += [s] * n
                lifted_frames = n
            s += v
            pos.append(s)
        self.positions = np.array(pos)
        self.lift = set(self.lift)

    def __len__(self):
        return len(self.positions)

    # ------------------------------------------------------------------ rendering
    def _beam_grid(self):
        """World coordinates (s offset from the probe centre, depth z) of every image pixel, mm; mask inside."""
        ys, xs = np.mgrid[0:self.img_h, 0:self.img_w].astype(np.float32)
        x_mm = (xs - (self.img_w - 1) / 2) * self.mm_per_px
        y_mm = ys * self.mm_per_px
        if self.probe == "linear":
            inside = (np.abs(x_mm) <= self.width_mm / 2) & (y_mm <= self.depth_mm)
            return x_mm, y_mm, y_mm, np.zeros_like(x_mm), inside
        # Convex: apex at (0, -R cos(fov/2)) above the image top; r from apex, theta from vertical.
        apex_y = -self.radius_mm * np.cos(self.fov / 2)
        dx, dy = x_mm, y_mm - apex_y
        r = np.sqrt(dx * dx + dy * dy)
        th = np.arctan2(dx, dy)
        inside = (np.abs(th) <= self.fov / 2) & (r >= self.radius_mm) & (r <= self.radius_mm + self.depth_mm)
        depth_along_beam = r - self.radius_mm
        # Tissue point: the skin follows the probe's curved face; depth below skin ~ vertical depth.
        s_off = self.radius_mm * np.sin(th) + depth_along_beam * np.sin(th)
        z = depth_along_beam * np.cos(th) + self.radius_mm * (np.cos(th) - np.cos(self.fov / 2)) * 0.0
        return s_off, z, depth_along_beam, th, inside

    def frame(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0xB0B, 2, i])
        screen = self.static.copy()
        if i in self.lift:
            img = np.clip(rng.normal(6, 3, (self.img_h, self.img_w)), 0, 255)
            img[(np.arange(self.img_h) % 23) < 2, :] += 25  # reverberation bands of a probe in air
            self._paste(screen, img, self.mask, i)
            return screen
        s_probe = self.positions[i]
        s_off, z, along, th, inside = self.grid
        s_world = s_probe + s_off
        # Sample the scatterer field (tissue moves with the probe position).
        ci = np.clip(z / WORLD_MM_PER_CELL, 0, self.world.shape[0] - 2)
        cj = np.clip((s_world - self.world_s0) / WORLD_MM_PER_CELL, 0, self.world.shape[1] - 2)
        sc = self.world[ci.astype(np.int32), cj.astype(np.int32)]
        # Bone: where each beam first meets the bone surface (radial for a convex probe);
        # an echo there, a shadow beyond it along the beam (with residual texture).
        r_hit, strength, window = self._beam_hits(s_probe)
        beam = self.beam_of_px
        d = along - r_hit[beam]
        bone_a = strength[beam]
        refl = np.where(d > 0.8, 0.05 + 0.25 * (1.0 - bone_a), 1.0)
        echo = np.exp(-(d / 0.7) ** 2) * (8.0 * bone_a + 1.0)
        # Ligamentum flavum / dura (posterior complex) and the anterior complex in the windows.
        c_along = self.complex_depth / np.maximum(np.cos(th), 0.3)
        win = window[beam]
        pc = np.exp(-((along - c_along) / 0.8) ** 2) * 2.5 * win
        ac = np.exp(-((along - c_along - 20.0) / 1.0) ** 2) * 3.0 * win
        field = sc * (self.tissue * refl + echo + pc + ac).astype(np.float32)
        # PSF: axial Gabor-ish smoothing (complex), lateral Gaussian growing with distance from focus.
        ax_sigma = 0.6 * (5.0 / self.freq_mhz) / self.mm_per_px
        env = np.abs(ndimage.gaussian_filter(field.real, (ax_sigma, 0.5)) + 1j * ndimage.gaussian_filter(field.imag, (ax_sigma, 0.5)))
        lat_near = 0.4 * (5.0 / self.freq_mhz) / self.mm_per_px
        lat_far = lat_near * (1.0 + 2.5 * self.depth_mm / 100.0)
        env_far = ndimage.gaussian_filter1d(env, lat_far, axis=1)
        env_near = ndimage.gaussian_filter1d(env, lat_near, axis=1)
        wfar = np.clip(np.abs(along - self.focus_mm) / (0.6 * self.depth_mm), 0, 1)
        env = (1 - wfar) * env_near + wfar * env_far
        # Attenuation and TGC, log compression, gamma, noise.
        env = env * np.exp(-self.atten * along / 40.0 * (1 - self.tgc))
        env = env * self.gain * (1.0 + 0.05 * np.sin(i / 9.0))
        db = 20 * np.log10(env / (np.percentile(env[inside], 99.8) + 1e-6) + 1e-6)
        v = np.clip(1 + db / self.dyn_range_db, 0, 1) ** self.gamma
        v = v + rng.normal(0, 0.02, v.shape)
        img = np.clip(v * 255, 0, 255)
        self._paste(screen, img, inside, i)
        return screen

    def _beam_hits(self, s_probe: float):
        """Per beam: distance along it to the bone surface (inf: none), echo strength, in a window."""
        r = self.r_samples[None, :]
        if self.probe == "linear":
            s_pts = s_probe + self.beam_x[:, None] + 0.0 * r
            z_pts = np.broadcast_to(r, s_pts.shape)
        else:
            s_pts = s_probe + (self.radius_mm + r) * np.sin(self.beam_th)[:, None]
            z_pts = r * np.cos(self.beam_th)[:, None]
        depth, strength = self.anat.surface(s_pts.ravel())
        depth, strength = depth.reshape(s_pts.shape), strength.reshape(s_pts.shape)
        below = z_pts >= depth
        hit = below.any(axis=1)
        first = np.argmax(below, axis=1)
        r_hit = np.where(hit, self.r_samples[first], np.inf)
        a = np.where(hit, strength[np.arange(len(first)), first], 0.0)
        s_mid = s_pts[:, len(self.r_samples) // 2]
        window = np.array([self.anat.label(float(v))[0] == "interspace" for v in s_mid], dtype=np.float32)
        return r_hit, a, window

    def _paste(self, screen, img, inside, i):
        region = screen[self.ry:self.ry + self.img_h, self.rx:self.rx + self.img_w]
        region[inside] = img[inside].astype(np.uint8)
        # Frame counter below the image (changes every frame, small).
        c = (i * 7) % 40
        screen[SCREEN_H - 14:SCREEN_H - 6, 20 + c:26 + c] = 220

    def _screen_static(self, rng):
        s = np.zeros((SCREEN_H, SCREEN_W), np.uint8)
        s[:14, :] = rng.integers(20, 60)
        for _ in range(int(rng.integers(3, 8))):  # text-like blocks in the margins
            x, y = int(rng.integers(0, SCREEN_W - 60)), int(rng.integers(0, SCREEN_H - 12))
            if self.rx - 60 < x < self.rx + self.img_w and self.ry - 12 < y < self.ry + self.img_h:
                continue
            s[y:y + 10, x:x + 60] = (rng.random((10, 60)) > 0.5) * 180
        sx = min(self.rx + self.img_w + 6, SCREEN_W - 4)
        for k in range(0, self.img_h, max(1, int(10 / self.mm_per_px))):  # depth scale, 1 cm ticks
            s[self.ry + k, sx:sx + 4] = 200
        self.static = s
        self.grid = self._beam_grid()
        self.mask = self.grid[4]
        # Beams: 160 across the image; every pixel belongs to the nearest one.
        s_off, z, along, th, inside = self.grid
        n_beams = 160
        self.r_samples = np.arange(0.0, self.depth_mm, 0.25)
        if self.probe == "linear":
            self.beam_x = np.linspace(-self.width_mm / 2, self.width_mm / 2, n_beams)
            self.beam_th = np.zeros(n_beams)
            self.beam_of_px = np.clip(np.round((s_off + self.width_mm / 2) / self.width_mm * (n_beams - 1)), 0, n_beams - 1).astype(np.int32)
        else:
            self.beam_th = np.linspace(-self.fov / 2, self.fov / 2, n_beams)
            self.beam_of_px = np.clip(np.round((th + self.fov / 2) / self.fov * (n_beams - 1)), 0, n_beams - 1).astype(np.int32)
        self.complex_depth = float(np.mean(self.anat.lam_depth)) + 3.0

    # ------------------------------------------------------------------ truth
    def _region(self):
        """The image's bounding box on the screen (the fan's, for a convex probe)."""
        ys, xs = np.nonzero(self.mask)
        return {"x_px": self.rx + int(xs.min()), "y_px": self.ry + int(ys.min()),
                "width_px": int(xs.max() - xs.min() + 1), "height_px": int(ys.max() - ys.min() + 1)}

    def truth(self):
        return sweep_truth(seed=self.seed, family="B", probe=self.probe, fps=self.fps, screen_wh=(SCREEN_W, SCREEN_H),
                           region=self._region(), mm_per_px=self.mm_per_px, positions=self.positions, lift=self.lift,
                           label=self.anat.label)
