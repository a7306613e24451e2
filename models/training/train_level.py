"""Train the level classifier on phantom sweeps and export models/level_fp32.onnx.

    python train_level.py [--work DIR] [--train-seeds 0:300] [--epochs 10]

Training data: phantom sweeps with seeds in --train-seeds (all < 100000; the
held-out seeds >= 100000 are never touched here), sampled by dataset.py and
cached in --work. Deterministic: fixed seeds, one torch thread,
deterministic algorithms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import build  # noqa: E402
from model import LevelNet, fuse_bn, n_params  # noqa: E402
from phantom_sagittal import CLASSES, HELDOUT_SEED_MIN  # noqa: E402


def seed_range(s: str):
    a, b = (int(x) for x in s.split(":"))
    return list(range(a, b))


def load_or_build(path: Path, seeds, workers):
    if path.exists():
        d = np.load(path)
        return d["X"], d["y"]
    t = time.time()
    X, y = build(seeds, workers=workers)
    np.savez(path, X=X, y=y)
    print(f"built {path.name}: {len(y)} samples from {len(seeds)} sweeps in {time.time() - t:.0f} s", flush=True)
    return X, y


def export_onnx(model: nn.Module, out: Path):
    import onnx
    fused = fuse_bn(model).eval()
    x = torch.zeros(1, 1, 128, 128)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(fused, (x,), str(tmp), dynamo=True, opset_version=17, input_names=["image"],
                      output_names=["logits"], external_data=False, optimize=True, verbose=False)
    m = onnx.load(str(tmp))
    tmp.unlink()
    # Static batch 1 everywhere; drop intermediate value_info (tract infers shapes itself).
    del m.graph.value_info[:]
    m.doc_string = "spine-edge level classifier (synthetic phantom); logits: sacrum, lamina, interspace, off_spine"
    m.producer_name = "spine-edge models/training/train_level.py"
    onnx.checker.check_model(m, full_check=True)
    for v in list(m.graph.input) + list(m.graph.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        assert all(d > 0 for d in dims), (v.name, dims)
    onnx.save(m, str(out))
    return fused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.environ.get("LEVEL_WORK", "/tmp/spine-edge-level"))
    ap.add_argument("--train-seeds", default="0:200")
    ap.add_argument("--val-seeds", default="90000:90012")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(HERE.parent / "level_fp32.onnx"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tr_seeds, va_seeds = seed_range(args.train_seeds), seed_range(args.val_seeds)
    assert max(tr_seeds + va_seeds) < HELDOUT_SEED_MIN
    Xtr, ytr = load_or_build(work / f"train_{args.train_seeds.replace(':', '-')}.npz", tr_seeds, args.workers)
    Xva, yva = load_or_build(work / f"val_{args.val_seeds.replace(':', '-')}.npz", va_seeds, args.workers)
    print("train class counts", dict(zip(CLASSES, np.bincount(ytr, minlength=4).tolist())), flush=True)

    model = LevelNet()
    print("params", n_params(model), flush=True)
    Xtr_t, ytr_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    Xva_t, yva_t = torch.from_numpy(Xva), torch.from_numpy(yva)
    steps = args.epochs * (len(ytr) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    counts = np.bincount(ytr, minlength=4).astype(np.float64)
    w = torch.tensor((counts.sum() / (4 * np.maximum(counts, 1))) ** 0.5, dtype=torch.float32)
    lossf = nn.CrossEntropyLoss(weight=w, label_smoothing=0.02)
    g = torch.Generator().manual_seed(1)
    log = []
    for ep in range(args.epochs):
        model.train()
        t = time.time()
        perm = torch.randperm(len(ytr), generator=g)
        tot, nb = 0.0, 0
        for k in range(len(ytr) // args.batch):
            idx = perm[k * args.batch:(k + 1) * args.batch]
            x = Xtr_t[idx].float()[:, None]
            # light photometric jitter (gain/contrast of the display), same for the whole image
            a = 1.0 + 0.1 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            b = 0.04 * (torch.rand(len(idx), 1, 1, 1, generator=g) - 0.5)
            x = (x * a + b).clamp(0, 1)
            opt.zero_grad()
            loss = lossf(model(x), ytr_t[idx])
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
            nb += 1
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(Xva_t[i:i + 256].float()[:, None]).argmax(1) for i in range(0, len(yva), 256)])
        acc = (pred == yva_t).float().mean().item()
        log.append({"epoch": ep, "loss": tot / nb, "val_acc": acc, "s": time.time() - t})
        print(f"epoch {ep}: loss {tot / nb:.4f} val acc {acc:.4f} ({time.time() - t:.0f} s)", flush=True)
    torch.save(model.state_dict(), work / "level.pt")
    export_onnx(model, Path(args.out))
    (work / "train_log.json").write_text(json.dumps({"params": n_params(model), "n_train": int(len(ytr)),
                                                     "n_val": int(len(yva)), "train_seeds": args.train_seeds,
                                                     "val_seeds": args.val_seeds, "epochs": log}, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
