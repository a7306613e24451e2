"""Family A: analytic lateral lumbar fluoroscopy (projected-ellipsoid renderer).

    python gen_fluoro_a.py --seed-start 0 --count 3 --frames 60 --out DIR

Each clip: DIR/a_<seed>/frames.y4m + truth.json (contract: fluoro_truth.py).

Renderer: the line integral mu*L is summed analytically in the calibrated
mid-sagittal plane (world mm, X anterior, Y cranial). Vertebral bodies are
elliptic cylinders seen from the side (chord-length profile), with a cortical
shell, endplate plates with a central concavity, an anterior waist, a
trabecular texture fixed to the bone, and posterior elements (pedicles,
transverse processes, articular processes, lamina, spinous process) as
projected ellipsoids. Sacrum (S1 body + fused segments + ala), iliac wings
with crests, a trunk soft-tissue profile and bowel gas. Kinematics: built
from the sacrum up, each disc given by its angle, mid height and posterior
slip in the lower vertebra's endplate frame. Detector: primary + scatter,
Poisson noise, blur, image intensifier (vignetting, veiling glare,
pincushion + S-twist, circular field) or flat panel (rectangular blades),
log display with auto-brightness lag, both polarities, metal, hands.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fluoro_truth as ft  # noqa: E402

W = H = ft.W
MU_W = 0.020  # 1/mm, water/soft tissue at the effective energy
MU_TRAB = 0.0265
MU_CORT = 0.050
MU_METAL = 0.60


def smooth_in(d, w=0.4):
    """1 inside (d < 0), 0 outside, soft edge of width w (mm)."""
    return np.clip(0.5 - d / (2 * w), 0.0, 1.0)


class Vert:
    """Geometry of one vertebra in its own frame: origin at PI, u anterior
    along the inferior endplate, v cranial (mm)."""

    def __init__(self, rng, label, sacral=False):
        self.label = label
        self.sacral = sacral
        lumb = label.startswith("L")
        self.D = rng.uniform(33, 46) if not sacral else rng.uniform(38, 48)
        self.Hp = rng.uniform(23, 29) if lumb else (rng.uniform(20, 25) if not sacral else 26.0)
        wedge = {"L5": (1.5, 5), "L4": (0, 2.5), "S1": (0, 0)}.get(label, (-3.5, 0.5))
        self.wedge = math.radians(rng.uniform(*wedge))
        self.Wb = rng.uniform(42, 56)  # lateral width of the body
        self.cort = rng.uniform(0.7, 1.4)
        self.conc = rng.uniform(0.6, 2.0)
        self.waist = rng.uniform(0.8, 2.5)
        self.double = rng.uniform(0, 1.8) if rng.random() < 0.6 else 0.0  # slight axial rotation
        self.bmd = rng.uniform(0.55, 1.25)  # bone density factor (osteoporosis .. dense)
        self.spin_len = rng.uniform(22, 34)
        self.spin_tilt = math.radians(rng.uniform(-28, -5))
        n = 160
        tex = ndimage.gaussian_filter(rng.standard_normal((n, n)), (2.4, 0.7))
        tex += 0.5 * ndimage.gaussian_filter(rng.standard_normal((n, n)), (0.6, 2.0))
        self.tex = (tex / tex.std()).astype(np.float32)  # 0.4 mm per texel, [v, u]

    def corners_local(self):
        AS = (self.D * math.cos(self.wedge), self.Hp + self.D * math.sin(self.wedge))
        return np.array([AS, (0.0, self.Hp), (0.0, 0.0), (self.D, 0.0)])

    def render(self, u, v):
        """mu*L (dimensionless) at local coordinates (arrays)."""
        D, Hp = self.D, self.Hp
        out = np.zeros(u.shape, np.float32)
        s = np.clip(u / D, 0, 1)
        bump = np.sin(np.pi * s)
        v_bot = self.conc * bump
        v_top = Hp + u * math.tan(self.wedge) - self.conc * bump
        hv = np.clip(v / max(Hp, 1), 0, 1)
        u_ant = D - self.waist * np.sin(np.pi * hv)
        u_post = 0.6 * np.sin(np.pi * hv)
        # chord through the elliptic cross-section
        uc = (u - (u_post + u_ant) / 2) / np.maximum((u_ant - u_post) / 2, 1)
        chord_o = self.Wb * np.sqrt(np.clip(1 - uc**2, 0, 1))
        t = self.cort / max(D / 2, 1)
        chord_i = (self.Wb - 2 * self.cort) * np.sqrt(np.clip(1 - (uc / (1 - t)) ** 2, 0, 1))
        dv_ = np.maximum(v_bot - v, v - v_top)
        du_ = np.maximum(u_post - u, u - u_ant)
        rr = 1.6  # rounded corners (rounded-box distance)
        dist = np.hypot(np.maximum(du_ + rr, 0), np.maximum(dv_ + rr, 0)) + np.minimum(np.maximum(du_, dv_) + rr, 0) - rr
        inside = smooth_in(dist)
        ti = ((v - 3) / 0.4).astype(np.int32) % self.tex.shape[0]
        tj = ((u + 2) / 0.4).astype(np.int32) % self.tex.shape[1]
        tex = self.tex[ti, tj]
        dmu_t = (MU_TRAB - MU_W) * self.bmd * (1 + 0.35 * tex)
        dmu_c = (MU_CORT - MU_W) * self.bmd
        body = dmu_t * chord_i + dmu_c * (chord_o - chord_i)
        # endplates (cortical plates seen edge-on); a double contour if rotated
        ep = 0.0
        for off, wgt in ((-self.double / 2, 0.5), (self.double / 2, 0.5)) if self.double else ((0.0, 1.0),):
            ep = ep + wgt * (np.exp(-((v - v_bot - off - 0.6) / 0.7) ** 2) + np.exp(-((v - v_top - off + 0.6) / 0.7) ** 2))
        body = body + dmu_c * 0.8 * chord_o * ep * inside
        out += inside * body
        if self.sacral:
            return out
        # posterior elements: (cu, cv, a, b, tilt, lateral thickness, mu)
        prims = [
            (-9, Hp * 0.64, 12, 5.0, 0.05, 2 * 7, MU_CORT * 0.8),  # pedicles
            (-12, Hp * 0.55, 7, 5.0, 0.0, 2 * 14, MU_TRAB * 1.1),  # transverse processes
            (-19, Hp + 4, 4.5, 7.5, 0.25, 2 * 9, MU_CORT * 0.8),  # superior articular processes
            (-23, -3.5, 4.5, 7.0, 0.2, 2 * 9, MU_CORT * 0.8),  # inferior articular processes
            (-20, Hp * 0.45, 5, Hp * 0.55, 0.3, 2 * 6, MU_CORT * 0.7),  # laminae
        ]
        sl = self.spin_len
        prims.append((-24 - sl / 2 * math.cos(self.spin_tilt), Hp * 0.42 + sl / 2 * math.sin(self.spin_tilt),
                      sl / 2, 5.5, -self.spin_tilt, 7, MU_CORT * 0.75))
        for cu, cv, a, b, tilt, T, mu in prims:
            ct, st = math.cos(tilt), math.sin(tilt)
            du, dv = u - cu, v - cv
            x = (du * ct + dv * st) / a
            y = (-du * st + dv * ct) / b
            r2 = x * x + y * y
            shell = np.sqrt(np.clip(1 - r2, 0, 1))
            core = np.sqrt(np.clip(1 - r2 / 0.6, 0, 1))
            out += (mu - MU_W) * self.bmd * T * (shell - 0.2 * core)
        return out


def sacrum_extra(u, v, V, rng_state):
    """Fused sacral segments below S1, ala and posterior sacral mass (local S1 frame)."""
    out = np.zeros(u.shape, np.float32)
    D = V.D
    # fused segments curving posteriorly (kyphotic sacral curve)
    for k in range(1, 5):
        ang = -0.22 * k
        cu = D * 0.45 * (1 - 0.12 * k) + 14 * (1 - math.cos(ang)) - 6 * k * 0.6
        cv = -k * 21 + 8
        a, b = D * (0.5 - 0.07 * k), 10.5
        ct, st = math.cos(ang), math.sin(ang)
        du, dv = u - cu, v - cv
        x = (du * ct + dv * st) / a
        y = (-du * st + dv * ct) / b
        r2 = x * x + y * y
        out += (MU_TRAB - MU_W) * V.bmd * 40 * (1 - 0.12 * k) * np.sqrt(np.clip(1 - r2**2, 0, 1))
        # remnant disc lines (fused)
        out += 0.05 * V.bmd * np.exp(-((y - 1.0) / 0.12) ** 2) * (np.abs(x) < 0.9)
    # ala / lateral masses superimposed on the posterior half
    du, dv = (u + 5) / 30, (v - 2) / 38
    r2 = du**2 + dv**2
    out += (MU_TRAB - MU_W) * 60 * V.bmd * np.sqrt(np.clip(1 - r2, 0, 1))
    # sacral canal posterior wall / median crest
    du, dv = (u + 22) / 8, (v + 20) / 40
    out += (MU_CORT - MU_W) * 8 * V.bmd * np.sqrt(np.clip(1 - du**2 - dv**2, 0, 1))
    return out


def ilium(X, Y, P):
    """Iliac wings (thin plates seen obliquely) with a dense crest band; P: pelvis params in world mm."""
    cx, cy, R, th, wing = P
    du, dv = X - cx, Y - cy
    r = np.sqrt(du**2 + dv**2)
    ang = np.arctan2(dv, du)
    in_arc = (ang > th - 1.3) & (ang < th + 1.1)
    crest = np.exp(-((r - R) / 3.0) ** 2) * in_arc
    plate = smooth_in(r - R, 4.0) * np.clip((ang - (th - 1.6)) * 2, 0, 1) * np.clip(((th + 1.3) - ang) * 2, 0, 1)
    return (MU_CORT - MU_W) * 10 * crest + (MU_TRAB - MU_W) * wing * plate


class Clip:
    def __init__(self, seed, n_frames):
        rng = np.random.default_rng(1_000_003 + seed)
        self.rng = rng
        self.seed = seed
        self.n = n_frames
        self.sp = rng.uniform(0.24, 0.45)  # mm/px in the calibrated plane
        self.ant_sign = 1 if rng.random() < 0.5 else -1  # +1: anterior to the right
        self.polarity = "bone_bright" if rng.random() < 0.5 else "bone_dark"
        self.detector = "image_intensifier" if rng.random() < 0.55 else "flat_panel"
        top = ["S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11"]
        self.labels = top
        self.verts = [Vert(rng, lab, sacral=(lab == "S1")) for lab in top]
        rest = {"L5-S1": (8, 16), "L4-L5": (7, 13), "L3-L4": (5, 10), "L2-L3": (3, 8), "L1-L2": (1, 6),
                "T12-L1": (-2, 4), "T11-T12": (-3, 3)}
        flex = {"L5-S1": (3, 8), "L4-L5": (7, 14), "L3-L4": (7, 13), "L2-L3": (6, 12), "L1-L2": (5, 10),
                "T12-L1": (3, 7), "T11-T12": (2, 5)}
        self.segs = []
        fused = set()
        self.screws = []
        if rng.random() < 0.25:  # posterior instrumentation: screws at two adjacent levels, fused segment
            k = int(rng.integers(1, 5))
            self.screws = [k, k + 1]
            fused.add(k)
        unstable = int(rng.integers(0, 6)) if rng.random() < 0.3 else -1
        for i in range(1, len(top)):
            name = f"{top[i]}-{top[i - 1]}"
            rom = 0.0 if (i - 1) in fused else rng.uniform(*flex[name])
            self.segs.append({
                "name": name,
                "rest": math.radians(rng.uniform(*rest[name])),
                "flex": math.radians(rom),
                "ext": math.radians(rom * rng.uniform(0.3, 0.7)),
                "lag": rng.uniform(-0.12, 0.12),
                "h_mid": rng.uniform(7, 12) if top[i].startswith("L") else rng.uniform(5, 8),
                "t0": rng.uniform(-1.5, 1.5),
                "tk": (0 if (i - 1) in fused else rng.uniform(0.3, 1.6)) * (2.5 if i - 1 == unstable else 1),
            })
        self.sacral_slope = math.radians(rng.uniform(28, 50))
        self.pelvic_rom = math.radians(rng.uniform(3, 14))
        # flexion-extension program: s(t) in [-1, 1] (+1 full flexion)
        kind = rng.choice(["fe", "ef", "flex_only", "ext_only", "repeat"])
        t = np.linspace(0, 1, n_frames)
        amp = rng.uniform(0.4, 1.0)
        if kind == "fe":
            s = np.sin(2 * np.pi * t) * amp
        elif kind == "ef":
            s = -np.sin(2 * np.pi * t) * amp
        elif kind == "flex_only":
            s = np.sin(np.pi * t) * amp
        elif kind == "ext_only":
            s = -np.sin(np.pi * t) * amp
        else:
            s = np.sin(2 * np.pi * t * rng.uniform(1.5, 3)) * amp
        s = s + rng.uniform(-0.2, 0.2)
        self.s = s
        self.motion = kind
        # C-arm / patient drift: smooth random walk of the whole image
        def walk(scale):
            x = np.cumsum(rng.standard_normal(n_frames)) * scale
            return ndimage.gaussian_filter1d(x, 4) if n_frames > 8 else x
        self.drift_x = walk(rng.uniform(0, 0.8))
        self.drift_y = walk(rng.uniform(0, 0.8))
        self.drift_r = walk(rng.uniform(0, 0.08))
        self.roll0 = rng.uniform(-6, 6)
        # where the spine sits: choose the world point at the image centre
        self.centre_level = rng.uniform(0.6, 4.5)  # in vertebra units above S1's superior endplate
        self.centre_ap = rng.uniform(-30, 30)
        # dose and brightness
        self.photons = float(np.exp(rng.uniform(np.log(60), np.log(3000))))
        self.dose_steps = sorted(rng.integers(1, n_frames, size=int(rng.integers(0, 3))).tolist())
        self.step_factors = [float(np.exp(rng.uniform(-0.9, 0.9))) for _ in self.dose_steps]
        self.spr = rng.uniform(0.2, 1.5)
        self.blur = rng.uniform(0.5, 1.3)
        self.trunk_w = rng.uniform(260, 400)
        self.back_depth = rng.uniform(55, 110)  # skin behind the posterior vertebral wall
        self.belly = rng.uniform(140, 260)
        self.gas = [(rng.uniform(5, 170), rng.uniform(-120, 120), rng.uniform(8, 35), rng.uniform(6, 25),
                     rng.uniform(10, 80), rng.uniform(-0.4, 0.4)) for _ in range(int(rng.integers(0, 12)))]
        self.gas_v = rng.standard_normal(2) * 0.15
        if self.detector == "image_intensifier":
            self.coll = {"shape": "circle", "radius_px": round(float(rng.uniform(215, 262)), 1)}
            self.pin_k = rng.uniform(0.02, 0.08)
            self.twist = math.radians(rng.uniform(-1.5, 1.5))
            self.vignette = rng.uniform(0.15, 0.45)
        else:
            self.coll = {"shape": "rect"}
            self.pin_k = 0.0
            self.twist = 0.0
            self.vignette = rng.uniform(0.0, 0.08)
        if rng.random() < 0.6:  # collimator blades
            self.coll["blades_px"] = [float(rng.uniform(0, 110)) if rng.random() < 0.6 else 0.0 for _ in range(4)]
            self.coll["blade_transmission"] = round(float(rng.uniform(0.0, 0.15)), 3)
        else:
            self.coll["blades_px"] = [0.0, 0.0, 0.0, 0.0]
            self.coll["blade_transmission"] = 0.0
        if self.coll["shape"] == "rect" and not any(self.coll["blades_px"]):
            self.coll["shape"] = "none"
        # instruments and hands
        self.tools = []
        for _ in range(int(rng.integers(0, 3))):
            kind = rng.choice(["needle", "forceps", "hand", "hand"])
            f0 = int(rng.integers(0, max(1, n_frames - 10)))
            f1 = int(min(n_frames, f0 + rng.integers(10, max(11, n_frames))))
            self.tools.append({"kind": str(kind), "f0": f0, "f1": f1, "x": rng.uniform(-60, 80), "y": rng.uniform(-60, 60),
                               "ang": rng.uniform(0, 2 * np.pi), "vx": rng.normal(0, 1.2), "vy": rng.normal(0, 1.2),
                               "len": rng.uniform(60, 160)})
        self.abc_lag = rng.uniform(0.3, 0.9)
        self.gamma = rng.uniform(0.8, 1.25)
        self.edge = rng.uniform(0, 0.8)

    # -- kinematics ---------------------------------------------------------
    def poses(self, f):
        """World pose (origin PI, angle of u axis) per vertebra + segment truth."""
        s = self.s[f]
        pel = -self.sacral_slope - self.pelvic_rom * s  # flexion tilts the pelvis forward (sacrum more horizontal)
        V0 = self.verts[0]
        # S1 pose: its superior endplate through world origin at slope angle
        ang = pel + 0.0
        # place S1 so that its posterior-superior corner is at (0, 0)
        ca, sa = math.cos(ang), math.sin(ang)
        ps_local = np.array([0.0, V0.Hp])
        origin = -np.array([ca * ps_local[0] - sa * ps_local[1], sa * ps_local[0] + ca * ps_local[1]])
        poses = [(origin, ang)]
        segs = []
        for i in range(1, len(self.verts)):
            lo = self.verts[i - 1]
            seg = self.segs[i - 1]
            o, a0 = poses[-1]
            ca, sa = math.cos(a0), math.sin(a0)
            Rl = np.array([[ca, -sa], [sa, ca]])
            cl = lo.corners_local()
            PS = o + Rl @ cl[1]
            AS = o + Rl @ cl[0]
            aw = (AS - PS) / np.linalg.norm(AS - PS)
            cw = np.array([-aw[1], aw[0]])
            ss = float(np.clip(s + seg["lag"] * math.cos(np.pi * f / max(1, self.n - 1)), -1, 1))
            th = seg["rest"] - (seg["flex"] * max(ss, 0) + seg["ext"] * min(ss, 0))
            tr = seg["t0"] + seg["tk"] * ss
            D = lo.D
            hp = max(seg["h_mid"] - 0.5 * D * math.sin(th), 1.0)
            PI = PS + tr * aw + hp * cw
            a_up = math.atan2(aw[1], aw[0]) + th
            poses.append((PI, a_up))
            segs.append((th, tr, float(np.linalg.norm(AS - PS))))
        return poses, segs

    def world_to_img(self, f):
        """Affine (A, b): image_px = A @ [X, Y] + b (calibrated plane, before distortion)."""
        roll = math.radians(self.roll0 + self.drift_r[f])
        cr, sr = math.cos(roll), math.sin(roll)
        R = np.array([[cr, -sr], [sr, cr]])
        M = R @ np.diag([self.ant_sign, -1.0]) / self.sp
        # world point at the image centre
        centre = np.array([self.centre_ap, (self.centre_level - 0.5) * 37.0])
        b = np.array([W / 2 - 0.5 + self.drift_x[f], H / 2 - 0.5 + self.drift_y[f]]) - M @ centre
        return M, b

    def distort(self, pts):
        """Plane px -> displayed px (pincushion + S-twist)."""
        c = np.array([W / 2 - 0.5, H / 2 - 0.5])
        p = (np.asarray(pts, float) - c) / (W / 2)
        r2 = (p**2).sum(-1, keepdims=True)
        q = p * (1 + self.pin_k * r2)
        t = self.twist * np.sqrt(r2)
        ct, st = np.cos(t), np.sin(t)
        q = np.concatenate([q[..., :1] * ct - q[..., 1:] * st, q[..., :1] * st + q[..., 1:] * ct], -1)
        return q * (W / 2) + c


def render_clip(seed, n_frames):
    C = Clip(seed, n_frames)
    rng = np.random.default_rng(seed * 7 + 11)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    frames, truth_frames = [], []
    seg0 = None
    abc = None
    photons = C.photons
    # inverse distortion map (fixed over the clip)
    if C.pin_k or C.twist:
        grid = np.stack([xx, yy], -1)
        p = grid.copy()
        for _ in range(6):
            p = p + (grid - C.distort(p))
        inv_map = [p[..., 1], p[..., 0]]
    else:
        inv_map = None
    # field mask (displayed image coordinates)
    field = np.ones((H, W), np.float32)
    if C.coll["shape"] == "circle":
        r = np.hypot(xx - (W / 2 - 0.5), yy - (H / 2 - 0.5))
        field *= np.clip(C.coll["radius_px"] - r, 0, 1)
    bl, bt, br, bb = C.coll["blades_px"]
    blade = np.ones((H, W), np.float32)
    blade[:, : int(bl)] = C.coll["blade_transmission"]
    blade[: int(bt), :] = C.coll["blade_transmission"]
    if br:
        blade[:, W - int(br):] = C.coll["blade_transmission"]
    if bb:
        blade[H - int(bb):, :] = C.coll["blade_transmission"]
    blade = ndimage.gaussian_filter(blade, 1.5)
    field_full = (field > 0.5) & (blade > 0.5)
    for f in range(n_frames):
        poses, segs = C.poses(f)
        if seg0 is None:
            seg0 = segs
        M, b = C.world_to_img(f)
        Minv = np.linalg.inv(M)
        X = Minv[0, 0] * (xx - b[0]) + Minv[0, 1] * (yy - b[1])
        Y = Minv[1, 0] * (xx - b[0]) + Minv[1, 1] * (yy - b[1])
        # soft tissue: trunk profile (back skin behind the spine, belly in front)
        back = -C.back_depth - 30 + 0.15 * Y
        tissue = C.trunk_w * np.sqrt(np.clip((X - back) / 40, 0, 1)) * np.sqrt(np.clip((C.belly - X) / 60, 0, 1))
        tissue = tissue * (1 + 0.25 * np.clip(-Y / 150, 0, 1))  # hips/buttocks below
        muL = MU_W * tissue
        for gx, gy, ga, gb, gt, gang in C.gas:
            gx2, gy2 = gx + C.gas_v[0] * f, gy + C.gas_v[1] * f
            du, dv = X - gx2, Y - gy2
            cg, sg = math.cos(gang), math.sin(gang)
            r2 = ((du * cg + dv * sg) / ga) ** 2 + ((-du * sg + dv * cg) / gb) ** 2
            muL -= MU_W * gt * np.sqrt(np.clip(1 - r2, 0, 1))
        # pelvis moves with S1
        o, a0 = poses[0]
        ca, sa = math.cos(a0), math.sin(a0)
        il_c = o + np.array([[ca, -sa], [sa, ca]]) @ np.array([-15.0, 55.0])
        muL += ilium(X, Y, (il_c[0], il_c[1], 62.0, a0 + 1.9, 22.0))
        metal = np.zeros((H, W), np.float32)
        corners_plane = []
        for k, (V, (o, a0)) in enumerate(zip(C.verts, poses)):
            ca, sa = math.cos(a0), math.sin(a0)
            R = np.array([[ca, -sa], [sa, ca]])
            cw = (R @ V.corners_local().T).T + o
            corners_plane.append(cw @ M.T + b)
            # bounding box of the vertebra incl. posterior elements
            ext = np.array([[-72, -20], [V.D + 8, -20], [V.D + 8, V.Hp + 20], [-72, V.Hp + 20]])
            if V.sacral:
                ext = np.array([[-70, -110], [V.D + 10, -110], [V.D + 10, V.Hp + 10], [-70, V.Hp + 10]])
            e_img = ((R @ ext.T).T + o) @ M.T + b
            x0, y0 = np.floor(e_img.min(0)).astype(int)
            x1, y1 = np.ceil(e_img.max(0)).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if x1 <= x0 or y1 <= y0:
                continue
            dX, dY = X[y0:y1, x0:x1] - o[0], Y[y0:y1, x0:x1] - o[1]
            u = ca * dX + sa * dY
            v = -sa * dX + ca * dY
            muL[y0:y1, x0:x1] += V.render(u, v)
            if V.sacral:
                muL[y0:y1, x0:x1] += sacrum_extra(u, v, V, None)
            if k in C.screws:  # bilateral pedicle screws: shaft from pedicle into the body, head + rod
                for off in (-1.2, 1.2):
                    cu, cv = V.D * 0.32, V.Hp * 0.6 + off
                    du_, dv_ = u - cu, v - cv
                    tilt = 0.12
                    x_ = (du_ * math.cos(tilt) + dv_ * math.sin(tilt)) / (V.D * 0.55 + 8)
                    y_ = (-du_ * math.sin(tilt) + dv_ * math.cos(tilt)) / 3.2
                    metal[y0:y1, x0:x1] += 7 * np.sqrt(np.clip(1 - x_**2 - y_**2, 0, 1)) * (du_ < V.D * 0.5)
                    hx, hy = (u + 22) / 6, (v - V.Hp * 0.6) / 6
                    metal[y0:y1, x0:x1] += 12 * np.sqrt(np.clip(1 - hx**2 - hy**2, 0, 1))
        if len(C.screws) == 2:  # rod between the two screw heads
            pts = []
            for k in C.screws:
                o, a0 = poses[k]
                V = C.verts[k]
                ca, sa = math.cos(a0), math.sin(a0)
                pts.append(o + np.array([[ca, -sa], [sa, ca]]) @ np.array([-22.0, V.Hp * 0.6]))
            p0, p1 = pts
            d = p1 - p0
            L = np.linalg.norm(d)
            d /= L
            rel_x, rel_y = X - p0[0], Y - p0[1]
            along = rel_x * d[0] + rel_y * d[1]
            perp = -rel_x * d[1] + rel_y * d[0]
            metal += 11 * np.sqrt(np.clip(1 - (perp / 2.7) ** 2, 0, 1)) * smooth_in(-along - 6, 1) * smooth_in(along - L - 6, 1)
        # instruments / hands (own motion)
        for T in C.tools:
            if not (T["f0"] <= f < T["f1"]):
                continue
            tx, ty = T["x"] + T["vx"] * (f - T["f0"]), T["y"] + T["vy"] * (f - T["f0"])
            d = np.array([math.cos(T["ang"]), math.sin(T["ang"])])
            rel_x, rel_y = X - tx, Y - ty
            along = rel_x * d[0] + rel_y * d[1]
            perp = -rel_x * d[1] + rel_y * d[0]
            if T["kind"] == "needle":
                metal += 4 * smooth_in(np.abs(perp) - 0.7, 0.3) * smooth_in(along - T["len"], 0.5) * smooth_in(-along, 0.5)
                metal += 10 * smooth_in(np.hypot(along + 12, perp) - 7, 1)  # hub
            elif T["kind"] == "forceps":
                for sgn in (-1, 1):
                    pp = perp - sgn * (2 + 0.04 * np.clip(T["len"] - along, 0, None))
                    metal += 6 * smooth_in(np.abs(pp) - 1.6, 0.4) * smooth_in(along - T["len"], 0.5) * smooth_in(-along, 0.5)
            else:  # gloved hand: fingers of soft tissue with phalanges
                for j in range(4):
                    pp = perp - (j - 1.5) * 19
                    fl = T["len"] * 0.5 * (0.8 + 0.1 * (j % 2))
                    fing = np.sqrt(np.clip(1 - (pp / 9) ** 2, 0, 1)) * smooth_in(along - fl, 3) * smooth_in(-along - 40, 3)
                    muL += MU_W * 18 * fing
                    bone = np.sqrt(np.clip(1 - (pp / 4) ** 2, 0, 1)) * smooth_in(along - fl + 8, 1) * smooth_in(-along - 40, 1)
                    joints = 1 - 0.7 * np.exp(-(((along % 25) - 12.5) / 1.2) ** 2)
                    muL += (MU_CORT - MU_W) * 8 * bone * joints
                palm = smooth_in(np.hypot((along + 70) / 45, perp / 40) - 1, 0.05)
                muL += MU_W * 35 * palm
        muL += MU_METAL * metal
        # detector: primary + scatter, noise, blur
        for st, fac in zip(C.dose_steps, C.step_factors):
            if f == st:
                photons *= fac
        ref = np.median(muL[H // 4: 3 * H // 4, W // 4: 3 * W // 4])
        prim = photons * np.exp(-(muL - ref))
        scat = C.spr * ndimage.gaussian_filter(prim, 40) * (1 + 0.2 * rng.standard_normal())
        sig = prim + scat
        sig = ndimage.gaussian_filter(sig, C.blur * 0.6)
        counts = rng.poisson(np.clip(sig, 0, 1e7)).astype(np.float32)
        counts = ndimage.gaussian_filter(counts, C.blur * 0.5)
        if C.detector == "image_intensifier":
            counts = counts + 0.08 * ndimage.gaussian_filter(counts, 60)  # veiling glare
        counts *= blade
        img = np.log(np.maximum(counts, 0.5))
        if inv_map is not None:
            img = ndimage.map_coordinates(img, inv_map, order=1, mode="nearest")
        if C.vignette:
            r = np.hypot(xx - W / 2, yy - H / 2) / (W / 2)
            img = img + np.log(1 - C.vignette * np.clip(r, 0, 1.2) ** 2)
        inside = field > 0.5
        # auto brightness: window from percentiles of the central field, with lag
        # (the ABC meters the anatomy: tissue-covered pixels of the central field)
        tis = muL > 0.85 * MU_W * C.trunk_w
        if inv_map is not None:
            tis = ndimage.map_coordinates(tis.astype(np.float32), inv_map, order=0) > 0.5
        sel = inside & tis & (blade > 0.5)
        sel[: H // 6] = False
        sel[-H // 6:] = False
        cen = img[sel] if sel.sum() > 2000 else img[inside]
        lo_, hi_ = np.percentile(cen, [1, 99])
        if abc is None:
            abc = np.array([lo_, hi_])
        else:
            abc = C.abc_lag * abc + (1 - C.abc_lag) * np.array([lo_, hi_])
        disp = (img - abc[0]) / max(abc[1] - abc[0], 1e-3)  # 1 = bright detector = little bone
        if C.edge:
            disp = disp + C.edge * (disp - ndimage.gaussian_filter(disp, 3))
        disp = np.clip(disp, 0, 1) ** C.gamma
        if C.polarity == "bone_bright":
            disp = 1 - disp
        out = disp * 235 + 10
        out = out * field + (1 - field) * (4 if C.polarity == "bone_bright" else 12)
        frames.append(np.clip(out + rng.normal(0, 0.6, out.shape), 0, 255).astype(np.uint8))
        # truth
        metal_mask = metal > 1.0
        if inv_map is not None:
            metal_mask = ndimage.map_coordinates(metal_mask.astype(np.float32), inv_map, order=0) > 0.5
        verts_t = []
        for k, (V, cp) in enumerate(zip(C.verts, corners_plane)):
            cd = C.distort(cp)
            m = Image.new("L", (W, H), 0)
            ImageDraw.Draw(m).polygon([tuple(p) for p in cd], fill=1)
            qm = np.asarray(m, bool)
            area_full = max(ft.quad_area(cd), 1.0)
            if not qm.any():
                continue
            ffrac = float((qm & field_full).sum()) / area_full
            mfrac = float((qm & metal_mask).sum()) / max(qm.sum(), 1)
            vis = []
            for x_, y_ in cd:
                xi, yi = int(round(x_)), int(round(y_))
                ok = 0 <= xi < W and 0 <= yi < H and bool(field_full[yi, xi]) and not bool(metal_mask[yi, xi])
                vis.append(ok)
            verts_t.append(ft.vertebra_entry(V.label, cd, cp, corner_visible=vis, field_fraction=min(ffrac, 1.0),
                                             metal_fraction=mfrac))
        listed = {v["label"] for v in verts_t}
        segs_t = []
        for i in range(1, len(C.verts)):
            lo, up = C.verts[i - 1].label, C.verts[i].label
            if lo in listed and up in listed:
                th, tr, depth_px_mm = segs[i - 1]
                th0, tr0, _ = seg0[i - 1]
                segs_t.append(ft.segment_entry(up, lo, math.degrees(th), math.degrees(th0), tr, tr0, depth_px_mm))
        truth_frames.append({"index": f, "vertebrae": verts_t, "segments": segs_t,
                             "sacrum_visible": "S1" in listed and any(v["label"] == "S1" and v["field_fraction"] > 0.3 for v in verts_t),
                             "flexion_program": round(float(C.s[f]), 4),
                             "roll_deg": round(float(C.roll0 + C.drift_r[f]), 3),
                             "dose_photons_per_px": round(photons, 2)})
    truth = ft.clip_truth(
        family="a_analytic_ellipsoid", seed=seed, polarity=C.polarity, dose=round(C.photons / 600, 4),
        collimation=C.coll, detector={"kind": C.detector, "pincushion_k": round(C.pin_k, 4),
                                      "s_twist_deg": round(math.degrees(C.twist), 3), "vignetting": round(C.vignette, 3)},
        anterior="right" if C.ant_sign > 0 else "left", pixel_spacing_mm=(C.sp, C.sp), frames=truth_frames,
        levels_present=C.labels,
        notes="analytic phantom; levels T11..S1 exist; screws fuse their segment (zero motion)" if C.screws else
        "analytic phantom; levels T11..S1 exist",
        extra={"motion": str(C.motion), "screw_levels": [C.labels[k] for k in C.screws],
               "dose_photons_per_px": round(C.photons, 2)})
    return frames, truth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for seed in range(args.seed_start, args.seed_start + args.count):
        frames, truth = render_clip(seed, args.frames)
        d = ft.write_clip(args.out, f"a_{seed}", frames, truth)
        print(d)


if __name__ == "__main__":
    main()
