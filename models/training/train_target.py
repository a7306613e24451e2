"""Trains the needle-target model on phantom frames (CPU, one thread).

    python train_target.py --cache /tmp/target_cache --out /tmp/target_run/ckpt.pt

Data: ``transverse_data`` caches (train seeds 0..n-1, validation seeds
50000..). Loss per batch:
* heatmap (plane-visible frames only): cross-entropy between the softmax of
  the logits over the whole grid and a normalised gaussian (sigma 1 cell) at
  the truth, plus the euclidean error in mm of the soft-argmax decode;
* plane: binary cross-entropy on the plane-visible logit.
Augmentation: left-right flip, mild gain/gamma. Deterministic (seeded, one
thread, deterministic algorithms).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import transverse_data as D
from target_model import STRIDE, TargetNet, count_params, region_to_input, softargmax_torch


def prepare(path, N):
    regions, labels = D.load(path)
    X = D.box_resize_regions(regions, N)
    tgt = labels["target"].astype(np.float64)
    u, v = region_to_input(tgt[:, 0], tgt[:, 1], N)
    ntip = labels["needle_tip"].astype(np.float64)
    nu, nv = region_to_input(ntip[:, 0], ntip[:, 1], N)
    return {
        "x": torch.from_numpy(X),
        "vis": torch.from_numpy(labels["visible"].astype(np.float32)),
        "tgt": torch.from_numpy(np.stack([u, v], 1).astype(np.float32)),
        "mmpx": torch.from_numpy((labels["mm_per_px"] * 360.0 / N).astype(np.float32)),
        "needle": torch.from_numpy(labels["needle"].astype(np.float32)),
        "ntip": torch.from_numpy(np.stack([nu, nv], 1).astype(np.float32)),
    }


def gauss_target(pos, h, w, sigma=1.0):
    """(B, 2) model-input px -> (B, h*w) normalised gaussian over cells."""
    cx = (pos[:, 0:1] - (STRIDE - 1) / 2.0) / STRIDE
    cy = (pos[:, 1:2] - (STRIDE - 1) / 2.0) / STRIDE
    gx = torch.arange(w, dtype=torch.float32)[None, :]
    gy = torch.arange(h, dtype=torch.float32)[None, :]
    ex = torch.exp(-0.5 * ((gx - cx) / sigma) ** 2)
    ey = torch.exp(-0.5 * ((gy - cy) / sigma) ** 2)
    q = ey[:, :, None] * ex[:, None, :]
    q = q.reshape(len(pos), -1)
    return q / q.sum(1, keepdim=True).clamp_min(1e-12)


def heat_losses(heat, pos, mmpx, mask):
    """CE to a gaussian + euclidean mm error of the soft-argmax, on mask."""
    if mask.sum() == 0:
        z = heat.sum() * 0
        return z, z
    heat, pos, mmpx = heat[mask], pos[mask], mmpx[mask]
    b, _, h, w = heat.shape
    logp = torch.log_softmax(heat.reshape(b, -1), 1)
    q = gauss_target(pos, h, w)
    ce = -(q * logp).sum(1).mean()
    pred, _ = softargmax_torch(heat)
    err = (pred - pos) * mmpx[:, None]
    eu = torch.sqrt((err ** 2).sum(1) + 1e-4).mean()
    return ce, eu


def augment(x, tgt, ntip, gen, N):
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    tgt = tgt.clone()
    ntip = ntip.clone()
    tgt[flip, 0] = (N - 1) - tgt[flip, 0]
    ntip[flip, 0] = (N - 1) - ntip[flip, 0]
    gamma = torch.exp((torch.rand(b, generator=gen) - 0.5) * 0.5)[:, None, None, None]
    gain = (0.85 + 0.3 * torch.rand(b, generator=gen))[:, None, None, None]
    x = (x.clamp_min(0) ** gamma * gain).clamp(0, 1)
    return x, tgt, ntip


@torch.no_grad()
def evaluate(model, data, bs=100):
    model.eval()
    errs, derrs, correct, n = [], [], 0, 0
    for a in range(0, len(data["x"]), bs):
        x = data["x"][a:a + bs, None]
        out = model(x)
        heat, plane = out[0], out[1]
        pred, _ = softargmax_torch(heat)
        vis = data["vis"][a:a + bs] > 0.5
        e = (pred - data["tgt"][a:a + bs]) * data["mmpx"][a:a + bs, None]
        errs.append(e[vis].norm(dim=1))
        derrs.append(e[vis][:, 1].abs())
        correct += int(((plane[:, 0] > 0) == vis).sum())
        n += len(x)
    errs = torch.cat(errs).numpy()
    derrs = torch.cat(derrs).numpy()
    model.train()
    return {
        "err_mean_mm": float(errs.mean()),
        "err_p95_mm": float(np.percentile(errs, 95)),
        "depth_err_mean_mm": float(derrs.mean()),
        "plane_acc": correct / n,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/target_cache")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--widths", default="16,24,32,48,64")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--train-count", type=int, default=0, help="use only the first n frames (0 = all)")
    ap.add_argument("--needle", action="store_true", help="also train the needle heads (experiment)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    N = args.size
    t0 = time.time()
    tr = prepare(os.path.join(args.cache, "train"), N)
    va = prepare(os.path.join(args.cache, "val"), N)
    if args.train_count:
        tr = {k: v[:args.train_count] for k, v in tr.items()}
    print(f"data {len(tr['x'])} train, {len(va['x'])} val, prepared in {time.time() - t0:.0f} s", flush=True)

    widths = tuple(int(w) for w in args.widths.split(","))
    model = TargetNet(widths, needle=args.needle)
    print(f"params {count_params(model)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n = len(tr["x"])
    steps = args.epochs * (n // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    log = []
    for ep in range(args.epochs):
        te = time.time()
        perm = torch.randperm(n, generator=gen)
        tot = {"ce": 0.0, "mm": 0.0, "bce": 0.0}
        for bi in range(n // args.batch):
            idx = perm[bi * args.batch:(bi + 1) * args.batch]
            x, tgt, ntip = augment(tr["x"][idx, None], tr["tgt"][idx], tr["ntip"][idx], gen, N)
            vis = tr["vis"][idx]
            out = model(x)
            heat, plane = out[0], out[1]
            ce, mm = heat_losses(heat, tgt, tr["mmpx"][idx], vis > 0.5)
            bce = F.binary_cross_entropy_with_logits(plane[:, 0], vis)
            loss = ce + 0.5 * mm + bce
            if args.needle:
                nd = tr["needle"][idx]
                nce, nmm = heat_losses(out[2], ntip, tr["mmpx"][idx], nd > 0.5)
                nbce = F.binary_cross_entropy_with_logits(out[3][:, 0], nd)
                loss = loss + 0.5 * nce + 0.2 * nmm + 0.5 * nbce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot["ce"] += float(ce.detach())
            tot["mm"] += float(mm.detach())
            tot["bce"] += float(bce.detach())
        nb = n // args.batch
        ev = evaluate(model, va)
        rec = {"epoch": ep + 1, "sec": round(time.time() - te, 1),
               **{k: round(v / nb, 4) for k, v in tot.items()}, **{k: round(v, 4) for k, v in ev.items()}}
        log.append(rec)
        print(json.dumps(rec), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save({"state": model.state_dict(), "widths": widths, "size": N, "needle": args.needle,
                "args": vars(args), "log": log, "params": count_params(model)}, args.out)
    print(f"saved {args.out}; total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
