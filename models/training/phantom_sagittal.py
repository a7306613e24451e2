"""Synthetic paramedian sagittal oblique (PSO) lumbar ultrasound phantom.

numpy only. A *sweep* is a probe moving along the spine over a synthetic
patient; every frame is a 640x480 8-bit "screen" as a frame grabber would
capture it from the cart's video output: black chrome, some UI (text blocks,
a depth scale, a TGC curve, a focus marker) and the ultrasound image in the
fixed region x=140, y=60, 360x360.

Geometry contract (the Rust service relies on it):
  * image x = along the spine, cephalad to the RIGHT; image y = depth, skin at top
  * the truth of a frame is the structure under the image's centre column
    (spine position ``probe_mm``): sacrum / lamina / interspace / off_spine
  * ``position``: "S1" (sacrum), "L5".."L1" (lamina), "L5-S1".."L1-L2"
    (interspace), None (off_spine = probe lifted off)

How a frame is made: per sweep the anatomy (sacrum, L5..T12 laminae,
interlaminar windows with posterior/anterior complexes, soft tissue layers)
is rendered once into a "world" log-amplitude image that is wider than the
field of view (speckle and muscle texture are fixed to the tissue, so they
move with the anatomy and phase correlation sees the probe motion). Each
frame crops the world at the probe position (sub-pixel, linear), shears it
for probe tilt / pressure, and adds frame-level effects: gain drift, TGC,
frame-independent noise, skin line and near-field ring-down, momentary
low-quality frames (motion blur, partial contact, dim, noisy) and probe
lift-offs (dark image with horizontal reverberation bands).

Every random draw is seeded: a sweep is a pure function of its seed, and
frame i does not depend on which other frames were rendered.
"""

from __future__ import annotations

import numpy as np

SCREEN_W, SCREEN_H = 640, 480
RX, RY, RW, RH = 140, 60, 360, 360
REGION = {"x_px": RX, "y_px": RY, "width_px": RW, "height_px": RH}
CLASSES = ("sacrum", "lamina", "interspace", "off_spine")
LEVELS = ("L5", "L4", "L3", "L2", "L1", "T12")
INTERSPACES = ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")
HELDOUT_SEED_MIN = 100_000  # training never uses seeds >= this

_PAD = 24  # world rows above/below the field of view (for tilt / pressure shear)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


# --------------------------------------------------------------------------- anatomy
class Anatomy:
    """Positions (mm along the spine, cephalad positive) and depths (mm) of the bones.

    The sacrum occupies s < 0 (its cephalad edge is at s = 0). Lamina k
    (k=0: L5 ... 4: L1, 5: T12) spans [start[k], end[k]); window k (the
    interspace below lamina k, k=0: L5-S1) spans [end[k-1], start[k]).
    """

    def __init__(self, rng: np.random.Generator, demo: bool = False):
        self.sac_end = 0.0
        start, end = [], []
        pos = 0.0
        for k in range(6):
            if demo:
                w = rng.uniform(9.0, 10.5) if k else rng.uniform(10.0, 11.0)
                seg = rng.uniform(28.0, 29.5)
            else:
                w = rng.uniform(10.0, 15.0) if k == 0 else rng.uniform(8.0, 15.0)
                seg = rng.uniform(28.0, 40.0)
            start.append(pos + w)
            end.append(pos + seg)
            pos += seg
        self.start = np.array(start)
        self.end = np.array(end)
        # Bone surface depths: lamina caudal tip (shallowest) and cephalad drop.
        d0 = rng.uniform(27.0, 50.0) if not demo else rng.uniform(36.0, 40.0)
        trend = rng.uniform(-1.8, 1.2)
        self.lam_tip = d0 + trend * np.arange(6) + rng.normal(0, 1.3, 6)
        self.lam_drop = rng.uniform(3.0, 9.0, 6)
        self.lam_gamma = rng.uniform(0.8, 1.6, 6)
        self.lam_b = rng.uniform(3.0, 8.0) * rng.uniform(0.45, 1.0, 6)
        # now and then a lamina returns a weak echo (beam not perpendicular to the bone)
        self.lam_b *= np.where(rng.random(6) < 0.12, rng.uniform(0.3, 0.5, 6), 1.0)
        self.lam_round = rng.uniform(1.5, 3.5, 6)  # mm over which the caudal tip rounds off
        self.sac_depth = self.lam_tip[0] + rng.uniform(-1.0, 5.0)
        self.sac_slope = rng.uniform(-0.10, 0.06)  # depth change per mm (caudal = negative s)
        self.sac_curv = rng.uniform(-0.0008, 0.0012)
        self.sac_b = rng.uniform(3.5, 8.0)
        self.sac_bumps = (rng.uniform(0.2, 1.0), rng.uniform(8, 20), rng.uniform(0, 6.3))
        # Posterior complex (ligamentum flavum / dura) and anterior complex depth in each window.
        lam_cephalad_depth = self.lam_tip + self.lam_drop
        prev_depth = np.concatenate([[self.sac_depth], lam_cephalad_depth[:-1]])
        win_depth = 0.5 * (prev_depth + self.lam_tip)
        self.pc_depth = win_depth + rng.uniform(3.0, 10.0, 6)
        self.ac_depth = self.pc_depth + rng.uniform(13.0, 21.0, 6)
        base_pc = rng.uniform(0.3, 3.5)
        self.pc_b = base_pc * rng.uniform(0.35, 1.0, 6)
        self.ac_b = rng.uniform(1.0, 4.0) * rng.uniform(0.5, 1.0, 6)
        # Soft tissue.
        self.fat = rng.uniform(4.0, min(20.0, d0 - 14.0))
        self.fat_var = (rng.uniform(0.5, 3.0), rng.uniform(40, 120), rng.uniform(0, 6.3))
        self.fascia_b = rng.uniform(0.6, 2.2)
        # Intermuscular fascia lines (confusers): (depth at s=0, slope, brightness, s0, s1)
        n_fl = rng.integers(1, 5)
        self.fascia_lines = []
        for _ in range(n_fl):
            d = rng.uniform(self.fat + 3.0, d0 + 3.0)
            s0 = rng.uniform(-60, 180)
            self.fascia_lines.append((d, rng.uniform(-0.08, 0.08), rng.uniform(0.3, 1.6),
                                      s0, s0 + rng.uniform(15, 120)))
        self.muscle_level = rng.uniform(0.22, 0.5)
        self.fibre_angle = rng.uniform(-0.25, 0.25)  # rad
        self.window_tissue = rng.uniform(0.4, 0.9)  # relative echo of soft tissue in windows

    # ---- labels
    def label_at(self, s: float):
        if s < self.sac_end:
            return "sacrum", "S1"
        for k in range(6):
            if s < self.start[k]:
                return "interspace", INTERSPACES[k]
            if s < self.end[k]:
                return "lamina", LEVELS[k]
        return "interspace", "above-T12"

    def boundaries(self):
        """Every class transition along the spine, caudal to cephalad."""
        b = [self.sac_end]
        for k in range(6):
            b += [self.start[k], self.end[k]]
        return np.array(b)

    # ---- per-column bone description for world columns s (mm)
    def bone(self, s: np.ndarray):
        depth = np.full(s.shape, np.inf)
        bright = np.zeros(s.shape)
        kind = np.zeros(s.shape, np.int8)  # 0 none, 1 sacrum, 2 lamina
        m = s < self.sac_end
        u = s[m] - self.sac_end  # <= 0
        a, lam, ph = self.sac_bumps
        d = (self.sac_depth - self.sac_slope * u + self.sac_curv * u * u
             + a * np.sin(2 * np.pi * u / lam + ph))
        # cephalad edge of the sacrum rounds off downwards over the last ~3 mm
        r = np.clip((u + 3.0) / 3.0, 0, 1)
        d = d + 2.0 * r ** 2
        depth[m] = d
        bright[m] = self.sac_b * (1 - 0.45 * r ** 2)
        kind[m] = 1
        for k in range(6):
            m = (s >= self.start[k]) & (s < self.end[k])
            u = s[m] - self.start[k]
            L = self.end[k] - self.start[k]
            rr = self.lam_round[k]
            tip = np.clip(1 - u / rr, 0, 1)
            d = (self.lam_tip[k] + self.lam_drop[k] * (u / L) ** self.lam_gamma[k]
                 + 1.6 * tip ** 2)
            # cephalad end dips a little (lamina curving away) and fades
            e = np.clip((u - (L - 2.0)) / 2.0, 0, 1)
            d = d + 1.2 * e ** 2
            depth[m] = d
            bright[m] = self.lam_b[k] * (1 - 0.5 * tip ** 2) * (1 - 0.4 * e)
            kind[m] = 2
        return depth, bright, kind

    def complexes(self, s: np.ndarray):
        """Depth and brightness of the posterior and anterior complexes (smooth, everywhere)."""
        win_c = np.concatenate([[-40.0], 0.5 * (np.concatenate([[0.0], self.end[:-1]]) + self.start)])
        pc_d = np.interp(s, win_c, np.concatenate([[self.pc_depth[0] + 3], self.pc_depth]))
        ac_d = np.interp(s, win_c, np.concatenate([[self.ac_depth[0] + 3], self.ac_depth]))
        pc_b = np.interp(s, win_c, np.concatenate([[0.0], self.pc_b]))
        ac_b = np.interp(s, win_c, np.concatenate([[0.0], self.ac_b]))
        return pc_d, pc_b, ac_d, ac_b


# --------------------------------------------------------------------------- scanner
class Scanner:
    """Imaging settings of one sweep."""

    def __init__(self, rng: np.random.Generator, anat: Anatomy, demo: bool = False):
        fov = rng.uniform(40.0, 50.0) if not demo else 45.0
        need = max(anat.ac_depth[:5].max(), anat.sac_depth) + rng.uniform(6.0, 14.0)
        depth = float(np.clip(max(need, rng.uniform(50.0, 90.0) if not demo else 60.0), 50.0, 90.0))
        depth = round(depth)  # a real cart offers whole-mm (or cm) depth settings
        self.x_mm = fov / RW
        self.y_mm = depth / RH
        self.depth_mm = depth
        self.fov_mm = fov
        self.dr_db = rng.uniform(45.0, 65.0)
        self.gain_db = rng.normal(0.0, 3.5)
        self.att_db_per_mm = rng.uniform(-0.05, 0.28)  # residual attenuation after TGC
        self.tgc_knots = rng.normal(0.0, 2.5, 6)       # dB, TGC curve bumps
        self.speckle_ax_mm = rng.uniform(0.12, 0.25)
        self.speckle_lat_mm = rng.uniform(0.25, 0.6)
        self.beam_mm = rng.uniform(0.35, 1.0)           # lateral blur of specular echoes
        self.noise = rng.uniform(1.0, 6.0)              # display-level electronic noise
        self.decorr_db = rng.uniform(0.8, 2.5)          # frame-to-frame speckle decorrelation
        self.shadow = rng.uniform(0.008, 0.045)
        self.reverb = rng.uniform(0.005, 0.04)
        self.skin_b = rng.uniform(140.0, 230.0)
        self.ringdown_mm = rng.uniform(1.5, 4.0)
        self.focus_mm = rng.uniform(0.45, 0.8) * depth
        self.liftoff_period_mm = rng.uniform(1.8, 4.5)
        self.liftoff_decay_mm = rng.uniform(6.0, 25.0)
        self.liftoff_b = rng.uniform(60.0, 170.0)
        self.freq_mhz = float(rng.choice([2.5, 3.5, 5.0, 6.0]))

    def tgc_db(self, depth_mm: np.ndarray) -> np.ndarray:
        knots_d = np.linspace(0, self.depth_mm, len(self.tgc_knots))
        return np.interp(depth_mm, knots_d, self.tgc_knots) - self.att_db_per_mm * depth_mm


# --------------------------------------------------------------------------- world
def _gauss_tf(n: int, sigma_px: float) -> np.ndarray:
    f = np.fft.fftfreq(n)
    return np.exp(-2 * (np.pi * f * sigma_px) ** 2)


def _blur_x(a: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return a
    F = np.fft.rfft(a, axis=1)
    f = np.fft.rfftfreq(a.shape[1])
    F *= np.exp(-2 * (np.pi * f * sigma_px) ** 2)[None, :]
    return np.fft.irfft(F, n=a.shape[1], axis=1)


class World:
    """The sweep's anatomy rendered once as a log-amplitude (dB) image.

    Row j is depth (j - _PAD + 0.5) * y_mm; column i is spine position
    s0 + (i + 0.5) * x_mm.
    """

    def __init__(self, rng: np.random.Generator, anat: Anatomy, sc: Scanner, s_lo: float, s_hi: float):
        self.x_mm, self.y_mm = sc.x_mm, sc.y_mm
        W = int(np.ceil((s_hi - s_lo) / sc.x_mm)) + 8
        H = RH + 2 * _PAD
        self.s0 = s_lo
        s = s_lo + (np.arange(W) + 0.5) * sc.x_mm
        z = ((np.arange(H) - _PAD + 0.5) * sc.y_mm)[:, None]
        S = s[None, :]
        y = sc.y_mm

        # --- speckle (complex Gaussian through the PSF -> Rayleigh envelope)
        noise = rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W))
        F = np.fft.fft2(noise)
        F *= _gauss_tf(H, sc.speckle_ax_mm / y)[:, None] * _gauss_tf(W, sc.speckle_lat_mm / sc.x_mm)[None, :]
        sp = np.abs(np.fft.ifft2(F))
        sp /= np.sqrt(np.mean(sp ** 2))

        # --- muscle fibre texture: oriented, long along fibres, thin across
        t = rng.standard_normal((H, W))
        F = np.fft.fft2(t)
        fy = np.fft.fftfreq(H)[:, None] / y  # cycles per mm
        fx = np.fft.fftfreq(W)[None, :] / sc.x_mm
        c, sn = np.cos(anat.fibre_angle), np.sin(anat.fibre_angle)
        f_along = fx * c + fy * sn
        f_across = -fx * sn + fy * c
        la, lc = rng.uniform(2.0, 5.0), rng.uniform(0.25, 0.5)
        F *= np.exp(-2 * np.pi ** 2 * ((f_along * la) ** 2 + (f_across * lc) ** 2))
        tex = np.real(np.fft.ifft2(F))
        tex /= tex.std() + 1e-9

        # --- soft tissue reflectivity R
        fa, fl, fp = anat.fat_var
        fat_d = anat.fat + fa * np.sin(2 * np.pi * S / fl + fp)
        muscle = anat.muscle_level * np.exp(0.45 * tex)
        fat = 0.12 * np.exp(0.25 * tex)
        R = np.where(z < fat_d, fat, muscle)
        # fat septa: a few faint horizontal-ish lines in the fat
        for _ in range(int(rng.integers(1, 4))):
            dd = rng.uniform(2.0, max(2.5, anat.fat - 1.0)) + rng.uniform(-0.03, 0.03) * S
            R = R + 0.35 * rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((z - dd) / 0.3) ** 2) * (z < fat_d)

        bd, bb, bk = anat.bone(s)
        pc_d, pc_b, ac_d, ac_b = anat.complexes(s)
        # inside windows (no bone) the tissue between lamina level and the posterior complex
        # is ligament/fat: a bit darker; the canal between the complexes is anechoic.
        no_bone = ~np.isfinite(bd)
        canal = (z > pc_d[None, :] + 0.5) & (z < ac_d[None, :] - 0.5)
        R = np.where(canal, 0.03, R)
        deep_win = (z > pc_d[None, :] - 8.0) & (z <= pc_d[None, :] + 0.5) & no_bone[None, :]
        R = np.where(deep_win, R * anat.window_tissue, R)
        R = np.where(z > ac_d[None, :] + 0.8, 0.05 * np.exp(0.3 * tex), R)

        # --- specular soft echoes: fascia, intermuscular lines, complexes
        Ssoft = anat.fascia_b * np.exp(-0.5 * ((z - fat_d) / 0.35) ** 2)
        for (d, sl, b, a0, a1) in anat.fascia_lines:
            w = np.clip(np.minimum(S - a0, a1 - S) / 5.0, 0, 1)
            Ssoft = Ssoft + b * w * np.exp(-0.5 * ((z - (d + sl * (S - a0))) / 0.3) ** 2)
        Ssoft = Ssoft + pc_b[None, :] * np.exp(-0.5 * ((z - pc_d[None, :]) / rng.uniform(0.35, 0.8)) ** 2)
        Ssoft = Ssoft + ac_b[None, :] * np.exp(-0.5 * ((z - ac_d[None, :]) / rng.uniform(0.4, 0.9)) ** 2)

        # --- bone: bright surface with a short tail, shadow beneath, weak reverberation
        bdf = np.where(np.isfinite(bd), bd, 1e3)[None, :]
        dz = z - bdf
        sig = rng.uniform(0.2, 0.35)
        tau = rng.uniform(0.3, 0.7)
        prof = np.where(dz < 0, np.exp(-0.5 * (dz / sig) ** 2), np.exp(-np.clip(dz, 0, None) / tau))
        Sbone = bb[None, :] * prof
        Sbone = Sbone + sc.reverb * bb[None, :] * np.exp(-0.5 * ((z - 2 * bdf) / 0.6) ** 2)
        mask = np.where(dz > 0.4, sc.shadow, 1.0)

        bsig = sc.beam_mm / sc.x_mm
        Ssoft = _blur_x(Ssoft, bsig)
        Sbone = _blur_x(Sbone, bsig)
        mask = np.clip(_blur_x(mask, bsig), sc.shadow, 1.0)

        A = R * sp * mask + Ssoft * (0.5 + 0.5 * sp) * mask ** 2 + Sbone * (0.65 + 0.35 * sp)
        dB = 20 * np.log10(A + 1e-4) + sc.tgc_db(np.clip(z, 0, None))
        self.db = dB.astype(np.float32)
        self.W, self.H = W, H


# --------------------------------------------------------------------------- sweep plan
class FrameState:
    """Everything that varies per frame besides the anatomy."""

    __slots__ = ("probe_mm", "lift_off", "contact_edge", "lowq", "gain_db", "press_px", "tilt")

    def __init__(self, probe_mm, lift_off=False, contact_edge=None, lowq=None,
                 gain_db=0.0, press_px=0.0, tilt=0.0):
        self.probe_mm = float(probe_mm)
        self.lift_off = bool(lift_off)
        # (side, fraction): image columns from that side lose contact (side -1 left, +1 right)
        self.contact_edge = contact_edge
        self.lowq = lowq  # None or (kind, strength)
        self.gain_db = gain_db
        self.press_px = press_px
        self.tilt = tilt


def _smooth_walk(rng, n, sigma, tau_frames):
    """Ornstein-Uhlenbeck-like slow random process with stationary std ~sigma."""
    a = np.exp(-1.0 / max(tau_frames, 1.0))
    e = rng.normal(0, sigma * np.sqrt(1 - a * a), n)
    x = np.empty(n)
    v = rng.normal(0, sigma)
    for i in range(n):
        v = a * v + e[i]
        x[i] = v
    return x


def _plan_random(rng, anat: Anatomy):
    """Waypoints: ('move', target_mm, speed_mm_s) / ('pause', seconds)."""
    seg = lambda k: 0.5 * (anat.start[k] + anat.end[k])  # noqa: E731
    p0 = anat.sac_end - rng.uniform(4.0, 22.0)
    zone = int(rng.integers(0, 4))
    if zone == 0:
        a, b = anat.end[2], anat.start[3]      # L2-L3
    elif zone == 1:
        a, b = anat.start[3], anat.end[3]      # L2
    elif zone == 2:
        a, b = anat.end[3], anat.start[4]      # L1-L2
    else:
        a, b = anat.start[4], anat.end[4] - 3.0  # L1
    final = rng.uniform(a + 1.0, b - 1.0)
    speed = lambda: float(np.exp(rng.uniform(np.log(3.0), np.log(20.0))))  # noqa: E731
    acts = [("pause", rng.uniform(0.3, 1.2))]
    n_rev = int(rng.choice([0, 1, 1, 2], p=[0.3, 0.3, 0.2, 0.2]))
    cur = p0
    # reversal turning points: somewhere between L5 and the final target
    tps = np.sort(rng.uniform(anat.start[0] + 2.0, final - 2.0, n_rev)) if n_rev else []
    for tp in tps:
        if tp <= cur + 3.0:
            continue
        acts.append(("move", tp, speed()))
        acts.append(("pause", rng.uniform(0.0, 0.8)))
        back = tp - rng.uniform(0.6, 2.2) * float(np.mean(anat.end - np.concatenate([[0], anat.end[:-1]])))
        back = max(back, anat.sac_end - 12.0)
        acts.append(("move", back, speed()))
        acts.append(("pause", rng.uniform(0.1, 1.0)))
        cur = back
    # optional mid-way pause on the way up
    if rng.random() < 0.5:
        mid = rng.uniform(cur + 5.0, final - 1.0) if final - cur > 8 else None
        if mid is not None:
            acts.append(("move", mid, speed()))
            acts.append(("pause", rng.uniform(0.2, 1.5)))
    acts.append(("move", final, speed()))
    acts.append(("pause", rng.uniform(0.3, 1.0)))
    return p0, acts


def _plan_demo(anat: Anatomy):
    w = lambda k: 0.5 * (anat.end[k - 1] + anat.start[k]) if k else 0.5 * (anat.sac_end + anat.start[0])  # noqa: E731
    p0 = anat.sac_end - 6.0
    return p0, [("pause", 0.2), ("move", w(2), 20.0), ("pause", 0.15),   # up to L3-L4
                ("move", w(1), 20.0), ("pause", 0.15),                   # back down to L4-L5
                ("move", w(3), 20.0), ("pause", 0.2)]                    # up to L2-L3


def _simulate(rng, fps, p0, acts, anat, max_frames=1500, n_lift=0, lowq_rate=0.0, acc=None):
    dt = 1.0 / fps
    acc = rng.uniform(25.0, 70.0) if acc is None else acc
    pos, vel = p0, 0.0
    probe, lift, edge, lowq = [], [], [], []
    # speed jitter (hand is not a motor)
    jit = _smooth_walk(rng, max_frames + 1, 0.15, fps * 0.6)
    est = sum(a[1] for a in acts if a[0] == "pause") * fps
    prev = p0
    for a in acts:
        if a[0] == "move":
            est += abs(a[1] - prev) / a[2] * fps
            prev = a[1]
    lift_at = sorted(int(x) for x in rng.uniform(12, max(13, est - 5), n_lift))
    lift_len = [int(rng.integers(5, 26)) for _ in lift_at]
    lift_drift = [rng.uniform(-2.0, 2.0) for _ in lift_at]
    ai = 0
    pause_left = None
    i = 0
    lq_left, lq_kind = 0, None
    while ai < len(acts) and i < max_frames:
        # lift-off event: the probe leaves the skin, drifts <= 2 mm, lands again
        if lift_at and i >= lift_at[0]:
            lift_at.pop(0)
            L, d = lift_len.pop(0), lift_drift.pop(0)
            vel = 0.0
            start = pos
            side = rng.choice([-1, 1])
            for j in range(L):
                if i >= max_frames:
                    break
                p = start + d * (j + 1) / L
                # first/last frames: contact already partly lost/regained on one side
                probe.append(p)
                lift.append(True)
                edge.append((side, rng.uniform(0.0, 0.25)) if j in (0, L - 1) and rng.random() < 0.5 else None)
                lowq.append(None)
                i += 1
            pos = start + d
            # the frame just after landing: partial contact (centre touches)
            if i < max_frames:
                probe.append(pos)
                lift.append(False)
                edge.append((side, rng.uniform(0.15, 0.45)))
                lowq.append(None)
                i += 1
            continue
        a = acts[ai]
        if a[0] == "pause":
            if pause_left is None:
                pause_left = int(round(a[1] * fps))
            if pause_left <= 0:
                pause_left = None
                ai += 1
                continue
            pause_left -= 1
            vel *= 0.3
            pos += vel * dt
        else:
            tgt, vmax = a[1], min(a[2] * (1.0 + jit[i]), 20.0)
            dist = tgt - pos
            if abs(dist) < 0.15 and abs(vel) < 2.0:
                ai += 1
                continue
            vcmd = np.sign(dist) * min(vmax, np.sqrt(2 * acc * abs(dist)) + 0.5)
            dv = np.clip(vcmd - vel, -acc * dt, acc * dt)
            vel += dv
            step = vel * dt
            if abs(step) > abs(dist):
                step = dist
            pos += step
        probe.append(pos)
        lift.append(False)
        # momentary low-quality frames (1-3 frames)
        if lq_left > 0:
            lq_left -= 1
            lowq.append(lq_kind)
        elif rng.random() < lowq_rate:
            kind = str(rng.choice(["blur", "dim", "noisy", "edge", "speckle"]))
            lq_kind = (kind, rng.uniform(0.3, 1.0))
            lq_left = int(rng.integers(0, 3))
            lowq.append(lq_kind)
        else:
            lowq.append(None)
        if lowq[-1] is not None and lowq[-1][0] == "edge":
            edge.append((rng.choice([-1, 1]), 0.15 + 0.3 * lowq[-1][1]))
        else:
            edge.append(None)
        i += 1
    return probe, lift, edge, lowq


# --------------------------------------------------------------------------- font / UI
_FONT = {
    "0": "01110100011001110101110011000101110", "1": "00100011000010000100001000010001110",
    "2": "01110100010000100010001000100011111", "3": "11110000010000101110000010000111110",
    "4": "00010001100101010010111110001000010", "5": "11111100001111000001000011000101110",
    "6": "00110010001000011110100011000101110", "7": "11111000010001000100010000100001000",
    "8": "01110100011000101110100011000101110", "9": "01110100011000101111000010001001100",
    ".": "00000000000000000000000000110001100", "-": "00000000000000011111000000000000000",
    ":": "00000011000110000000011000110000000", " ": "0" * 35,
    "A": "01110100011000111111100011000110001", "C": "01110100011000010000100001000101110",
    "D": "11110100011000110001100011000111110", "E": "11111100001000011110100001000011111",
    "F": "11111100001000011110100001000010000", "G": "01110100011000010111100011000101111",
    "H": "10001100011000111111100011000110001", "I": "01110001000010000100001000010001110",
    "K": "10001100101010011000101001001010001", "L": "10000100001000010000100001000011111",
    "M": "10001110111010110101100011000110001", "N": "10001110011010110011100011000110001",
    "O": "01110100011000110001100011000101110", "P": "11110100011000111110100001000010000",
    "R": "11110100011000111110101001001010001", "S": "01111100001000001110000010000111110",
    "T": "11111001000010000100001000010000100", "U": "10001100011000110001100011000101110",
    "Z": "11111000010001000100010001000011111", "B": "11110100011000111110100011000111110",
    "W": "10001100011000110101101011010101010", "/": "00001000010001000100010001000010000",
    "V": "10001100011000110001100010101000100", "Y": "10001100010101000100001000010000100",
    ">": "10000010000010000010001000100010000",
    "%": "11001110010001000100010001001110011", "X": "10001100010101000100010101000110001",
}


def draw_text(img: np.ndarray, x: int, y: int, text: str, value: int = 200, scale: int = 1):
    for ch in text.upper():
        g = _FONT.get(ch, _FONT[" "])
        bm = np.array([int(b) for b in g], np.uint8).reshape(7, 5)
        if scale > 1:
            bm = np.kron(bm, np.ones((scale, scale), np.uint8))
        h, w = bm.shape
        if 0 <= y and y + h <= img.shape[0] and 0 <= x and x + w <= img.shape[1]:
            sub = img[y:y + h, x:x + w]
            sub[bm > 0] = value
        x += w + scale


def _base_screen(rng: np.random.Generator, sc: Scanner, fps: int) -> np.ndarray:
    img = np.zeros((SCREEN_H, SCREEN_W), np.uint8)
    # header text blocks
    hosp = str(rng.choice(["GENERAL HOSP", "ST MARY", "CITY CLINIC", "UNIV MED CTR"]))
    draw_text(img, 8, 6, hosp, 210)
    draw_text(img, 8, 18, "PHANTOM SYNTHETIC", 170)
    draw_text(img, 150, 6, f"LIN{int(rng.integers(6, 13))}-{int(rng.integers(2, 5))} MSK SPINE", 230, 2)
    draw_text(img, 150, 30, f"{sc.freq_mhz:.1f}MHZ  D{sc.depth_mm / 10:.1f}CM  G{int(50 + sc.gain_db)}  DR{int(sc.dr_db)}", 190)
    draw_text(img, 150, 42, f"FR{fps}  MI 0.{int(rng.integers(3, 9))}  TIS 0.{int(rng.integers(1, 6))}", 160)
    draw_text(img, 520, 6, "2026/11/25", 190)
    # left info panel
    for j, t in enumerate(["B MODE", "GEN", f"FOC {sc.focus_mm / 10:.1f}", "PWR 100%", "PERS 2"]):
        draw_text(img, 8, 90 + 14 * j, t, 150)
    # TGC curve at the left: x offset = TGC gain
    d = np.arange(RH) * sc.y_mm
    tg = sc.tgc_db(d) + sc.att_db_per_mm * d  # the knob positions (what the user set)
    xs = np.clip(np.round(95 + 3.0 * tg).astype(int), 80, 120)
    img[RY + np.arange(RH), xs] = 120
    img[RY:RY + RH, 80] = 50
    # depth scale at the right of the image: ticks every 5 mm, labels every cm
    xsc = RX + RW + 6
    img[RY:RY + RH, xsc] = 180
    for mm in range(0, int(sc.depth_mm) + 1, 5):
        yy = RY + int(round(mm / sc.y_mm))
        if yy >= RY + RH:
            yy = RY + RH - 1
        L = 7 if mm % 10 == 0 else 3
        img[yy, xsc:xsc + L] = 200
        if mm % 10 == 0 and mm > 0:
            draw_text(img, xsc + 10, max(yy - 3, 0), str(mm // 10), 200)
    draw_text(img, xsc + 4, RY + RH + 6, "CM", 170)
    # focus marker: small triangle left of the scale
    fy = RY + int(round(sc.focus_mm / sc.y_mm))
    for k in range(4):
        img[fy - k:fy + k + 1, xsc - 5 + k] = 220
    # orientation marker (top-left corner of the image): a small bright dot
    img[RY - 8:RY - 4, RX:RX + 4] = 230
    # bottom text
    draw_text(img, 150, 440, "LUMBAR PSO  CEPH >", 170)
    return img


# --------------------------------------------------------------------------- sweep
class Sweep:
    """One synthetic sweep. ``frame(i)`` renders frame i (640x480 uint8)."""

    def __init__(self, seed: int, demo: bool = False):
        self.seed = int(seed)
        self.demo = demo
        rng_a, rng_s, rng_w, rng_p, rng_u = (_rng(seed, k) for k in range(5))
        self.anat = Anatomy(rng_a, demo=demo)
        self.sc = Scanner(rng_s, self.anat, demo=demo)
        self.fps = 15 if demo else int(rng_p.integers(15, 26))
        if demo:
            p0, acts = _plan_demo(self.anat)
            n_lift, lowq_rate = 0, 0.0
        else:
            p0, acts = _plan_random(rng_p, self.anat)
            n_lift = int(rng_p.choice([0, 1, 2], p=[0.55, 0.3, 0.15]))
            lowq_rate = rng_p.uniform(0.0, 0.025)
        probe, lift, edge, lowq = _simulate(rng_p, self.fps, p0, acts, self.anat, n_lift=n_lift,
                                            lowq_rate=lowq_rate, acc=80.0 if demo else None)
        n = len(probe)
        tremor = _smooth_walk(rng_p, n, rng_p.uniform(0.03, 0.15), 2.0)
        # the end of a sweep must stay at or below the L1 lamina
        hi = self.anat.end[4] - 0.5
        probe = np.minimum(np.array(probe) + tremor, hi)
        gain = _smooth_walk(rng_p, n, rng_p.uniform(0.3, 1.8), self.fps * 2.0)
        press = _smooth_walk(rng_p, n, rng_p.uniform(0.5, 4.0), self.fps * 1.5)
        tilt = rng_p.uniform(-0.02, 0.02) + _smooth_walk(rng_p, n, rng_p.uniform(0.002, 0.02), self.fps * 2.0)
        if demo:
            press *= 0.3
        self.states = [FrameState(probe[i], lift[i], edge[i], lowq[i], gain[i], press[i], tilt[i])
                       for i in range(n)]
        s_lo = min(probe.min(), p0) - self.sc.fov_mm / 2 - 6.0
        s_hi = max(probe.max(), p0) + self.sc.fov_mm / 2 + 6.0
        self.world = World(rng_w, self.anat, self.sc, s_lo, s_hi)
        self.base = _base_screen(rng_u, self.sc, self.fps)
        # fixed per-sweep lift-off reverberation profile (depends on depth only)
        d = (np.arange(RH) + 0.5) * self.sc.y_mm
        per = self.sc.liftoff_period_mm
        band = np.exp(-0.5 * ((np.mod(d, per) - per / 2) / (0.12 * per)) ** 2)
        self.liftoff_rows = (self.sc.liftoff_b * band * np.exp(-d / self.sc.liftoff_decay_mm)
                             + 6.0 * np.exp(-d / 2.0) * 20)

    def __len__(self):
        return len(self.states)

    # ---- truth
    def truth_frame(self, i: int) -> dict:
        st = self.states[i]
        if st.lift_off:
            cls, pos = "off_spine", None
        else:
            cls, pos = self.anat.label_at(st.probe_mm)
        return {"index": i, "class": cls, "position": pos,
                "probe_mm": round(float(st.probe_mm - self.anat.sac_end), 3), "lift_off": st.lift_off}

    def truth(self) -> dict:
        return {"seed": self.seed, "fps": self.fps, "width_px": SCREEN_W, "height_px": SCREEN_H,
                "region": dict(REGION),
                "mm_per_px": {"x_mm": round(self.sc.x_mm, 6), "y_mm": round(self.sc.y_mm, 6)},
                "cephalad": "right",
                "frames": [self.truth_frame(i) for i in range(len(self))]}

    # ---- rendering
    def render_region(self, st: FrameState, rng: np.random.Generator) -> np.ndarray:
        """The 360x360 ultrasound image (uint8) for a frame state."""
        sc, wd = self.sc, self.world
        x0 = (st.probe_mm - wd.s0) / wd.x_mm - RW / 2  # world column (float) of image column 0
        cols = np.arange(RW)
        xi = np.floor(x0).astype(int)
        f = x0 - xi
        ci = np.clip(xi + cols, 0, wd.W - 2)
        dy = np.round(st.press_px + st.tilt * (cols - RW / 2)).astype(int)
        dy = np.clip(dy, -_PAD + 1, _PAD - 1)
        rows = np.arange(RH)[:, None] + _PAD + dy[None, :]
        img = (1 - f) * wd.db[rows, ci[None, :]] + f * wd.db[rows, ci[None, :] + 1]
        d = (np.arange(RH)[:, None] + 0.5) * sc.y_mm
        g = sc.gain_db + st.gain_db
        noise_sd = sc.noise
        if st.lowq is not None:
            kind, k = st.lowq
            if kind == "dim":
                g -= 6 + 12 * k
            elif kind == "noisy":
                noise_sd += 6 + 14 * k
            elif kind == "blur":
                L = int(3 + 12 * k)
                cs = np.cumsum(np.pad(img, ((0, 0), (L, 0)), mode="edge"), axis=1)
                img = (cs[:, L:] - cs[:, :-L]) / L
            elif kind == "speckle":
                img = img + rng.normal(0, 3 + 4 * k, img.shape)
        img = img + rng.normal(0, sc.decorr_db, img.shape)
        # log compression to display
        top = 20 * np.log10(8.0)
        v = (img + g - (top - sc.dr_db)) * (255.0 / sc.dr_db)
        # skin line and near-field ring-down (fixed to the transducer, not the anatomy)
        v = v + sc.skin_b * np.exp(-0.5 * ((d - 0.6) / 0.35) ** 2) \
              + 0.5 * sc.skin_b * np.exp(-d / sc.ringdown_mm) * (0.6 + 0.4 * np.cos(2 * np.pi * d / 1.1))
        lift_img = None
        if st.lift_off or st.contact_edge is not None:
            lift_img = (self.liftoff_rows[:, None] * (0.85 + 0.15 * rng.random((1, RW)))
                        + rng.normal(0, 2.5 + sc.noise, (RH, RW)))
        if st.lift_off:
            out = lift_img
            if st.contact_edge is not None:  # a sliver of contact at one edge
                side, frac = st.contact_edge
                m = self._edge_mask(side, frac)
                out = m * v + (1 - m) * lift_img
            v = out
        elif st.contact_edge is not None:
            side, frac = st.contact_edge
            m = 1 - self._edge_mask(side, frac)  # contact lost on that side only
            v = m * v + (1 - m) * lift_img
        v = v + rng.normal(0, noise_sd, v.shape)
        return np.clip(v, 0, 255).astype(np.uint8)

    @staticmethod
    def _edge_mask(side: int, frac: float) -> np.ndarray:
        """1 over the `frac` of the width at `side` (-1 left, +1 right), soft edge."""
        c = (np.arange(RW) + 0.5) / RW
        e = (c - (1 - frac)) if side > 0 else (frac - c)
        return np.clip(0.5 + e * 20.0, 0, 1)[None, :]

    def compose(self, region: np.ndarray, i: int) -> np.ndarray:
        scr = self.base.copy()
        scr[RY:RY + RH, RX:RX + RW] = region
        t = i / self.fps
        draw_text(scr, 520, 440, f"{int(t // 60):02d}:{t % 60:05.2f}", 180)
        draw_text(scr, 520, 452, f"F{i:04d}", 140)
        return scr

    def frame(self, i: int) -> np.ndarray:
        rng = _rng(self.seed, 100, i)
        return self.compose(self.render_region(self.states[i], rng), i)

    def frame_at(self, st: FrameState, noise_seed, i: int = 0) -> np.ndarray:
        """A frame for an arbitrary state (used to oversample class boundaries in training)."""
        return self.compose(self.render_region(st, _rng(self.seed, 200, *noise_seed)), i)
