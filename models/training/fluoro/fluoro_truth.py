"""Truth contract shared by every lateral lumbar fluoroscopy generator
(gen_fluoro_a.py, gen_fluoro_drr.py, gen_fluoro_c.py) and by check_truth.py.
This is the only code the families share; each renders on its own.

Files per clip (in ``DIR/<family>_<seed>/``):
  ``frames.y4m``  ``YUV4MPEG2 W512 H512 F<fps>:1 Ip A1:1 Cmono``, 8-bit, one
                  ``FRAME`` per frame, no DICOM.
  ``truth.json``  this contract (``contract`` = CONTRACT).

Image axes: x = column index, growing to the right; y = row index, growing
downwards; (0, 0) is the CENTRE of the top-left pixel, so the image spans
[-0.5, 511.5] in both axes. Cranial is roughly up (image roll is at most a
few degrees, see ``roll_deg``); the patient's anterior side is on the side
named by ``anterior`` ("left" or "right"; both occur).

Vertebrae: one entry per vertebral body that is at least partly inside the
image, in CAUDAL -> CRANIAL order (S1, L5, L4, L3, L2, L1, T12, T11, ...).
``corners_px`` are four [x, y] points in this order:
    0 AS anterior-superior, 1 PS posterior-superior,
    2 PI posterior-inferior, 3 AI anterior-inferior
i.e. the ends of the superior endplate (AS, PS) and of the inferior endplate
(PI, AI) as a reader would click them (intersection of the endplate with the
anterior / posterior wall). For S1 only the superior endplate (AS, PS) is
anatomically meaningful; its AI/PI are the corners of the S1 segment of the
sacrum. Corners are where the point is drawn in the image, INCLUDING any
detector distortion (pincushion). ``corners_plane_px`` are the same corners
without detector distortion (the calibrated plane's pixel grid); all mm
figures are computed there. Corners may lie outside the image: see the
flags.

Per vertebra flags:
  ``corner_in_image``  [4 bool] inside the image rectangle.
  ``corner_visible``   [4 bool] in the image, inside the collimated field and
                       not under metal.
  ``corner_estimated`` [4 bool] the generator does not know this corner from
                       anatomy (DRR family: a vertebra cut by the CT volume's
                       edge); never true for the analytic families.
  ``field_fraction``   fraction of the body quadrilateral inside the image
                       and the collimated field (0..1).
  ``metal_fraction``   fraction of the body quadrilateral under metal.
  ``occluded``         field_fraction < 0.5 or metal_fraction > 0.3.

Segments (one per adjacent pair both listed, named "L4-L5" = upper-lower):
  ``angle_deg``  signed angle between the inferior endplate of the upper
                 vertebra (PI->AI) and the superior endplate of the lower one
                 (PS->AS): POSITIVE when the disc space opens anteriorly
                 (lordotic wedge, the extension direction); flexion of the
                 segment makes it smaller. Computed in the lower vertebra's
                 frame: a = unit(AS - PS) of the lower, c = the unit normal to
                 a pointing to the upper vertebra; angle = atan2(e.c, e.a)
                 with e = unit(AI - PI) of the upper. Independent of the
                 ``anterior`` side (mirror-invariant).
  ``flexion_deg``  angle_deg at frame 0 minus angle_deg now: positive =
                 flexed relative to the clip's first frame.
  ``translation_mm`` (PI_upper - PS_lower) . a, in mm of the calibrated
                 plane: positive = the upper vertebra's posterior-inferior
                 corner lies anterior of the lower one's posterior-superior
                 corner (anterior slip).
  ``translation_pct``  translation_mm / |AS - PS| of the lower vertebra * 100
                 (% of endplate depth, as QMA reports).
  ``translation_delta_mm`` translation_mm minus its frame-0 value.
These are the generator's OWN values from its kinematics, not recomputed
from the corners; check_truth.py recomputes them from ``corners_plane_px``
and reports the disagreement.

Pixel spacing: ``pixel_spacing_mm`` = [row, col] mm per pixel in the
calibrated plane (the spine's mid-sagittal plane), as DICOM Imager Pixel
Spacing corrected for magnification would give it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

CONTRACT = "spine-edge/fluoro-truth/1"
W = H = 512
FPS = 15
CORNER_ORDER = ["AS", "PS", "PI", "AI"]
# Caudal -> cranial.
LEVELS = ["S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9"]


def level_index(label: str) -> int:
    return LEVELS.index(label)


def write_y4m(path, frames, fps: int = FPS):
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{fps}:1 Ip A1:1 Cmono\n".encode())
        for fr in frames:
            assert fr.shape == (H, W) and fr.dtype == np.uint8, (fr.shape, fr.dtype)
            f.write(b"FRAME\n")
            f.write(fr.tobytes())


def read_y4m(path):
    data = Path(path).read_bytes()
    hdr, rest = data.split(b"\n", 1)
    toks = hdr.decode().split()
    assert toks[0] == "YUV4MPEG2" and "Cmono" in toks, toks
    w = int(next(t[1:] for t in toks if t[0] == "W"))
    h = int(next(t[1:] for t in toks if t[0] == "H"))
    frames = []
    off = 0
    while off < len(rest):
        nl = rest.index(b"\n", off)
        assert rest[off:nl].startswith(b"FRAME")
        off = nl + 1
        frames.append(np.frombuffer(rest[off:off + w * h], np.uint8).reshape(h, w))
        off += w * h
    return frames


def quad_area(q) -> float:
    q = np.asarray(q, float)
    x, y = q[:, 0], q[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def vertebra_entry(label, corners_px, corners_plane_px, *, corner_visible, field_fraction,
                   metal_fraction, corner_estimated=None):
    cin = [bool(-0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5) for x, y in corners_px]
    return {
        "label": label,
        "corners_px": [[round(float(x), 3), round(float(y), 3)] for x, y in corners_px],
        "corners_plane_px": [[round(float(x), 3), round(float(y), 3)] for x, y in corners_plane_px],
        "corner_in_image": cin,
        "corner_visible": [bool(v and c) for v, c in zip(corner_visible, cin)],
        "corner_estimated": list(corner_estimated or [False] * 4),
        "field_fraction": round(float(field_fraction), 4),
        "metal_fraction": round(float(metal_fraction), 4),
        "occluded": bool(field_fraction < 0.5 or metal_fraction > 0.3),
    }


def segment_entry(upper, lower, angle_deg, angle0_deg, translation_mm, translation0_mm, depth_mm):
    return {
        "name": f"{upper}-{lower}",
        "upper": upper,
        "lower": lower,
        "angle_deg": round(float(angle_deg), 4),
        "flexion_deg": round(float(angle0_deg - angle_deg), 4),
        "translation_mm": round(float(translation_mm), 4),
        "translation_pct": round(float(100.0 * translation_mm / depth_mm), 3),
        "translation_delta_mm": round(float(translation_mm - translation0_mm), 4),
    }


def clip_truth(*, family, seed, polarity, dose, collimation, detector, anterior, pixel_spacing_mm,
               frames, levels_present, notes="", extra=None, fps=FPS):
    """``polarity``: "bone_bright" (as stored in DICOM) or "bone_dark" (as many
    C-arm monitors show). ``dose``: relative entrance dose, 1.0 = a typical
    pulsed-fluoro frame; ``dose_photons_per_px`` in ``extra`` where known.
    ``collimation``: {"shape": "circle"|"rect"|"none", ...}. ``levels_present``:
    the levels the anatomy has at all (a level absent from every frame and
    from this list does not exist in the phantom)."""
    t = {
        "contract": CONTRACT,
        "family": family,
        "seed": int(seed),
        "fps": fps,
        "width_px": W,
        "height_px": H,
        "n_frames": len(frames),
        "polarity": polarity,
        "dose": dose,
        "collimation": collimation,
        "detector": detector,
        "anterior": anterior,
        "cranial": "up",
        "pixel_spacing_mm": [round(float(pixel_spacing_mm[0]), 6), round(float(pixel_spacing_mm[1]), 6)],
        "corner_order": CORNER_ORDER,
        "levels_present": levels_present,
        "angle_sign": "positive = disc space opens anteriorly (lordosis/extension); flexion_deg positive = flexed vs frame 0",
        "notes": notes,
        "frames": frames,
    }
    if extra:
        t.update(extra)
    return t


def write_clip(out_dir, name, frames_u8, truth):
    d = Path(out_dir) / name
    d.mkdir(parents=True, exist_ok=True)
    write_y4m(d / "frames.y4m", frames_u8, truth["fps"])
    with open(d / "truth.json", "w") as f:
        json.dump(truth, f, separators=(",", ":"))
    return d


def seg_from_corners(lower, upper, spacing_mm):
    """Reference implementation of the segment definitions above (used by the
    generators that define motion through corners; check_truth.py has its
    own). ``lower``/``upper``: 4x2 corners in the calibrated plane (px)."""
    lo = np.asarray(lower, float)
    up = np.asarray(upper, float)
    sy, sx = spacing_mm
    s = np.array([sx, sy])
    a = (lo[0] - lo[1]) * s
    depth = float(np.hypot(*a))
    a /= depth
    c = np.array([-a[1], a[0]])
    cu = (up.mean(0) - lo.mean(0)) * s
    if np.dot(c, cu) < 0:
        c = -c
    e = (up[3] - up[2]) * s
    e /= np.hypot(*e)
    ang = math.degrees(math.atan2(float(e @ c), float(e @ a)))
    tr = float(((up[2] - lo[1]) * s) @ a)
    return ang, tr, depth
