"""Synthetic transverse lumbar ultrasound phantom with in-plane needles.

Pure numpy/scipy. One call to :func:`render_frame` turns a seed into a
640x480 8-bit gray screen (chrome + image region) and its ground truth.
No patient data is used anywhere; every structure below is a parametric
caricature of what a transverse lumbar scan shows.

Coordinates (the same in the truth files, the model and the Rust service)
-------------------------------------------------------------------------
* Screen pixels: integer coordinates are pixel *centres*; x to the right,
  y down. Truth points are sub-pixel floats in these coordinates.
* Image region: x = 140..499, y = 60..419 (360x360). The skin line is the
  region's top row (y = 60): ``depth_mm = (y - 60) * mm_per_px_y``.
  Lateral offset: ``lateral_mm = (x - 319.5) * mm_per_px_x`` (319.5 is the
  centre between the two middle columns; positive = image right).
* Square pixels: ``mm_per_px = depth_setting_mm / 360`` on both axes.

Anatomy (in an anatomy frame u = lateral, v = depth, origin at the target,
rotated by the probe tilt and shifted by the lateral offset)
---------------------------------------------------------------------------
Interspace (``plane_visible``): no spinous process at the midline; the
interlaminar window shows the posterior complex (ligamentum flavum + dura, a
bright line, slightly peaked at the midline), the anechoic canal, and the
anterior complex (PLL / posterior vertebral body, bright, shadow below);
articular processes either side of the window and transverse processes
further out, all bone with acoustic shadows. Soft tissue: skin, subcutaneous
fat with septa, thoracolumbar fascia, paraspinal muscle with striations and
fascial planes.

Target: the epidural space at the midline just deep to the posterior complex,
i.e. the point u = 0 on the deep surface of the flavum band (anatomy origin).

Off the interspace (``plane_visible`` false): a bright spinous-process tip at
the midline with a full shadow, laminae sloping laterally with shadows; no
posterior/anterior complex. ``offset`` in [0, 1] blends the two views
(0 = centre of the interspace, 1 = over the spinous process); the plane is
labelled visible when offset < 0.5.

Lift-off: the probe is off the back: dark, reverberation bands, no anatomy.

Needles (all in region pixels, then converted): in-plane needles (bright
shaft, brighter tip, comet-tail reverberation below the shaft, shadowed by
bone like any echo), out-of-plane needles (a bright dot with a short tail)
and linear artefacts (a straight bright line that is not a needle).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

FRAME_W, FRAME_H = 640, 480
REGION_X, REGION_Y, REGION_W, REGION_H = 140, 60, 360, 360
CENTER_X = REGION_X + (REGION_W - 1) / 2.0  # 319.5
DEPTH_SETTINGS_MM = (60, 70, 80, 90, 100, 110, 120)

# Random-frame kind mix: interspace (visible), spinous (off), lift-off.
P_KIND = (0.55, 0.37, 0.08)
# offset ranges for random frames (labels are offset < 0.5)
OFFSET_VISIBLE = (0.0, 0.42)
OFFSET_HIDDEN = (0.58, 1.0)
P_NEAR_THRESHOLD = 0.3
OFFSET_NEAR_VISIBLE = (0.3, 0.5)
OFFSET_NEAR_HIDDEN = (0.5, 0.7)
VISIBLE_THRESHOLD = 0.5


def smoothstep(a, b, x):
    """Cubic smoothstep; float32 for arrays, float for scalars."""
    if np.isscalar(x):
        t = min(1.0, max(0.0, (float(x) - a) / (b - a)))
        return t * t * (3 - 2 * t)
    t = (x - np.float32(a)) * np.float32(1.0 / (b - a))
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (3 - 2 * t)


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

def sample_params(rng: np.random.Generator, kind: str | None = None) -> dict:
    """Samples everything that defines a scene except the noise fields."""
    if kind is None:
        kind = rng.choice(["interspace", "spinous", "liftoff"], p=P_KIND)
    p: dict = {"kind": str(kind)}
    d_t = rng.uniform(30.0, 90.0)
    p["target_depth_mm"] = d_t
    need = d_t + rng.uniform(22.0, 34.0) + (10.0 if rng.random() < 0.25 else 0.0)
    depth = next((d for d in DEPTH_SETTINGS_MM if d >= need), DEPTH_SETTINGS_MM[-1])
    p["depth_setting_mm"] = float(depth)
    p["mm_per_px"] = depth / REGION_H
    p["lateral_offset_mm"] = rng.uniform(-15.0, 15.0)
    p["tilt_deg"] = rng.uniform(-5.0, 5.0)
    # 30 % of frames come from the transition band around the label threshold
    # (window narrowing, spinous shadow growing): the ambiguous cases.
    near = rng.random() < P_NEAR_THRESHOLD
    if kind == "interspace":
        p["offset"] = rng.uniform(*(OFFSET_NEAR_VISIBLE if near else OFFSET_VISIBLE))
    elif kind == "spinous":
        p["offset"] = rng.uniform(*(OFFSET_NEAR_HIDDEN if near else OFFSET_HIDDEN))
    else:
        p["offset"] = 1.0

    ob = rng.random() ** 1.3  # obesity-like factor 0..1
    p["obesity"] = ob
    fat = d_t * (0.12 + 0.45 * ob) * rng.uniform(0.85, 1.15)
    p["fat_mm"] = float(np.clip(fat, 4.0, d_t - 16.0))
    p["sp_tip_mm"] = p["fat_mm"] + rng.uniform(2.0, 6.0)  # depth of the spinous tip
    p["skin_mm"] = rng.uniform(1.0, 2.5)

    # interspace geometry (mm, anatomy frame, v relative to the target)
    p["w0"] = rng.uniform(5.0, 9.0)  # half width of the interlaminar window
    p["flavum_thk"] = rng.uniform(1.2, 2.6)
    p["flavum_amp"] = rng.uniform(0.35, 1.2)
    p["flavum_peak"] = rng.uniform(0.0, 0.35)  # V slope towards the midline
    p["dura_line"] = rng.uniform(0.2, 0.55) if rng.random() < 0.4 else 0.0
    p["dura_gap"] = rng.uniform(1.2, 2.5)
    p["canal_mm"] = rng.uniform(12.0, 18.0)
    p["ac_amp"] = rng.uniform(0.5, 1.3)
    p["ac_curv"] = rng.uniform(-0.02, 0.03)
    p["cauda"] = rng.uniform(0.0, 0.25)
    ap = []
    for side in (-1, 1):
        r = rng.uniform(5.0, 8.0)
        ap.append({
            "side": side,
            "r": r,
            "u": p["w0"] + r * rng.uniform(0.55, 0.95) + rng.uniform(-0.8, 0.8),
            "v": -rng.uniform(2.0, 7.5),
            "k": rng.uniform(0.05, 0.14),
            "amp": rng.uniform(0.6, 1.3),
        })
    p["ap"] = ap
    tp = []
    for side in (-1, 1):
        tp.append({
            "side": side,
            "u": rng.uniform(24.0, 34.0),
            "v": rng.uniform(-2.0, 6.0),
            "half": rng.uniform(5.0, 10.0),
            "slope": rng.uniform(-0.12, 0.12),
            "amp": rng.uniform(0.5, 1.2),
        })
    p["tp"] = tp
    # spinous-process view
    p["sp_r"] = rng.uniform(3.0, 5.5)
    p["sp_k"] = rng.uniform(0.08, 0.25)
    p["sp_amp"] = rng.uniform(0.8, 1.5)
    p["lam_v0"] = -rng.uniform(6.0, 11.0)
    p["lam_slope"] = rng.uniform(0.15, 0.45)
    p["lam_amp"] = rng.uniform(0.6, 1.2)
    p["isl_amp"] = rng.uniform(0.0, 0.25)

    # soft tissue texture
    p["fat_echo"] = rng.uniform(0.18, 0.35)
    p["muscle_echo"] = rng.uniform(0.35, 0.6)
    p["deep_echo"] = rng.uniform(0.25, 0.45)
    p["n_septa"] = int(rng.integers(1, 6))
    p["n_fascial"] = int(rng.integers(0, 4))
    p["striation"] = rng.uniform(0.2, 0.7)

    # imaging chain
    p["atten"] = rng.uniform(0.003, 0.010) * (1.0 + 1.2 * ob)  # 1/mm on envelope
    p["fat_atten_extra"] = rng.uniform(0.004, 0.015) * (0.5 + ob)
    p["tgc_comp"] = rng.uniform(0.4, 0.95)
    p["gain_db"] = rng.uniform(-7.0, 7.0)
    p["dr_db"] = rng.uniform(42.0, 62.0)
    p["psf_ax_mm"] = rng.uniform(0.22, 0.40)
    p["psf_lat_mm"] = rng.uniform(0.45, 0.9) * (1.0 + 0.5 * ob)
    p["psf_grow"] = rng.uniform(0.3, 1.2) * (1.0 + ob)  # extra blur at depth
    p["reverb_amp"] = rng.uniform(0.0, 0.04) * (0.6 + ob)
    p["reverb_mm"] = rng.uniform(2.5, 6.0)
    p["haze"] = rng.uniform(0.0, 0.012) * (0.5 + ob)
    p["noise"] = rng.uniform(0.0005, 0.003)
    p["spec_speckle"] = rng.uniform(0.2, 0.6)
    p["lateral_fade"] = rng.uniform(0.0, 0.5)
    # partial loss of skin contact at one edge of the probe
    p["contact_loss"] = (rng.uniform(0.08, 0.3) * rng.choice([-1, 1])) if rng.random() < 0.08 else 0.0

    # needles
    p["needles"] = sample_needles(rng, p) if kind != "liftoff" else []
    p["chrome_seed"] = int(rng.integers(0, 2**31 - 1))
    return p


def sample_needles(rng: np.random.Generator, p: dict) -> list:
    """Needle-like objects in region-pixel coordinates (see module doc)."""
    s = p["mm_per_px"]
    d_t = p["target_depth_mm"]
    tx = CENTER_X - REGION_X + p["lateral_offset_mm"] / s  # target, region px
    out = []
    r = rng.random()
    if r < 0.5:
        out.append(_sample_in_plane(rng, p, tx, d_t, s))
        if rng.random() < 0.22:
            out.append(_sample_linear_artefact(rng, p, s))
    elif r < 0.6:
        out.append(_sample_out_of_plane(rng, p, s))
    elif r < 0.66:
        out.append(_sample_linear_artefact(rng, p, s))
    return out


def _sample_in_plane(rng, p, tx, d_t, s):
    side = -1 if rng.random() < 0.5 else 1  # -1 enters from the image left
    ang = rng.uniform(20.0, 60.0)
    tip_depth = rng.uniform(6.0, min(d_t + 12.0, p["depth_setting_mm"] - 4.0))
    tip_y = tip_depth / s
    tip_x = tx + rng.uniform(-12.0, 12.0) / s
    tip_x = float(np.clip(tip_x, 25, REGION_W - 26))
    # direction from entry to tip: down and towards -side
    a = math.radians(ang)
    dx, dy = -side * math.cos(a), math.sin(a)
    # walk back to the region border (left/right side or skin line)
    ts = []
    if dx > 0:
        ts.append((tip_x - (-0.5)) / dx)
    else:
        ts.append((tip_x - (REGION_W - 0.5)) / dx)
    ts.append((tip_y - 0.0) / dy)
    t = min(ts)
    ex, ey = tip_x - dx * t, tip_y - dy * t
    angle_deg = math.degrees(math.atan2(dy, dx))  # image axis angle, entry->tip
    return {
        "kind": "in_plane",
        "tip": (tip_x, tip_y),
        "entry": (ex, ey),
        "angle_deg": angle_deg,
        "amp": rng.uniform(0.7, 1.6) * (1.0 - 0.45 * (ang - 20.0) / 40.0),
        "width_mm": rng.uniform(0.6, 1.1),
        "tip_amp": rng.uniform(1.2, 2.2),
        "comet_mm": rng.uniform(0.9, 1.8),
        "comet_n": int(rng.integers(2, 7)),
        "comet_decay": rng.uniform(0.35, 0.65),
        "fade": 1.0,
    }


def _sample_linear_artefact(rng, p, s):
    """A straight bright line that is not a needle (fascial plane, artefact)."""
    ang = rng.uniform(3.0, 40.0) * (1 if rng.random() < 0.5 else -1)
    length = rng.uniform(15.0, 45.0) / s
    cy = rng.uniform(4.0, max(6.0, p["target_depth_mm"] * 0.8)) / s
    cx = rng.uniform(40, REGION_W - 40)
    a = math.radians(ang)
    dx, dy = math.cos(a), math.sin(a)
    p0 = (cx - dx * length / 2, cy - dy * length / 2)
    p1 = (cx + dx * length / 2, cy + dy * length / 2)
    # the deeper end plays "tip"
    if p0[1] > p1[1]:
        p0, p1 = p1, p0
    p0 = (float(np.clip(p0[0], 0, REGION_W - 1)), float(np.clip(p0[1], 0, REGION_H - 1)))
    p1 = (float(np.clip(p1[0], 0, REGION_W - 1)), float(np.clip(p1[1], 0, REGION_H - 1)))
    return {
        "kind": "linear_artefact",
        "tip": p1,
        "entry": p0,
        "angle_deg": math.degrees(math.atan2(p1[1] - p0[1], p1[0] - p0[0])),
        "amp": rng.uniform(0.5, 1.2),
        "width_mm": rng.uniform(0.5, 1.2),
        "tip_amp": 0.0,
        "comet_mm": 1.0,
        "comet_n": 0,
        "comet_decay": 0.5,
        "fade": 1.0,
    }


def _sample_out_of_plane(rng, p, s):
    y = rng.uniform(6.0, p["target_depth_mm"] + 5.0) / s
    x = CENTER_X - REGION_X + (p["lateral_offset_mm"] + rng.uniform(-20, 20)) / s
    x = float(np.clip(x, 10, REGION_W - 11))
    return {
        "kind": "out_of_plane",
        "tip": (x, y),
        "entry": None,
        "angle_deg": None,
        "amp": rng.uniform(1.0, 2.0),
        "width_mm": rng.uniform(0.8, 1.5),
        "tip_amp": 0.0,
        "comet_mm": rng.uniform(0.9, 1.6),
        "comet_n": int(rng.integers(1, 5)),
        "comet_decay": rng.uniform(0.35, 0.6),
        "fade": 1.0,
    }


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

class Noise:
    """The random fields of one frame; kept between frames of a sequence."""

    def __init__(self, rng: np.random.Generator):
        shape = (REGION_H, REGION_W)
        self.re = rng.standard_normal(shape, dtype=np.float32)
        self.im = rng.standard_normal(shape, dtype=np.float32)
        self.tex = rng.standard_normal(shape, dtype=np.float32)
        self.elec = rng.standard_normal(shape, dtype=np.float32)
        self.septa_seed = int(rng.integers(0, 2**31 - 1))

    def decorrelate(self, rng: np.random.Generator, rho: float, tex_rho: float | None = None):
        """Mixes in fresh noise: rho = 1 keeps the field, 0 replaces it."""
        c = math.sqrt(max(0.0, 1.0 - rho * rho))
        self.re = np.float32(rho) * self.re + np.float32(c) * rng.standard_normal(self.re.shape, dtype=np.float32)
        self.im = np.float32(rho) * self.im + np.float32(c) * rng.standard_normal(self.im.shape, dtype=np.float32)
        tr = rho if tex_rho is None else tex_rho
        ct = math.sqrt(max(0.0, 1.0 - tr * tr))
        self.tex = np.float32(tr) * self.tex + np.float32(ct) * rng.standard_normal(self.tex.shape, dtype=np.float32)
        self.elec = rng.standard_normal(self.elec.shape, dtype=np.float32)


def _band(d, sigma):
    return np.exp(np.float32(-0.5 / (sigma * sigma)) * d * d)


class _Grid:
    """Pixel grid of the region in probe (X, Z) and anatomy (u, v) mm."""

    def __init__(self, p):
        s = p["mm_per_px"]
        self.s = s
        jj, ii = np.mgrid[0:REGION_H, 0:REGION_W].astype(np.float32)
        self.ii, self.jj = ii, jj
        self.X = (ii - np.float32((REGION_W - 1) / 2.0)) * np.float32(s)
        self.Z = jj * np.float32(s)
        self.off = p.get("lateral_offset_mm", 0.0)
        self.dt = p.get("target_depth_mm", 50.0)
        th = math.radians(p.get("tilt_deg", 0.0))
        self.c, self.sn = math.cos(th), math.sin(th)
        dx = self.X - np.float32(self.off)
        dz = self.Z - np.float32(self.dt)
        self.u = np.float32(self.c) * dx + np.float32(self.sn) * dz
        self.v = np.float32(-self.sn) * dx + np.float32(self.c) * dz

    def roi(self, ulo, uhi, vlo, vhi):
        """Pixel slices covering the anatomy box [ulo,uhi]x[vlo,vhi] (or None)."""
        xs, ys = [], []
        for uu in (ulo, uhi):
            for vv in (vlo, vhi):
                dx = self.c * uu - self.sn * vv
                dz = self.sn * uu + self.c * vv
                xs.append((dx + self.off) / self.s + (REGION_W - 1) / 2.0)
                ys.append((dz + self.dt) / self.s)
        x0 = max(0, int(math.floor(min(xs))) - 2)
        x1 = min(REGION_W, int(math.ceil(max(xs))) + 3)
        y0 = max(0, int(math.floor(min(ys))) - 2)
        y1 = min(REGION_H, int(math.ceil(max(ys))) + 3)
        if x0 >= x1 or y0 >= y1:
            return None
        return (slice(y0, y1), slice(x0, x1))


def _add_surface(g, spec, opac, f_v, lo, hi, amp, thk, edge, v_range, bone=0.0,
                 mirror=False, centre_shift=0.0):
    """Adds a reflecting surface v = f_v(u), u in [lo, hi], to spec (and, when
    bone > 0, a thin opaque layer just under it to opac, which the beam-wise
    cumulative sum turns into an acoustic shadow).

    The band is centred at f_v(u) + centre_shift; the bone layer starts at
    f_v(u). With mirror, u is taken as -u (structures on the left side)."""
    vlo, vhi = v_range
    ulo, uhi = (-hi, -lo) if mirror else (lo, hi)
    r = g.roi(ulo - edge - 1, uhi + edge + 1, vlo - 4 * thk - 2, vhi + 4 * thk + 4.5)
    if r is None:
        return
    u = g.u[r]
    if mirror:
        u = -u
    v = g.v[r]
    inside = smoothstep(lo - edge, lo + edge, u) * (1 - smoothstep(hi - edge, hi + edge, u))
    fu = f_v(u)
    d = v - fu
    if amp != 0:
        # specular: a surface reflects back only where it faces the beam
        h = np.float32(0.25)
        slope = (f_v(u + h) - f_v(u - h)) * np.float32(2.0)
        facing = 1.0 / (1.0 + slope * slope) ** 2
        spec[r] += np.float32(amp) * _band(d - np.float32(centre_shift), thk) * inside * facing
    if bone > 0:
        layer = smoothstep(-0.2, 0.3, d) * (1 - smoothstep(3.5, 4.0, d))
        opac[r] += np.float32(bone * 2.0) * inside * layer


def render_region(p: dict, noise: Noise) -> tuple[np.ndarray, np.ndarray]:
    """Renders the 360x360 image region (uint8) and the bone-transmission map."""
    g = _Grid(p)
    s = g.s
    H, W = REGION_H, REGION_W
    X, Z, u, v = g.X, g.Z, g.u, g.v
    if p["kind"] == "liftoff":
        return _render_liftoff(p, noise, Z), np.zeros((H, W), np.float32)

    t = p["offset"]
    srng = np.random.default_rng(noise.septa_seed)
    f32 = np.float32

    # --- soft tissue echogenicity (scatter strength) ---
    xr = X[0]
    fat_row = p["fat_mm"] + 1.2 * np.sin(xr / 9.0 + srng.uniform(0, 6.28)) * srng.uniform(0.2, 1.0)
    fat_b = np.broadcast_to(fat_row[None, :], (H, W))
    tex = ndimage.gaussian_filter(noise.tex, (0.6 / s, 3.0 / s), truncate=3.0)
    tex = np.tanh(tex * f32(1.0 / (tex.std() + 1e-6)))
    in_fat = Z < fat_b
    echo = np.where(in_fat, f32(p["fat_echo"]) * (1 + f32(0.25) * tex),
                    f32(p["muscle_echo"]) * (1 + f32(p["striation"] * 0.5) * tex))
    deep = v > p["canal_mm"] + 2
    echo[deep] = f32(p["deep_echo"]) * (1 + f32(0.15) * tex[deep])
    ns = int(math.ceil(p["skin_mm"] / s))
    echo[:ns] = 0.9

    spec = np.zeros((H, W), np.float32)  # specular reflectors (coherent)
    opac = np.zeros((H, W), np.float32)  # bone opacity per mm
    # skin line and fascia (probe frame, limited rows)
    ymax = min(H, int((p["fat_mm"] + 4) / s) + 1)
    Zt, Xt = Z[:ymax], X[:ymax]
    spec[:ymax] += f32(0.5) * _band(Zt - f32(p["skin_mm"]), 0.35)
    spec[:ymax] += f32(srng.uniform(0.15, 0.45)) * _band(Zt - fat_b[:ymax], 0.4)
    # fat septa
    for _ in range(p["n_septa"]):
        y0 = srng.uniform(p["skin_mm"] + 1.5, max(p["skin_mm"] + 2.0, p["fat_mm"] - 1.0))
        x0, x1 = sorted(srng.uniform(xr.min(), xr.max(), 2))
        m = smoothstep(x0 - 2, x0 + 2, Xt) * (1 - smoothstep(x1 - 2, x1 + 2, Xt))
        yy = y0 + srng.uniform(0.3, 1.5) * np.sin(Xt / srng.uniform(4, 12) + srng.uniform(0, 6.28))
        spec[:ymax] += f32(srng.uniform(0.08, 0.3)) * _band(Zt - yy, 0.3) * m
    # fascial planes in muscle (oblique bright lines), distractors for needles
    for _ in range(p["n_fascial"]):
        ang = math.radians(srng.uniform(-35, 35))
        cx = srng.uniform(-25, 25)
        cz = srng.uniform(p["fat_mm"] + 2, p["target_depth_mm"] - 2)
        L = srng.uniform(6, 25)
        along = (X - f32(cx)) * f32(math.cos(ang)) + (Z - f32(cz)) * f32(math.sin(ang))
        across = -(X - f32(cx)) * f32(math.sin(ang)) + (Z - f32(cz)) * f32(math.cos(ang))
        m = 1 - smoothstep(L / 2 - 2, L / 2 + 2, np.abs(along))
        spec += f32(srng.uniform(0.05, 0.25)) * _band(across, 0.35) * m * ~in_fat

    # --- interspace structures ---
    w = p["w0"] * (1.0 - smoothstep(0.15, 0.75, t))
    vis = 1.0 - smoothstep(0.45, 0.8, t)  # window structures fade out
    pk = p["flavum_peak"]
    thk = p["flavum_thk"]

    def fl_v(uu):
        return f32(pk) * (np.sqrt(uu * uu + f32(1.0)) - f32(1.0))

    if w > 0.3 and vis > 0:
        edge = min(1.0, w * 0.4)
        vr = (-thk - 1, pk * w + 1)
        # flavum band occupies v in [fl_v - thk, fl_v]; the target is its deep surface
        _add_surface(g, spec, opac, fl_v, -w, w, 0.55 * p["flavum_amp"] * vis, thk / 2.5, edge, vr,
                     centre_shift=-thk / 2)
        if p["dura_line"] > 0:
            _add_surface(g, spec, opac, lambda uu: fl_v(uu) + f32(p["dura_gap"]), -w, w,
                         0.55 * p["dura_line"] * p["flavum_amp"] * vis, 0.35, edge,
                         (vr[0] + p["dura_gap"], vr[1] + p["dura_gap"]))
        # canal: anechoic between the complexes
        r = g.roi(-w - edge, w + edge, -1, p["canal_mm"] + 2)
        if r is not None:
            uu, vv = u[r], v[r]
            inside = smoothstep(-w - edge, -w + edge, uu) * (1 - smoothstep(w - edge, w + edge, uu))
            canal = inside * smoothstep(-0.3, 0.6, vv - fl_v(uu)) * (1 - smoothstep(-0.5, 0.5, vv - f32(p["canal_mm"])))
            echo[r] = echo[r] * (1 - canal) + f32(0.01) * canal
            if p["cauda"] > 0:
                spec[r] += f32(p["cauda"] * vis * 0.3) * canal * np.clip(tex[r] * 3 - 2.2, 0, 1)
        # anterior complex (bone)
        ac_v = lambda uu: f32(p["canal_mm"]) + f32(p["ac_curv"]) * uu * uu  # noqa: E731
        cm = p["canal_mm"]
        _add_surface(g, spec, opac, ac_v, -w * 1.25, w * 1.25, p["ac_amp"] * vis, 0.5, edge,
                     (cm - 0.05 * w * w, cm + 0.05 * w * w), bone=vis)
        # interspinous ligament: faint vertical streak above the flavum
        r = g.roi(-3, 3, p["fat_mm"] - p["target_depth_mm"], -thk)
        if r is not None and p["isl_amp"] > 0:
            uu, vv = u[r], v[r]
            isl = _band(uu, 1.0) * (1 - smoothstep(-thk - 1, -thk, vv)) * (Z[r] > fat_b[r])
            echo[r] += f32(p["isl_amp"]) * isl
    # articular processes
    for ap in p["ap"]:
        cu = abs(ap["u"])
        f = lambda uu, cu=cu, ap=ap: f32(ap["v"]) + f32(ap["k"]) * (uu - f32(cu)) ** 2  # noqa: E731
        _add_surface(g, spec, opac, f, cu - ap["r"], cu + ap["r"], ap["amp"], 0.7, 1.0,
                     (ap["v"], ap["v"] + ap["k"] * ap["r"] ** 2), bone=1.0, mirror=ap["side"] < 0)
    # transverse processes
    for tp in p["tp"]:
        cu = tp["u"]
        f = lambda uu, cu=cu, tp=tp: f32(tp["v"]) + f32(tp["slope"]) * (uu - f32(cu))  # noqa: E731
        dv = abs(tp["slope"]) * tp["half"]
        _add_surface(g, spec, opac, f, cu - tp["half"], cu + tp["half"], tp["amp"], 0.7, 1.0,
                     (tp["v"] - dv, tp["v"] + dv), bone=1.0, mirror=tp["side"] < 0)
    # laminae close the window as the probe leaves the interspace
    lam_a = smoothstep(0.05, 0.45, t)
    if lam_a > 0:
        lo = max(w, p["sp_r"] * 0.6 * smoothstep(0.4, 0.9, t))
        v0 = p["lam_v0"] * (1 - 0.6 * (1 - smoothstep(0.3, 0.8, t)))
        for side, ap in zip((-1, 1), p["ap"]):
            hi = ap["u"]
            if hi <= lo + 0.5:
                continue
            f = lambda uu, lo=lo, v0=v0: f32(v0) + f32(p["lam_slope"]) * (uu - f32(lo))  # noqa: E731
            _add_surface(g, spec, opac, f, lo, hi, p["lam_amp"] * lam_a, 0.7, 0.8,
                         (v0, v0 + p["lam_slope"] * (hi - lo)), bone=lam_a, mirror=side < 0)
    # spinous process tip (off the interspace)
    sp_a = smoothstep(0.35, 0.7, t)
    if sp_a > 0:
        v_sp = p["sp_tip_mm"] - p["target_depth_mm"]
        f = lambda uu: f32(v_sp) + f32(p["sp_k"]) * uu * uu  # noqa: E731
        _add_surface(g, spec, opac, f, -p["sp_r"], p["sp_r"], p["sp_amp"] * sp_a, 0.7, 0.8,
                     (v_sp, v_sp + p["sp_k"] * p["sp_r"] ** 2), bone=sp_a)

    # --- needles (specular, drawn in region pixels) ---
    spec_n = None
    if p["needles"]:
        spec_n = np.zeros((H, W), np.float32)
        for nd in p["needles"]:
            _draw_needle(spec_n, nd, s, g.ii, g.jj)

    # --- imaging chain ---
    # shadows: transmission along the beam (columns), exclusive cumulative sum
    cum = np.cumsum(opac, axis=0) * f32(s)
    trans = np.empty_like(cum)
    trans[0] = 1.0
    np.exp(-cum[:-1], out=trans[1:])
    # attenuation with partial TGC compensation
    att_map = np.full((H, W), p["atten"], np.float32)
    att_map[in_fat] += f32(p["fat_atten_extra"])
    att = np.cumsum(att_map, axis=0) * f32(s)
    att = np.exp(-(att - f32(p["tgc_comp"] * p["atten"]) * Z))
    lat = (1.0 - p["lateral_fade"] * (np.abs(xr) / np.abs(xr).max()) ** 4).astype(np.float32)[None, :]
    gain_map = trans * att * lat
    if p.get("contact_loss", 0.0):
        cl = p["contact_loss"]
        xn = (np.arange(W, dtype=np.float32) / (W - 1))
        if cl < 0:
            xn = xn[::-1]
        edge = 1.0 - smoothstep(1.0 - abs(cl) - 0.04, 1.0 - abs(cl) + 0.04, xn)
        gain_map = gain_map * (f32(0.01) + f32(0.99) * edge)[None, :]

    # speckle: complex scatterers filtered by a depth-growing PSF
    amp = np.sqrt(np.maximum(echo, 0.0))
    sig_shallow = (p["psf_ax_mm"] / s, p["psf_lat_mm"] / s)
    grow = 1.0 + p["psf_grow"] * p["depth_setting_mm"] / 100.0
    sig_deep = (p["psf_ax_mm"] * (1 + 0.4 * (grow - 1)) / s, p["psf_lat_mm"] * grow / s)
    wdeep = (Z * f32(1.0 / p["depth_setting_mm"]))

    def env_of(sig):
        zr = ndimage.gaussian_filter(amp * noise.re, sig, truncate=3.0)
        zi = ndimage.gaussian_filter(amp * noise.im, sig, truncate=3.0)
        e = np.sqrt(zr * zr + zi * zi)
        k = math.sqrt(4 * math.pi * sig[0] * sig[1]) / 1.2533  # mean |z| ~ amp
        sp = ndimage.gaussian_filter(spec, sig, truncate=3.0)
        return e * f32(k), sp

    e1, sp1 = env_of(sig_shallow)
    e2, sp2 = env_of(sig_deep)
    env_t = e1 + (e2 - e1) * wdeep
    sp_b = sp1 + (sp2 - sp1) * wdeep
    # specular reflectors carry some speckle modulation too
    mod = np.clip(1.0 + f32(p["spec_speckle"]) * (env_t / (amp + f32(0.05)) - 1.0), 0.2, 2.5)
    env = (f32(TISSUE_LEVEL) * env_t + sp_b * mod) * gain_map
    # needles: thin, shadowed, attenuated
    if spec_n is not None:
        nb = ndimage.gaussian_filter(spec_n, (sig_shallow[0], sig_shallow[1] * 0.6), truncate=3.0)
        env += nb * gain_map
    # reverberation (near-field bands) and haze
    zc = Z[:, :1]
    rv = p["reverb_amp"] * np.exp(-zc / 12.0) * (0.5 + 0.5 * np.cos(2 * math.pi * zc / p["reverb_mm"])) ** 4
    env += rv.astype(np.float32) * (f32(0.6) + f32(0.25) * np.abs(noise.re))
    env += (f32(p["haze"]) * np.exp(-zc / f32(25.0))) * np.abs(noise.im)
    clutter = ndimage.gaussian_filter(noise.elec, (0.8, 1.6), truncate=2.0)
    env += f32(p["noise"] * 2.5) * np.abs(clutter) * (f32(0.3) + wdeep)
    img = _log_compress(env, p["gain_db"], p["dr_db"])
    return img, trans


TISSUE_LEVEL = 0.05


def _log_compress(env, gain_db, dr_db):
    db = 20.0 * np.log10(np.maximum(env, 1e-6)) + gain_db
    # 0 dB ~ bright bone; map [-dr, +3] to [0, 255]
    out = (db + dr_db) / (dr_db + 3.0)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _render_liftoff(p, noise, Z):
    """Probe off the back: dark image with reverberation bands (A-lines)."""
    rng = np.random.default_rng(noise.septa_seed)
    gap = rng.uniform(3.0, 9.0)
    decay = rng.uniform(4.0, 14.0)
    bands = (0.5 + 0.5 * np.cos(2 * math.pi * Z / gap)) ** 6 * np.exp(-Z / decay)
    W = Z.shape[1]
    # partial contact strip fades in from one side sometimes
    xs = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    side = rng.uniform(-1.5, 1.5)
    contact = 1.0 / (1.0 + np.exp(-(xs - side) * rng.uniform(3, 12) * rng.choice([-1, 1])))
    speck = ndimage.gaussian_filter(noise.re, (1.0, 3.0)) ** 2 * 3.0
    env = rng.uniform(0.3, 1.2) * bands * (0.7 + 0.3 * contact) + 0.01 * speck * contact * np.exp(-Z / 20.0)
    env = env + rng.uniform(0.0005, 0.003) * np.abs(ndimage.gaussian_filter(noise.elec, (0.8, 1.6)))
    env = env * (1.0 + 0.3 * np.abs(ndimage.gaussian_filter(noise.im, (2.0, 8.0))))
    return _log_compress(env.astype(np.float32), p["gain_db"], p["dr_db"])


def _draw_needle(out, nd, s, ii, jj):
    """Adds one needle-like object to the specular map (region pixels)."""
    amp = nd["amp"] * nd["fade"]
    if amp <= 0:
        return
    half_w = max(0.35, nd["width_mm"] / s / 2.0)
    if nd["kind"] == "out_of_plane":
        x, y = nd["tip"]
        r2 = (ii - x) ** 2 + ((jj - y) * 1.3) ** 2
        out += amp * np.exp(-0.5 * r2 / (half_w * 1.2) ** 2)
        step = nd["comet_mm"] / s
        for k in range(1, nd["comet_n"] + 1):
            r2 = ((ii - x) / 1.6) ** 2 + ((jj - y - k * step) * 1.6) ** 2
            out += amp * nd["comet_decay"] ** k * np.exp(-0.5 * r2 / half_w ** 2)
        return
    (x0, y0), (x1, y1) = nd["entry"], nd["tip"]
    L = math.hypot(x1 - x0, y1 - y0)
    if L < 1e-3:
        return
    ux, uy = (x1 - x0) / L, (y1 - y0) / L
    # restrict work to a bounding box
    pad = 4 + nd["comet_n"] * nd["comet_mm"] / s + 3 * half_w
    xa, xb = int(max(0, min(x0, x1) - pad)), int(min(out.shape[1], max(x0, x1) + pad + 1))
    ya, yb = int(max(0, min(y0, y1) - pad)), int(min(out.shape[0], max(y0, y1) + pad + 1))
    if xa >= xb or ya >= yb:
        return
    X = ii[ya:yb, xa:xb]
    Y = jj[ya:yb, xa:xb]
    sub = out[ya:yb, xa:xb]

    def seg(dy_shift, a):
        px, py = X - x0, Y - dy_shift - y0
        along = px * ux + py * uy
        across = -px * uy + py * ux
        m = smoothstep(-1.0, 0.5, along) * (1 - smoothstep(L - 0.5, L + 0.5, along))
        return a * m * np.exp(-0.5 * (across / half_w) ** 2)

    sub += seg(0.0, amp)
    step = nd["comet_mm"] / s
    for k in range(1, nd["comet_n"] + 1):
        sub += seg(k * step, 0.5 * amp * nd["comet_decay"] ** k)
    if nd["tip_amp"] > 0:
        r2 = (X - x1) ** 2 + (Y - y1) ** 2
        sub += amp * nd["tip_amp"] * np.exp(-0.5 * r2 / (half_w * 1.3) ** 2)


# ---------------------------------------------------------------------------
# Chrome (everything outside the image region)
# ---------------------------------------------------------------------------

_GLYPHS = None


def _glyphs():
    global _GLYPHS
    if _GLYPHS is None:
        g = np.random.default_rng(12345).random((40, 7, 5)) < 0.45
        _GLYPHS = g
    return _GLYPHS


def _text(img, x, y, n, rng, scale=1, val=200):
    gl = _glyphs()
    for k in range(n):
        g = gl[rng.integers(0, len(gl))]
        if scale > 1:
            g = np.kron(g, np.ones((scale, scale), bool))
        h, w = g.shape
        xx = x + k * (w + scale)
        if xx + w >= FRAME_W or y + h >= FRAME_H:
            break
        img[y:y + h, xx:xx + w][g] = val


def draw_chrome(img: np.ndarray, p: dict):
    rng = np.random.default_rng(p["chrome_seed"])
    val = int(rng.integers(150, 240))
    # header / footer text-like blocks
    for row, n in ((8, 24), (22, 16), (36, 10)):
        _text(img, 10, row, int(rng.integers(n // 2, n)), rng, 1 + (row == 8), val)
    for row in range(90, 300, 22):
        _text(img, 8, row, int(rng.integers(4, 12)), rng, 1, val - 40)
    _text(img, 520, 20, int(rng.integers(5, 12)), rng, 1, val)
    _text(img, 150, 440, int(rng.integers(10, 30)), rng, 1, val - 30)
    # orientation marker next to the region's top-left corner
    img[62:70, 128:136] = 230
    # depth scale: tick every 10 mm, long every 50 mm, labels
    s = p["mm_per_px"]
    x0 = REGION_X + REGION_W + 4
    for mm in range(0, int(p["depth_setting_mm"]) + 1, 10):
        y = REGION_Y + int(round(mm / s))
        if y >= REGION_Y + REGION_H:
            y = REGION_Y + REGION_H - 1
        ln = 8 if mm % 50 == 0 else 4
        img[y, x0:x0 + ln] = 210
        if mm % 20 == 0 and mm > 0:
            _text(img, x0 + 12, y - 3, 2 if mm < 100 else 3, rng, 1, 190)
    img[REGION_Y:REGION_Y + REGION_H, x0] = 120
    # focus marker
    fy = REGION_Y + int(min(REGION_H - 6, p["target_depth_mm"] / s + rng.uniform(-40, 40)))
    img[fy - 3:fy + 4, x0 - 2] = 200
    # gray bar
    img[100:260, 600:612] = np.linspace(255, 0, 160, dtype=np.float32)[:, None].astype(np.uint8)


# ---------------------------------------------------------------------------
# Truth and the public API
# ---------------------------------------------------------------------------

def region_to_screen(x, y):
    return x + REGION_X, y + REGION_Y


def px_to_mm(x_screen, y_screen, s):
    """Screen px -> (depth_mm from the skin line, lateral_mm from the centre)."""
    return (y_screen - REGION_Y) * s, (x_screen - CENTER_X) * s


def target_screen(p: dict) -> tuple[float, float]:
    s = p["mm_per_px"]
    return (CENTER_X + p["lateral_offset_mm"] / s, REGION_Y + p["target_depth_mm"] / s)


def truth_of(p: dict, trans: np.ndarray) -> dict:
    s = p["mm_per_px"]
    visible = p["kind"] != "liftoff" and p["offset"] < VISIBLE_THRESHOLD
    tr = {
        "plane_visible": bool(visible),
        "view": p["kind"] if p["kind"] == "liftoff" else ("interspace" if visible else "spinous"),
        "interspace_offset": round(float(p["offset"]), 4),
        "mm_per_px": [s, s],
        "depth_setting_mm": p["depth_setting_mm"],
        "tilt_deg": round(p["tilt_deg"], 3),
        "obesity": round(p["obesity"], 3),
    }
    if visible:
        tx, ty = target_screen(p)
        d, l = px_to_mm(tx, ty, s)
        tr["target_px"] = [tx, ty]
        tr["target_mm"] = {"depth": d, "lateral": l}
    else:
        tr["target_px"] = None
        tr["target_mm"] = None
    needles = []
    for nd in p["needles"]:
        if nd["fade"] < 0.1:
            continue
        tx, ty = region_to_screen(*nd["tip"])
        d, l = px_to_mm(tx, ty, s)
        e = None
        if nd["entry"] is not None:
            ex, ey = region_to_screen(*nd["entry"])
            e = [ex, ey]
        xi = int(np.clip(round(nd["tip"][0]), 0, REGION_W - 1))
        yi = int(np.clip(round(nd["tip"][1]), 0, REGION_H - 1))
        needles.append({
            "kind": nd["kind"],
            "tip_px": [tx, ty],
            "tip_mm": {"depth": d, "lateral": l},
            "angle_deg": nd["angle_deg"],
            "entry_px": e,
            "tip_visible": bool(trans[yi, xi] > 0.5) if trans.any() else True,
            # 1 = fully in the beam plane; < 1 while the probe slides away
            "strength": round(float(nd["fade"]), 3),
        })
    tr["needles"] = needles
    return tr


def compose(region: np.ndarray, p: dict) -> np.ndarray:
    img = np.zeros((FRAME_H, FRAME_W), np.uint8)
    draw_chrome(img, p)
    img[REGION_Y:REGION_Y + REGION_H, REGION_X:REGION_X + REGION_W] = region
    return img


def render_params(p: dict, noise: Noise) -> tuple[np.ndarray, dict]:
    region, trans = render_region(p, noise)
    return compose(region, p), truth_of(p, trans)


def render_frame(seed: int, kind: str | None = None) -> tuple[np.ndarray, dict]:
    """One independent frame from a seed: (640x480 uint8, truth dict)."""
    rng = np.random.default_rng([seed, 0x7A5E])
    p = sample_params(rng, kind)
    noise = Noise(rng)
    img, tr = render_params(p, noise)
    tr["seed"] = int(seed)
    return img, tr


def render_sequence(seed: int, still=40, slide=30, hold=10):
    """A probe held still for `still` frames (a needle may advance), then
    sliding off the interspace over `slide` frames, then `hold` frames off.
    Yields (frame, truth)."""
    rng = np.random.default_rng([seed, 0x5E0])
    p = sample_params(rng, "interspace")
    p["offset"] = rng.uniform(0.0, 0.15)
    p["needles"] = [n for n in p["needles"] if n["kind"] != "out_of_plane"]
    if rng.random() < 0.7 and not any(n["kind"] == "in_plane" for n in p["needles"]):
        s = p["mm_per_px"]
        tx = CENTER_X - REGION_X + p["lateral_offset_mm"] / s
        p["needles"].insert(0, _sample_in_plane(rng, p, tx, p["target_depth_mm"], s))
    noise = Noise(rng)
    base = {k: p[k] for k in ("lateral_offset_mm", "tilt_deg", "offset")}
    full = [(n["entry"], n["tip"]) for n in p["needles"]]
    n_total = still + slide + hold
    for f in range(n_total):
        q = dict(p)
        q["needles"] = [dict(n) for n in p["needles"]]
        if f < still:
            phase = "still"
            q["lateral_offset_mm"] = base["lateral_offset_mm"] + rng.normal(0, 0.08)
            q["tilt_deg"] = base["tilt_deg"] + rng.normal(0, 0.1)
            q["offset"] = base["offset"]
            if f > 0:
                noise.decorrelate(rng, 0.97, 1.0)
            prog = min(1.0, 0.3 + 0.7 * f / max(1, still - 1))
        else:
            phase = "sliding" if f < still + slide else "off"
            k = min(1.0, (f - still + 1) / slide)
            q["offset"] = base["offset"] + (1.0 - base["offset"]) * k
            q["lateral_offset_mm"] = base["lateral_offset_mm"] + rng.normal(0, 0.3) + 1.5 * k
            q["tilt_deg"] = base["tilt_deg"] + rng.normal(0, 0.3)
            noise.decorrelate(rng, 0.75 if phase == "sliding" else 0.95, 0.9)
            prog = 1.0
        for n, (e, tip) in zip(q["needles"], full):
            if n["kind"] == "in_plane":
                n["tip"] = (e[0] + (tip[0] - e[0]) * prog, e[1] + (tip[1] - e[1]) * prog)
            n["fade"] = float(math.exp(-((q["offset"] - base["offset"]) / 0.15) ** 2))
        img, tr = render_params(q, noise)
        tr.update({"seed": int(seed), "sequence_frame": f, "phase": phase})
        yield img, tr


# ---------------------------------------------------------------------------
# Model input (the integer box filter shared with the Rust service)
# ---------------------------------------------------------------------------

def box_matrix(S: int, N: int) -> np.ndarray:
    """(N, S) matrix whose rows average the integer boxes of the resize."""
    M = np.zeros((N, S), np.float64)
    for o in range(N):
        s0 = (o * S) // N
        s1 = max(s0 + 1, ((o + 1) * S) // N)
        M[o, s0:s1] = 1.0 / (s1 - s0)
    return M


def box_sizes(S: int, N: int) -> np.ndarray:
    out = np.zeros(N, np.int64)
    for o in range(N):
        s0 = (o * S) // N
        out[o] = max(s0 + 1, ((o + 1) * S) // N) - s0
    return out


_BOX = {}


def model_input(frame: np.ndarray, N: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Region crop -> box resize -> /255 -> normalise; float32 (N, N).

    Sums in integers and divides in float32 like the Rust service."""
    key = N
    if key not in _BOX:
        A = np.zeros((N, REGION_H), np.int64)
        for o in range(N):
            s0 = (o * REGION_H) // N
            s1 = max(s0 + 1, ((o + 1) * REGION_H) // N)
            A[o, s0:s1] = 1
        cnt = np.outer(A.sum(1), A.sum(1)).astype(np.float32)  # square region
        _BOX[key] = (A, cnt)
    A, cnt = _BOX[key]
    crop = frame[REGION_Y:REGION_Y + REGION_H, REGION_X:REGION_X + REGION_W].astype(np.int64)
    sums = A @ crop @ A.T
    scale = np.float32(1.0 / (255.0 * std))
    bias = np.float32(mean / std)
    return (sums.astype(np.float32) / cnt) * scale - bias


def screen_to_input(x, y, N: int):
    """Screen px -> model-input px (linear map; pixel centres at integers)."""
    return ((x - REGION_X + 0.5) * N / REGION_W - 0.5, (y - REGION_Y + 0.5) * N / REGION_H - 0.5)


def input_to_screen(u, v, N: int):
    return ((u + 0.5) * REGION_W / N - 0.5 + REGION_X, (v + 0.5) * REGION_H / N - 0.5 + REGION_Y)
