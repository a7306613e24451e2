"""Family C: polygon-sprite lateral lumbar fluoroscopy (written apart from A).

    python gen_fluoro_c.py --seed-start 0 --count 3 --frames 60 --out DIR

Renderer: every bone is a sprite drawn once per clip with PIL polygons in
its own frame (0.2 mm/px): vertebral body outline (sampled rounded
quadrilateral with concave walls) filled with a Voronoi trabecular network,
cortex as a stroked outline, endplates as thicker strokes; pedicle,
lamina/spinous process, articular processes and transverse process as
stroked polygons; the sacrum and pelvis (ala, iliac crest arc, sacral
segments) as one sprite. Each frame places the sprites with one affine warp
each (no per-pixel analytic profile as in family A). Kinematics: rigid
chain from the pelvis; each segment rotates about its own instantaneous
axis (IAR) in the lower vertebra's frame, with a shear, then the rest disc
geometry. Detector/display: Beer-Lambert with a blurred-density scatter term,
Gaussian noise of signal-dependent sigma plus line noise and dead pixels,
optional division-model distortion (II) with an iris, rotated rectangular
shutters, recursive frame filter, Laplacian edge enhancement, window/level
auto-exposure targeting a mean grey, both polarities, metal and a hand.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fluoro_truth as ft  # noqa: E402

W = H = ft.W
RES = 0.2  # mm per sprite pixel


def mat(theta=0.0, t=(0.0, 0.0)):
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, t[0]], [s, c, t[1]], [0, 0, 1.0]])


def about(theta, p):
    return mat(0, p) @ mat(theta) @ mat(0, (-p[0], -p[1]))


def tf(T, p):
    p = np.asarray(p, float)
    return p @ T[:2, :2].T + T[:2, 2]


class Sprite:
    """Density canvas in a local frame (u right/anterior, v up/cranial), extents in mm."""

    def __init__(self, u0, u1, v0, v1):
        self.u0, self.v1 = u0, v1
        self.w = int((u1 - u0) / RES)
        self.h = int((v1 - v0) / RES)
        self.img = Image.new("F", (self.w, self.h), 0.0)
        self.d = ImageDraw.Draw(self.img)

    def px(self, pts):
        return [((u - self.u0) / RES, (self.v1 - v) / RES) for u, v in pts]

    def poly(self, pts, fill=None, outline=None, width_mm=0.0):
        p = self.px(pts)
        if fill is not None:
            self.d.polygon(p, fill=float(fill))
        if outline is not None:
            self.d.line(p + [p[0]], fill=float(outline), width=max(1, int(width_mm / RES)), joint="curve")

    def line(self, pts, val, width_mm):
        self.d.line(self.px(pts), fill=float(val), width=max(1, int(width_mm / RES)), joint="curve")

    def finish(self, blur=1.0):
        a = np.asarray(self.img, np.float32)
        self.img = Image.fromarray(ndimage.gaussian_filter(a, blur))


def body_outline(D, Hp, Ha, waist, conc, n=14):
    """Closed outline of the body (local frame centred on the body), AS,PS,PI,AI order of the corners."""
    AS, PS, PI, AI = (D / 2, Ha / 2), (-D / 2, Hp / 2), (-D / 2, -Hp / 2), (D / 2, -Ha / 2)
    pts = []
    for (p, q, bow) in ((AS, PS, -conc), (PS, PI, 0.4), (PI, AI, conc), (AI, AS, -waist)):
        p, q = np.array(p), np.array(q)
        d = q - p
        nrm = np.array([-d[1], d[0]]) / np.linalg.norm(d)
        for k in range(n):
            s = k / n
            pts.append(tuple(p + s * d + nrm * bow * math.sin(math.pi * s)))
    return pts, np.array([AS, PS, PI, AI])


def trabecular(rng, w, h, cell_mm):
    n = max(8, int(w * h * RES * RES / cell_mm**2))
    pts = rng.uniform(0, 1, (n, 2)) * [w, h]
    yy, xx = np.mgrid[0:h, 0:w]
    d, _ = cKDTree(pts).query(np.stack([xx.ravel(), yy.ravel()], 1), k=2)
    ridge = (d[:, 1] - d[:, 0]).reshape(h, w) * RES
    return np.exp(-ridge / 0.35).astype(np.float32)  # 1 on the plates between cells


def vertebra_sprite(rng, label, g):
    D, Hp, Ha = g["D"], g["Hp"], g["Ha"]
    sp = Sprite(-D / 2 - 55, D / 2 + 6, -max(Hp, Ha) / 2 - 16, max(Hp, Ha) / 2 + 16)
    outline, corners = body_outline(D, Hp, Ha, g["waist"], g["conc"])
    dens = g["dens"]
    # posterior elements first (the body overdraws where they meet)
    top, bot = Hp / 2, -Hp / 2
    ped = [(-D / 2 + 1, top - 3), (-D / 2 - 14, top - 4), (-D / 2 - 15, top - 12), (-D / 2 + 1, top - 12.5)]
    sp.poly(ped, fill=0.55 * dens, outline=1.1 * dens, width_mm=1.2)
    sp.poly([(-D / 2 - 6, top - 5), (-D / 2 - 16, top - 3), (-D / 2 - 17, top - 13), (-D / 2 - 7, top - 14)], fill=0.35 * dens)
    sap = [(-D / 2 - 14, top - 4), (-D / 2 - 17, top + 8), (-D / 2 - 23, top + 7), (-D / 2 - 22, top - 6)]
    iap = [(-D / 2 - 21, bot + 6), (-D / 2 - 24, bot - 9), (-D / 2 - 29, bot - 8), (-D / 2 - 28, bot + 5)]
    for p in (sap, iap):
        sp.poly(p, fill=0.6 * dens, outline=1.0 * dens, width_mm=1.0)
    L, tilt = g["spin"], g["spin_tilt"]
    base = np.array([-D / 2 - 24, 0.0])
    tip = base + L * np.array([-math.cos(tilt), -math.sin(tilt)])
    nrm = np.array([math.sin(tilt), -math.cos(tilt)])
    spin = [tuple(base + nrm * 9), tuple(tip + nrm * 5), tuple(tip - nrm * 4), tuple(base - nrm * 8)]
    sp.poly(spin, fill=0.45 * dens, outline=0.9 * dens, width_mm=1.0)
    sp.poly([(-D / 2 - 12, top - 6), (-D / 2 - 26, top - 2), (-D / 2 - 30, bot + 3), (-D / 2 - 16, bot + 4)], fill=0.4 * dens)
    # body: trabecular fill, cortex, endplates
    mask = Image.new("L", (sp.w, sp.h), 0)
    ImageDraw.Draw(mask).polygon(sp.px(outline), fill=255)
    m = np.asarray(mask, np.float32) / 255
    tex = trabecular(rng, sp.w, sp.h, g["cell"])
    a = np.asarray(sp.img, np.float32).copy()
    a = a * (1 - m) + m * dens * (0.45 + 0.55 * tex * g["trab"])
    sp.img = Image.fromarray(a)
    sp.d = ImageDraw.Draw(sp.img)
    sp.poly(outline, outline=1.25 * dens, width_mm=g["cort"])
    n = len(outline) // 4
    sp.line(outline[0:n + 1], 1.5 * dens, g["cort"] + 0.6)  # superior endplate
    sp.line(outline[2 * n:3 * n + 1], 1.5 * dens, g["cort"] + 0.6)  # inferior endplate
    sp.finish(1.2)
    return sp, corners


def pelvis_sprite(rng, g):
    D, Hp, Ha = g["D"], g["Hp"], g["Ha"]
    sp = Sprite(-110, 90, -150, 90)
    dens = g["dens"]
    # iliac wing: big faint plate with a dense crest arc
    cx, cy, R = -20 + rng.uniform(-10, 10), rng.uniform(-20, 10), rng.uniform(55, 75)
    arc = [(cx + R * math.cos(t), cy + R * math.sin(t)) for t in np.linspace(0.2, 2.6, 40)]
    sp.poly(arc + [(cx - 20, cy - 90), (cx + 30, cy - 90)], fill=0.22 * dens)
    sp.line(arc, 0.9 * dens, 3.0)
    # sacral segments curving back
    outline, corners = body_outline(D, Hp, Ha, 0.5, g["conc"])
    sp.poly([(x, y) for x, y in outline], fill=0.7 * dens, outline=1.2 * dens, width_mm=1.2)
    sp.line(outline[0:len(outline) // 4 + 1], 1.6 * dens, 1.8)
    c = np.array([0.0, -Hp / 2])
    for k in range(1, 5):
        ang = -0.25 * k
        w_, h_ = D * (1 - 0.16 * k), 19 - 2 * k
        c = c + np.array([-4.0 - 2 * k, -h_])
        R_ = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
        q = [tuple(c + R_ @ np.array(p)) for p in ((w_ / 2, h_ / 2), (-w_ / 2, h_ / 2), (-w_ / 2, -h_ / 2), (w_ / 2, -h_ / 2))]
        sp.poly(q, fill=0.6 * dens, outline=0.9 * dens, width_mm=0.8)
    # ala / lateral mass over the posterior half, posterior crest
    sp.poly([(-D / 2 + 5, Hp / 2 - 2), (-D / 2 - 25, Hp / 2 + 2), (-D / 2 - 35, -40), (-D / 2 - 5, -60)], fill=0.3 * dens)
    sp.line([(-D / 2 - 30, Hp / 2), (-D / 2 - 40, -30), (-D / 2 - 38, -80)], 0.8 * dens, 2.5)
    sp.finish(1.2)
    return sp, corners


def place(sp, Tw, Mimg):
    """Warp a sprite into the image. Tw: local->world (mm), Mimg: world->image px (3x3)."""
    A = Mimg @ Tw  # local -> image
    Ai = np.linalg.inv(A)  # image -> local
    S = np.array([[1 / RES, 0, -sp.u0 / RES], [0, -1 / RES, sp.v1 / RES], [0, 0, 1]])  # local -> sprite px
    C = S @ Ai  # image -> sprite px
    out = sp.img.transform((W, H), Image.AFFINE, data=tuple(C[:2].ravel()), resample=Image.BILINEAR, fillcolor=0.0)
    return np.asarray(out, np.float32)


def render_clip(seed, n):
    rng = np.random.default_rng(50_000_017 + seed)
    labels = ["S1", "L5", "L4", "L3", "L2", "L1", "T12"]
    geo = []
    for lab in labels:
        D = rng.uniform(34, 47)
        Hp = rng.uniform(22, 29)
        Ha = Hp + {"L5": rng.uniform(1, 5), "L4": rng.uniform(0, 2)}.get(lab, rng.uniform(-3, 0.5))
        geo.append({"D": D, "Hp": Hp, "Ha": Ha, "waist": rng.uniform(0.5, 2.2), "conc": rng.uniform(0.4, 1.8),
                    "dens": rng.uniform(0.6, 1.2), "cell": rng.uniform(1.2, 2.6), "trab": rng.uniform(0.3, 0.9),
                    "cort": rng.uniform(0.8, 1.6), "spin": rng.uniform(20, 32), "spin_tilt": math.radians(rng.uniform(5, 30))})
    sprites, local_corners = [], []
    for i, lab in enumerate(labels):
        sp, c = pelvis_sprite(rng, geo[i]) if lab == "S1" else vertebra_sprite(rng, lab, geo[i])
        sprites.append(sp)
        local_corners.append(c)
    # rest disc geometry G_k: upper local frame -> lower local frame
    rest_ang = {1: (9, 17), 2: (7, 13), 3: (5, 10), 4: (2, 8), 5: (0, 6), 6: (-3, 3)}
    G, theta_rest, iar = [None], [None], [None]
    for k in range(1, len(labels)):
        lo, up = local_corners[k - 1], local_corners[k]
        a = (lo[0] - lo[1]) / np.linalg.norm(lo[0] - lo[1])
        c = np.array([-a[1], a[0]])
        th = math.radians(rng.uniform(*rest_ang[k]))
        hp = rng.uniform(6, 11) - 0.5 * geo[k - 1]["D"] * math.sin(th)
        tau0 = rng.uniform(-1.5, 1.5)
        target_pi = lo[1] + tau0 * a + max(hp, 1.5) * c
        e_up = (up[3] - up[2]) / np.linalg.norm(up[3] - up[2])
        rot = math.atan2(a[1], a[0]) + th - math.atan2(e_up[1], e_up[0])
        R = mat(rot)
        t = target_pi - tf(R, up[2])
        G.append(mat(0, t) @ R)
        theta_rest.append(th)
        # IAR: in the lower vertebra, just below the posterior half of its superior endplate
        iar.append(lo[1] + a * rng.uniform(0.3, 0.6) * geo[k - 1]["D"] - c * rng.uniform(0, 6))
    # motion program: smooth random curve in [-1, 1]
    knots = rng.uniform(-1, 1, int(rng.integers(3, 7)))
    s = np.interp(np.linspace(0, len(knots) - 1, n), np.arange(len(knots)), knots)
    s = ndimage.gaussian_filter1d(s, max(1.0, n / 30))
    rom = [0.0] + [math.radians(rng.uniform(3, 12)) for _ in labels[1:]]
    shear = [0.0] + [rng.uniform(0, 1.8) for _ in labels[1:]]
    if rng.random() < 0.2:
        k = int(rng.integers(1, len(labels)))
        shear[k] *= 3  # an unstable level
    pelvis_rom = math.radians(rng.uniform(4, 15))
    slope = math.radians(rng.uniform(30, 50))
    # view
    sp_mm = rng.uniform(0.26, 0.46)
    ant = 1 if rng.random() < 0.5 else -1
    polarity = "bone_bright" if rng.random() < 0.5 else "bone_dark"
    aim = rng.integers(1, 5)
    jitter = np.array([rng.uniform(-25, 25), rng.uniform(-25, 25)])
    pan = np.cumsum(rng.normal(0, rng.uniform(0, 0.35), (n, 2)), 0)
    # detector
    ii = rng.random() < 0.5
    kdist = rng.uniform(0.03, 0.09) if ii else 0.0
    iris = rng.uniform(0.8, 1.0) * W / 2
    shut_ang = math.radians(rng.uniform(-20, 20))
    shut = [rng.uniform(0.45, 1.1) * W / 2 if rng.random() < 0.5 else 9e9 for _ in range(2)]
    coll = {"shape": "circle" if ii else ("rect" if min(shut) < 1e9 else "none"),
            "radius_px": round(float(iris), 1) if ii else None,
            "shutter_half_widths_px": [round(float(x), 1) if x < 1e9 else None for x in shut],
            "shutter_rotation_deg": round(math.degrees(shut_ang), 2)}
    n0 = float(np.exp(rng.uniform(np.log(50), np.log(2500))))
    mu_bone = rng.uniform(0.6, 1.1)
    rec = rng.uniform(0.0, 0.7)
    edge = rng.uniform(0, 0.5)
    target_grey = rng.uniform(0.35, 0.6)
    gas = [(rng.uniform(10, 140), rng.uniform(-100, 100), rng.uniform(6, 25)) for _ in range(int(rng.integers(0, 8)))]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cxy = np.array([W / 2 - 0.5, H / 2 - 0.5])
    r = np.hypot(xx - cxy[0], yy - cxy[1])
    rot_x = (xx - cxy[0]) * math.cos(shut_ang) + (yy - cxy[1]) * math.sin(shut_ang)
    rot_y = -(xx - cxy[0]) * math.sin(shut_ang) + (yy - cxy[1]) * math.cos(shut_ang)
    field = ((np.abs(rot_x) < shut[0]) & (np.abs(rot_y) < shut[1])).astype(np.float32)
    if ii:
        field *= (r < iris)

    def dist(p):  # plane px -> displayed px (division model, pincushion)
        q = (np.asarray(p, float) - cxy) / (W / 2)
        r2 = (q**2).sum(-1, keepdims=True)
        return q / np.maximum(1 - kdist * r2, 0.2) * (W / 2) + cxy

    if ii:
        g = np.stack([xx, yy], -1)
        p = g.copy()
        for _ in range(6):
            p = p + (g - dist(p))
        inv = [p[..., 1], p[..., 0]]
    dead = rng.random((H, W)) < 3e-5  # stuck pixels (applied on the displayed frame)
    tool = None
    if rng.random() < 0.5:
        tool = {"kind": rng.choice(["screwdriver", "hand"]), "f0": int(rng.integers(0, n)), "x": rng.uniform(-40, 60),
                "y": rng.uniform(-50, 50), "ang": rng.uniform(0, 2 * np.pi)}
    frames, tframes = [], []
    prev = None
    win = None
    first = None
    for f in range(n):
        T = [mat(-slope - pelvis_rom * s[f])]
        dl = [0.0]
        for k in range(1, len(labels)):
            lo = local_corners[k - 1]
            a = (lo[0] - lo[1]) / np.linalg.norm(lo[0] - lo[1])
            d_ = -rom[k] * s[f]
            M = about(d_, iar[k]) @ mat(0, tuple(a * shear[k] * s[f]))
            T.append(T[-1] @ M @ G[k])
            dl.append(d_)
        world_c = [tf(T[k], local_corners[k]) for k in range(len(labels))]
        ctr = world_c[aim].mean(0) + jitter + pan[f]
        Mimg = np.array([[ant / sp_mm, 0, 0], [0, -1 / sp_mm, 0], [0, 0, 1.0]])
        Mimg[:2, 2] = cxy - Mimg[:2, :2] @ ctr
        dens = np.zeros((H, W), np.float32)
        for k in range(len(labels)):
            dens += place(sprites[k], T[k], Mimg)
        # soft tissue (water-equivalent path, mm): back skin, belly, gas
        Mi = np.linalg.inv(Mimg)
        X = Mi[0, 0] * xx + Mi[0, 2]
        Y = Mi[1, 1] * yy + Mi[1, 2]
        backX = world_c[aim][1][0] - rng.uniform(70, 71) - 30
        soft = 320 * np.clip((X - backX) / 50, 0, 1) ** 0.5
        for gx, gy, gr in gas:
            soft -= 40 * np.clip(1 - ((X - gx) ** 2 + (Y - gy) ** 2) / gr**2, 0, 1)
        metal = np.zeros((H, W), np.float32)
        if tool is not None and f >= tool["f0"]:
            tx, ty = Mimg[:2, :2] @ np.array([tool["x"], tool["y"]]) + Mimg[:2, 2]
            d = np.array([math.cos(tool["ang"]), math.sin(tool["ang"])])
            al = (xx - tx) * d[0] + (yy - ty) * d[1]
            pe = -(xx - tx) * d[1] + (yy - ty) * d[0]
            if tool["kind"] == "screwdriver":
                metal += ((np.abs(pe) < 4 / sp_mm) & (al > 0) & (al < 120 / sp_mm)) * 1.0
            else:
                for j in range(4):
                    fing = (np.abs(pe - (j - 1.5) * 18 / sp_mm) < 8 / sp_mm) & (al > 0) & (al < (70 + 8 * (j % 2)) / sp_mm)
                    soft += 16 * fing
                    dens += 0.4 * ((np.abs(pe - (j - 1.5) * 18 / sp_mm) < 3 / sp_mm) & (al > 5 / sp_mm) & (al < 60 / sp_mm))
        mu = 0.02 * soft + 0.35 * mu_bone * dens + 6.0 * metal
        sig = n0 * np.exp(-(mu - np.median(mu)))
        sig = sig + 0.6 * ndimage.uniform_filter(sig, 51)
        sig = ndimage.gaussian_filter(sig, 0.7)
        noisy = sig + rng.standard_normal(sig.shape).astype(np.float32) * np.sqrt(np.maximum(sig, 1))
        noisy += rng.normal(0, 0.01 * n0, (H, 1))  # line noise
        img = np.log(np.maximum(noisy, 1.0))
        if ii:
            img = ndimage.map_coordinates(img, inv, order=1, mode="nearest")
            img += np.log(1 - 0.3 * np.clip(r / (W / 2), 0, 1.2) ** 2)
        prev = img if prev is None else rec * prev + (1 - rec) * img
        out = prev + edge * ndimage.laplace(ndimage.gaussian_filter(prev, 0.8)) * -4
        sel = field > 0.5
        lo_, hi_ = np.percentile(out[sel], [2, 98]) if sel.sum() > 500 else (out.min(), out.max())
        want = np.array([lo_, hi_])
        win = want if win is None else 0.7 * win + 0.3 * want
        v = np.clip((out - win[0]) / max(win[1] - win[0], 1e-3), 0, 1)
        gam = math.log(target_grey) / math.log(max(float(np.mean(v[sel])) if sel.any() else 0.5, 1e-3))
        v = v ** np.clip(gam, 0.5, 2.0)
        if polarity == "bone_bright":
            v = 1 - v
        fr_img = np.where(sel, 16 + 224 * v, 2.0)
        fr_img[dead & sel] = 0.0
        frames.append(np.clip(fr_img, 0, 255).astype(np.uint8))
        # truth
        metal_disp = metal > 0.5
        if ii:
            metal_disp = ndimage.map_coordinates(metal.astype(np.float32), inv, order=0) > 0.5
        vt = []
        for k, lab in enumerate(labels):
            cp = tf(Mimg, world_c[k])
            cd = dist(cp) if ii else cp
            m = Image.new("L", (W, H), 0)
            ImageDraw.Draw(m).polygon([tuple(p) for p in cd], fill=1)
            qm = np.asarray(m, bool)
            if not qm.any():
                continue
            ff = float((qm & sel).sum()) / max(ft.quad_area(cd), 1)
            mf = float((qm & metal_disp).sum()) / max(qm.sum(), 1)
            vis = []
            for x, y in cd:
                xi, yi = int(round(x)), int(round(y))
                vis.append(0 <= xi < W and 0 <= yi < H and bool(sel[yi, xi]) and not bool(metal_disp[yi, xi]))
            vt.append(ft.vertebra_entry(lab, cd, cp, corner_visible=vis, field_fraction=min(ff, 1.0), metal_fraction=mf))
        listed = {v_["label"] for v_ in vt}
        vals = []
        for k in range(1, len(labels)):
            lo_w, up_w = world_c[k - 1], world_c[k]
            a = (lo_w[0] - lo_w[1]) / np.linalg.norm(lo_w[0] - lo_w[1])
            vals.append((math.degrees(theta_rest[k] + dl[k]), float((up_w[2] - lo_w[1]) @ a), float(np.linalg.norm(lo_w[0] - lo_w[1]))))
        if first is None:
            first = vals
        st = [ft.segment_entry(labels[k], labels[k - 1], vals[k - 1][0], first[k - 1][0], vals[k - 1][1], first[k - 1][1], vals[k - 1][2])
              for k in range(1, len(labels)) if labels[k] in listed and labels[k - 1] in listed]
        s1 = [v_ for v_ in vt if v_["label"] == "S1"]
        tframes.append({"index": f, "vertebrae": vt, "segments": st,
                        "sacrum_visible": bool(s1 and s1[0]["field_fraction"] > 0.3),
                        "flexion_program": round(float(s[f]), 4), "roll_deg": 0.0})
    truth = ft.clip_truth(
        family="c_polygon_sprite", seed=seed, polarity=polarity, dose=round(n0 / 600, 4), collimation=coll,
        detector={"kind": "image_intensifier" if ii else "flat_panel", "division_k": round(kdist, 4), "recursive_filter": round(rec, 3)},
        anterior="right" if ant > 0 else "left", pixel_spacing_mm=(sp_mm, sp_mm), frames=tframes, levels_present=labels,
        notes="polygon-sprite phantom; levels T12..S1 exist; no image roll in this family",
        extra={"tool": None if tool is None else str(tool["kind"]), "dose_photons_per_px": round(n0, 2)})
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
        print(ft.write_clip(args.out, f"c_{seed}", frames, truth))


if __name__ == "__main__":
    main()
