"""Writes phantom transverse frames as a Y4M clip plus ground truth.

    python gen_transverse.py --seed-start 100000 --count 500 --out DIR
    python gen_transverse.py --seed-start 200000 --count 3 --sequence --out DIR

Output:
* DIR/frames.y4m: ``YUV4MPEG2 W640 H480 F25:1 Ip A1:1 Cmono``, one
  ``FRAME`` + 640*480 bytes per frame (8-bit gray).
* DIR/truth.json: ``{"generator", "width", "height", "region", "conventions",
  "frames": [...]}``; per frame: index, seed, plane_visible, view
  (interspace|spinous|liftoff), interspace_offset (0 = centre of the
  interspace, 1 = over the spinous process), target_px [x, y] screen px or
  null, target_mm {depth, lateral} or null, mm_per_px [x, y],
  depth_setting_mm, tilt_deg, obesity, needles [{kind, tip_px, tip_mm,
  angle_deg, entry_px, tip_visible, strength}].

Needle kinds: ``in_plane`` (a needle in the beam plane: shaft from entry_px
to tip_px), ``out_of_plane`` (a needle crossing the plane: only a bright dot
at tip_px; angle and entry null), ``linear_artefact`` (a straight bright line
that is NOT a needle; tip_px is its deeper end, entry_px the other end).
angle_deg is the image-axis angle of entry->tip, atan2(dy, dx) in degrees with
y down: a needle from the left pointing down-right is 20..60, from the right
120..160. ``strength`` is 1 for a needle fully in plane and falls as the
probe slides away (sequences); ``tip_visible`` is false when the tip lies in
a bone shadow.

With --sequence each seed gives one clip: the probe held still over an
interspace for 40 frames (an in-plane needle, if any, advances), then sliding
off the interspace for 30 frames (the plane is lost at interspace_offset 0.5)
and held off for 10; frames carry seed, sequence_frame and phase
(still|sliding|off).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom_transverse as P  # noqa: E402

CONVENTIONS = {
    "pixel_centres": "integer screen coordinates are pixel centres; x right, y down",
    "region": "image region x 140..499, y 60..419 (360x360); skin line = region top row y = 60",
    "depth_mm": "(y - 60) * mm_per_px[1]",
    "lateral_mm": "(x - 319.5) * mm_per_px[0], positive = image right",
    "target": "epidural space at the midline just deep to the posterior complex (deep surface of the ligamentum flavum echo)",
    "angle_deg": "atan2(tip_y - entry_y, tip_x - entry_x) in degrees, y down",
}


def y4m_header(w=P.FRAME_W, h=P.FRAME_H, fps=25):
    return f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 Cmono\n".encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-start", type=int, required=True)
    ap.add_argument("--count", type=int, required=True, help="frames (or sequences with --sequence)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sequence", action="store_true", help="still-then-sliding clips, one per seed")
    ap.add_argument("--still", type=int, default=40)
    ap.add_argument("--slide", type=int, default=30)
    ap.add_argument("--hold", type=int, default=10)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    frames = []
    with open(os.path.join(args.out, "frames.y4m"), "wb") as f:
        f.write(y4m_header())
        k = 0
        for seed in range(args.seed_start, args.seed_start + args.count):
            if args.sequence:
                it = P.render_sequence(seed, args.still, args.slide, args.hold)
            else:
                it = [P.render_frame(seed)]
            for img, tr in it:
                f.write(b"FRAME\n")
                f.write(img.tobytes())
                frames.append({"index": k, **tr})
                k += 1
    truth = {
        "generator": "phantom_transverse (spine-edge models/training)",
        "mode": "sequence" if args.sequence else "frames",
        "seed_start": args.seed_start,
        "count": args.count,
        "width": P.FRAME_W,
        "height": P.FRAME_H,
        "region": {"x": P.REGION_X, "y": P.REGION_Y, "width": P.REGION_W, "height": P.REGION_H},
        "conventions": CONVENTIONS,
        "frames": frames,
    }
    with open(os.path.join(args.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(f"wrote {len(frames)} frames to {args.out}")


def read_y4m(path):
    """Reads a mono Y4M written by this script: list of (480, 640) uint8."""
    import numpy as np

    data = open(path, "rb").read()
    nl = data.index(b"\n")
    hdr = data[:nl].decode().split()
    w = int(next(t[1:] for t in hdr if t.startswith("W")))
    h = int(next(t[1:] for t in hdr if t.startswith("H")))
    out, pos = [], nl + 1
    while pos < len(data):
        e = data.index(b"\n", pos)
        assert data[pos:e].startswith(b"FRAME")
        pos = e + 1
        out.append(np.frombuffer(data, np.uint8, w * h, pos).reshape(h, w))
        pos += w * h
    return out


if __name__ == "__main__":
    main()
