"""Write sagittal sweeps of one generator family as Y4M + JSON truth (gen_sweeps.py's format).

    python gen_families.py --family B --probe convex --seed-start 100000 --count 6 --out DIR

Families: A = phantom_sagittal.py (linear only), B = phantom_sag_b.py (linear
and convex), C = phantom_sag_c.py (linear and convex; MUST-derived kernels in psf_c.npz). Seeds: training < 50000, validation 50000-99999, held-out >= 100000.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_sweeps import write_y4m  # noqa: E402


def make(family: str, seed: int, probe: str):
    if family == "A":
        if probe != "linear":
            raise SystemExit("family A renders linear probes only")
        from phantom_sagittal import Sweep
        return Sweep(seed)
    if family == "B":
        from phantom_sag_b import Sweep
        return Sweep(seed, probe=probe)
    if family == "C":
        from phantom_sag_c import Sweep
        return Sweep(seed, probe=probe)
    raise SystemExit(f"unknown family {family!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=["A", "B", "C"])
    ap.add_argument("--probe", default="linear", choices=["linear", "convex", "mixed"])
    ap.add_argument("--seed-start", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(args.seed_start, args.seed_start + args.count):
        probe = args.probe if args.probe != "mixed" else ("linear", "convex")[seed % 2]
        t = time.time()
        sw = make(args.family, seed, probe)
        truth = sw.truth()
        truth.setdefault("family", args.family)
        truth.setdefault("probe", probe)
        stem = f"sweep_{args.family}{probe[0]}_{seed}"
        write_y4m(out / f"{stem}.y4m", (sw.frame(i) for i in range(len(sw))), sw.fps)
        (out / f"{stem}.json").write_text(json.dumps(truth, separators=(",", ":")) + "\n")
        print(f"{stem}: {len(sw)} frames @ {sw.fps} fps in {time.time() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()
