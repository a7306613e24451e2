"""Write phantom sweeps as Y4M video + JSON truth.

    python gen_sweeps.py --seed-start 100000 --count 20 --out DIR [--format y4m]

For each seed: DIR/sweep_<seed>.y4m (YUV4MPEG2, 640x480, C mono, F<fps>:1,
one FRAME per frame) and DIR/sweep_<seed>.json (truth: seed, fps, width_px,
height_px, region, mm_per_px, cephalad, frames[index, class, position,
probe_mm, lift_off]). Seeds >= 100000 are the held-out set (never trained on).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from phantom_sagittal import SCREEN_H, SCREEN_W, Sweep  # noqa: E402


def write_y4m(path: Path, frames, fps: int):
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{SCREEN_W} H{SCREEN_H} F{fps}:1 Ip A1:1 Cmono\n".encode())
        for fr in frames:
            assert fr.shape == (SCREEN_H, SCREEN_W) and fr.dtype == np.uint8
            f.write(b"FRAME\n")
            f.write(fr.tobytes())


def read_y4m(path: Path):
    """Minimal reader for the files written above (used by the checks)."""
    data = Path(path).read_bytes()
    hdr, rest = data.split(b"\n", 1)
    toks = hdr.decode().split()
    assert toks[0] == "YUV4MPEG2" and "Cmono" in toks
    W = int(next(t[1:] for t in toks if t[0] == "W"))
    H = int(next(t[1:] for t in toks if t[0] == "H"))
    num, den = (int(x) for x in next(t[1:] for t in toks if t[0] == "F").split(":"))
    frames, off, n = [], 0, W * H
    while off < len(rest):
        assert rest[off:off + 6] == b"FRAME\n", off
        off += 6
        frames.append(np.frombuffer(rest[off:off + n], np.uint8).reshape(H, W))
        off += n
    return frames, num / den


def write_sweep(sw: Sweep, out: Path, stem: str):
    truth = sw.truth()
    write_y4m(out / f"{stem}.y4m", (sw.frame(i) for i in range(len(sw))), sw.fps)
    (out / f"{stem}.json").write_text(json.dumps(truth, indent=None, separators=(",", ":")) + "\n")
    return truth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-start", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", default="y4m", choices=["y4m"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seed_start, args.seed_start + args.count):
        t = time.time()
        sw = Sweep(seed)
        write_sweep(sw, out, f"sweep_{seed}")
        print(f"sweep_{seed}: {len(sw)} frames @ {sw.fps} fps in {time.time() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
