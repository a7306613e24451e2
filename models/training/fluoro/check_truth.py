"""Verify a generated clip's truth.json (contract: fluoro_truth.py) and print
one summary line per clip.

    python check_truth.py CLIP_DIR [CLIP_DIR ...]

Checks (own implementation, not fluoro_truth.seg_from_corners):
  - frames.y4m has n_frames frames of 512x512;
  - corners flagged corner_in_image lie in [-0.5, 511.5]; each listed
    vertebra has a field_fraction > 0 or a corner in the image;
  - labels strictly caudal -> cranial (S1, L5 .. L1, T12 ..), consecutive;
  - angle_deg and translation_mm recomputed from corners_plane_px (the
    undistorted plane) agree with the generator's values within ANG_TOL deg
    and TR_TOL mm; the same recomputed from corners_px (as displayed, with
    detector distortion) is reported, not judged;
  - flexion_deg / translation_delta_mm consistent with frame 0.
Exit status 1 if any check fails.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np

ANG_TOL = 0.05  # deg
TR_TOL = 0.02  # mm
ORDER = ["S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9"]


def seg(lo, up, sp):
    lo, up = np.asarray(lo, float), np.asarray(up, float)
    s = np.array([sp[1], sp[0]])
    a = (lo[0] - lo[1]) * s
    a = a / np.linalg.norm(a)
    n = np.array([a[1], -a[0]])
    if n @ ((up.mean(0) - lo.mean(0)) * s) < 0:
        n = -n
    e = (up[3] - up[2]) * s
    ang = math.degrees(math.atan2(e @ n, e @ a))
    tr = float(((up[2] - lo[1]) * s) @ a)
    return ang, tr


def check(d):
    d = Path(d)
    t = json.loads((d / "truth.json").read_text())
    data = (d / "frames.y4m").read_bytes()
    hdr = data.split(b"\n", 1)[0].decode()
    nfr = data.count(b"FRAME\n")
    errs = []
    if not hdr.startswith("YUV4MPEG2 W512 H512") or "Cmono" not in hdr:
        errs.append(f"header {hdr}")
    if nfr != t["n_frames"] or len(t["frames"]) != nfr:
        errs.append(f"frames y4m={nfr} truth={len(t['frames'])}")
    sp = t["pixel_spacing_mm"]
    angd, trd, angd_disp, ncorn, nin, nvis, nvert, nseg, nest = [], [], [], 0, 0, 0, 0, 0, 0
    first = {}
    for fr in t["frames"]:
        vs = fr["vertebrae"]
        labs = [v["label"] for v in vs]
        idx = [ORDER.index(lab) for lab in labs]
        if idx != sorted(idx) or any(b - a != 1 for a, b in zip(idx, idx[1:])):
            errs.append(f"frame {fr['index']}: labels not caudal->cranial consecutive {labs}")
        byl = {v["label"]: v for v in vs}
        for v in vs:
            nvert += 1
            for (x, y), cin, vis, est in zip(v["corners_px"], v["corner_in_image"], v["corner_visible"], v["corner_estimated"]):
                ncorn += 1
                inside = -0.5 <= x <= 511.5 and -0.5 <= y <= 511.5
                if cin != inside or (vis and not cin):
                    errs.append(f"frame {fr['index']} {v['label']}: corner flag wrong ({x},{y})")
                nin += inside
                nvis += vis
                nest += est
            if not any(v["corner_in_image"]) and v["field_fraction"] <= 0:
                pass  # partly in the image between corners is fine
        for s in fr["segments"]:
            nseg += 1
            lo, up = byl[s["lower"]], byl[s["upper"]]
            a, tr = seg(lo["corners_plane_px"], up["corners_plane_px"], sp)
            a2, _ = seg(lo["corners_px"], up["corners_px"], sp)
            angd.append(abs(a - s["angle_deg"]))
            trd.append(abs(tr - s["translation_mm"]))
            angd_disp.append(abs(a2 - s["angle_deg"]))
            if s["name"] not in first:
                first[s["name"]] = (fr["index"], s["angle_deg"] + s["flexion_deg"], s["translation_mm"] - s["translation_delta_mm"])
            f0 = first[s["name"]]
            if fr["index"] >= 0 and abs(f0[1] - (s["angle_deg"] + s["flexion_deg"])) > 1e-3:
                errs.append(f"frame {fr['index']} {s['name']}: flexion_deg inconsistent")
    angd, trd, angd_disp = np.array(angd or [0]), np.array(trd or [0]), np.array(angd_disp or [0])
    if angd.max() > ANG_TOL:
        errs.append(f"angle mismatch max {angd.max():.3f} deg")
    if trd.max() > TR_TOL:
        errs.append(f"translation mismatch max {trd.max():.3f} mm")
    flex = [s["flexion_deg"] for fr in t["frames"] for s in fr["segments"]]
    print(f"{d.name}: {'OK' if not errs else 'FAIL'} family={t['family']} frames={nfr} vert/frame={nvert / max(nfr, 1):.1f} "
          f"segments={nseg} corners in image {nin}/{ncorn} visible {nvis} estimated {nest} | "
          f"plane angle |err| max {angd.max():.4f} deg, transl |err| max {trd.max():.4f} mm | "
          f"displayed-corner angle |err| mean {angd_disp.mean():.3f} p95 {np.percentile(angd_disp, 95):.3f} deg | "
          f"flexion range {min(flex or [0]):.1f}..{max(flex or [0]):.1f} deg | polarity={t['polarity']} "
          f"sacrum_visible {sum(fr['sacrum_visible'] for fr in t['frames'])}/{nfr}")
    for e in errs[:5]:
        print("   ", e)
    return not errs


if __name__ == "__main__":
    ok = all([check(d) for d in sys.argv[1:] if (Path(d) / "truth.json").exists()])
    sys.exit(0 if ok else 1)
