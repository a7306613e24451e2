"""The truth JSON every sagittal sweep generator writes (gen_sweeps.py's
format, read by `spine-edge eval-level`): one place, so that families that
render independently still agree on what the truth means.

The class of a frame is the structure under the image's centre column;
positions "S1", "L5".."T12", "L5-S1".."T12-L1"; ``probe_mm`` is the probe's
position along the spine (cephalad +); ``region`` the image's bounding box
on the screen; ``mm_per_px`` its true square-pixel spacing.
"""

from __future__ import annotations


def sweep_truth(*, seed, family, probe, fps, screen_wh, region, mm_per_px, positions, lift, label):
    """``label(s)`` gives (class, position) at spine position s; frames in ``lift`` are off_spine."""
    frames = []
    for i, s in enumerate(positions):
        off = i in lift
        cls, pos = ("off_spine", None) if off else label(float(s))
        frames.append({"index": i, "class": cls, "position": pos, "probe_mm": round(float(s), 3), "lift_off": off})
    return {
        "seed": seed,
        "family": family,
        "probe": probe,
        "fps": fps,
        "width_px": screen_wh[0],
        "height_px": screen_wh[1],
        "region": region,
        "mm_per_px": {"x_mm": round(mm_per_px, 6), "y_mm": round(mm_per_px, 6)},
        "cephalad": "right",
        "frames": frames,
    }
