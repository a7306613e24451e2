"""Train the level classifier on several generator families, calibrate it, export ONNX.

    python train_level_families.py --families A,B --out /tmp/level_AB.onnx [--work DIR]

Data: family A (phantom_sagittal.py, dataset.sweep_samples: linear),
family B (phantom_sag_b.py) and family C (phantom_sag_c.py), B and C
alternating linear (even seeds) and convex (odd seeds); training seeds < 50000;
validation seeds 50000.. (model choice, temperature); held-out seeds >=
100000 are never read here. Every family's frames are cropped to their own
image region (the fan's bounding box for a convex probe) and box-resized
exactly as the Rust service does (preprocess.box_resize). Negatives labelled
off_spine: blank, uniform, noise, gradients and random blob screens (what
"not a lumbar view" looks like to the sagittal task besides a lift-off).

Each family's samples are cached in --work as fam_<F>_<train|val>_<seeds>.npz,
so a leave-one-family-out run reuses the other runs' data.

The temperature T that minimises validation NLL is folded into the exported
logits (divided by T), so the service's softmax is calibrated; ECE (15 bins)
before and after is printed and written to --report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import LevelNet, n_params  # noqa: E402
from preprocess import box_resize  # noqa: E402
from train_level import export_onnx  # noqa: E402

CLASSES = ("sacrum", "lamina", "interspace", "off_spine")
CLS = {c: i for i, c in enumerate(CLASSES)}


def crop(screen: np.ndarray, r: dict) -> np.ndarray:
    reg = screen[r["y_px"]:r["y_px"] + r["height_px"], r["x_px"]:r["x_px"] + r["width_px"]]
    return (box_resize(reg) / 255.0).astype(np.float16)


def family_fan_samples(family: str, seed: int, keep: float, rng: np.random.Generator):
    """Families B and C: even seeds linear, odd seeds convex."""
    if family == "B":
        from phantom_sag_b import Sweep
    else:
        from phantom_sag_c import Sweep
    sw = Sweep(seed, "linear" if seed % 2 == 0 else "convex")
    t = sw.truth()
    labels = np.array([CLS[f["class"]] for f in t["frames"]])
    n = len(labels)
    near = np.zeros(n, bool)
    for c in np.nonzero(labels[1:] != labels[:-1])[0]:
        near[max(0, c - 2):c + 4] = True
    pick = near | (rng.random(n) < keep)
    X = np.stack([crop(sw.frame(int(i)), t["region"]) for i in np.nonzero(pick)[0]])
    return X, labels[pick]


def family_a_samples(seed: int):
    from dataset import sweep_samples
    X, y = sweep_samples(seed, keep_frac=0.08, per_boundary=3)
    return X.astype(np.float16), y


def negatives(n: int, rng: np.random.Generator):
    X = np.empty((n, 128, 128), np.float16)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    for k in range(n):
        kind = k % 5
        if kind == 0:
            img = np.full((128, 128), rng.uniform(0, 0.6))
        elif kind == 1:
            img = rng.random((128, 128)) * rng.uniform(0.1, 1.0)
        elif kind == 2:
            a, b = rng.uniform(-1, 1, 2)
            img = np.clip(0.5 + 0.5 * (a * xx + b * yy), 0, 1)
        elif kind == 3:  # blobs: tissue-like texture with no spine geometry
            img = np.zeros((128, 128))
            for _ in range(int(rng.integers(3, 12))):
                cx, cy, r = rng.uniform(0, 1, 3)
                img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.01 + 0.05 * r)) * rng.uniform(0.2, 0.8)
            img = np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1)
        else:  # screen-like: text blocks on black
            img = np.zeros((128, 128))
            for _ in range(int(rng.integers(2, 10))):
                x, y = rng.integers(0, 110, 2)
                img[y:y + 4, x:x + 18] = (rng.random((4, 18)) > 0.5) * rng.uniform(0.4, 1.0)
        X[k] = img
    return X, np.full(n, CLS["off_spine"], np.int64)


def family_data(fam: str, seeds, work: Path, tag: str):
    """One family's samples for these seeds, cached per family (so any family set reuses them)."""
    cache = work / f"fam_{fam}_{tag}_{seeds.start}_{seeds.stop}.npz"
    if cache.exists():
        d = np.load(cache)
        return d["X"], d["y"]
    t = time.time()
    rng = np.random.default_rng([12345, ord(fam), seeds.start])
    if fam == "A":
        got = [family_a_samples(s) for s in seeds]
    else:
        got = [family_fan_samples(fam, s, 0.12, rng) for s in seeds]
    X = np.concatenate([g[0] for g in got])
    y = np.concatenate([g[1] for g in got])
    print(f"family {fam}: {len(y)} samples from {len(got)} sweeps in {time.time() - t:.0f} s", flush=True)
    np.savez(cache, X=X, y=y)
    return X, y


def build(families, seeds, work: Path, tag: str, rng):
    parts = [family_data(fam, seeds, work, tag) for fam in families]
    Xn, yn = negatives(max(400, sum(len(p[1]) for p in parts) // 25), rng)
    parts.append((Xn, yn))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    e = 0.0
    for lo in np.linspace(0, 1, bins, endpoint=False):
        m = (conf > lo) & (conf <= lo + 1.0 / bins)
        if m.any():
            e += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(e)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="A,B")
    ap.add_argument("--train-sweeps", type=int, default=60)
    ap.add_argument("--val-sweeps", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--work", default="/tmp/spine-edge-families")
    ap.add_argument("--out", required=True)
    ap.add_argument("--report", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fams = args.families.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)
    Xtr, ytr = build(fams, range(0, args.train_sweeps), work, "train", rng)
    Xva, yva = build(fams, range(50000, 50000 + args.val_sweeps), work, "val", rng)
    print("train", dict(zip(CLASSES, np.bincount(ytr, minlength=4).tolist())), "val", len(yva), flush=True)

    model = LevelNet()
    Xtr_t, ytr_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    Xva_t = torch.from_numpy(Xva)
    steps = args.epochs * (len(ytr) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    counts = np.bincount(ytr, minlength=4).astype(np.float64)
    lossf = nn.CrossEntropyLoss(weight=torch.tensor((counts.sum() / (4 * np.maximum(counts, 1))) ** 0.5, dtype=torch.float32))
    g = torch.Generator().manual_seed(1)
    for ep in range(args.epochs):
        model.train()
        t = time.time()
        perm = torch.randperm(len(ytr), generator=g)
        tot = 0.0
        for k in range(len(ytr) // args.batch):
            idx = perm[k * args.batch:(k + 1) * args.batch]
            x = Xtr_t[idx].float()[:, None]
            # display gain/contrast/gamma, blur-free noise; whole image
            a = 1.0 + 0.3 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            b = 0.1 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            gam = torch.exp(0.4 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5))
            x = (x.clamp(1e-4, 1) ** gam * a + b + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
            opt.zero_grad()
            loss = lossf(model(x), ytr_t[idx])
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(Xva_t[i:i + 256].float()[:, None]) for i in range(0, len(yva), 256)])
        acc = (logits.argmax(1).numpy() == yva).mean()
        print(f"epoch {ep}: loss {tot / max(1, len(ytr) // args.batch):.4f} val acc {acc:.4f} ({time.time() - t:.0f} s)", flush=True)

    # Temperature on validation (grid search on NLL).
    yv = torch.from_numpy(yva)
    temps = np.exp(np.linspace(np.log(0.5), np.log(5.0), 60))
    nll = [nn.functional.cross_entropy(logits / T, yv).item() for T in temps]
    T = float(temps[int(np.argmin(nll))])
    p1 = torch.softmax(logits, 1).numpy()
    pT = torch.softmax(logits / T, 1).numpy()
    e1, eT = ece(p1, yva), ece(pT, yva)
    # Confident-wrong rate at thresholds (validation, per frame).
    conf, pred = pT.max(1), pT.argmax(1)
    rows = []
    for thr in (0.5, 0.55, 0.6, 0.7, 0.8, 0.9):
        m = conf >= thr
        rows.append({"threshold": thr, "answered": float(m.mean()), "confident_wrong": float(((pred != yva) & m).mean())})
    print(f"temperature {T:.3f}; ECE {100 * e1:.2f} % -> {100 * eT:.2f} %; val acc {(pred == yva).mean():.4f}", flush=True)
    for r in rows:
        print(f"  threshold {r['threshold']:.2f}: answered {100 * r['answered']:.1f} %, confident wrong {100 * r['confident_wrong']:.2f} %")
    # Fold 1/T into the last linear layer: the exported logits are the calibrated ones.
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight /= T
        last.bias /= T
    export_onnx(model.eval(), Path(args.out))
    if args.report:
        Path(args.report).write_text(json.dumps({"families": fams, "params": n_params(model), "n_train": int(len(ytr)), "n_val": int(len(yva)),
                                                 "temperature": T, "ece_before": e1, "ece_after": eT, "val_acc": float((pred == yva).mean()),
                                                 "thresholds": rows}, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
