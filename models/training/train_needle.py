"""Trains the needle network on needle-heavy phantom frames (CPU, one thread).

    python train_needle.py --cache /tmp/needle_cache --out /tmp/needle_run/ckpt.pt

Data: ``needle_data`` caches (train: needle-heavy seeds 0..n-1; validation:
plain ``render_frame`` seeds 60000..). Labels as the evaluation defines them
(see ``needle_data``). Loss per batch:
* present: binary cross-entropy on the ``needle`` logit, frames with
  ``mask`` = 0 (tip in a bone shadow) excluded;
* tip and entry heatmaps (positives only): cross-entropy between the softmax
  over the grid and a normalised gaussian (sigma 1 cell) at the truth, plus
  the euclidean mm error of the soft-argmax decode.
Augmentation: left-right flip, mild gain/gamma. Deterministic.

Fine-tuning: ``--init CKPT`` starts from a checkpoint, ``--hard DIR`` adds a
cache of hard-case frames (``needle_data.render_hard_frame``) to the training
set; a copy of the checkpoint is kept per epoch (``OUT.epN``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import needle_data as ND
import transverse_data as D
from needle_model import NeedleNet
from target_model import count_params, region_to_input, softargmax_torch
from train_target import heat_losses


def prepare(path, N):
    regions, labels = ND.load(path)
    X = D.box_resize_regions(regions, N)
    tip = labels["tip"].astype(np.float64)
    ent = labels["entry"].astype(np.float64)
    tu, tv = region_to_input(tip[:, 0], tip[:, 1], N)
    eu, ev = region_to_input(ent[:, 0], ent[:, 1], N)
    return {
        "x": torch.from_numpy(X),
        "y": torch.from_numpy(labels["needle"].astype(np.float32)),
        "mask": torch.from_numpy(labels["mask"].astype(np.float32)),
        "tip": torch.from_numpy(np.stack([tu, tv], 1).astype(np.float32)),
        "entry": torch.from_numpy(np.stack([eu, ev], 1).astype(np.float32)),
        "mmpx": torch.from_numpy((labels["mm_per_px"] * 360.0 / N).astype(np.float32)),
    }


def augment(x, tip, entry, gen, N):
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    tip, entry = tip.clone(), entry.clone()
    tip[flip, 0] = (N - 1) - tip[flip, 0]
    entry[flip, 0] = (N - 1) - entry[flip, 0]
    gamma = torch.exp((torch.rand(b, generator=gen) - 0.5) * 0.5)[:, None, None, None]
    gain = (0.85 + 0.3 * torch.rand(b, generator=gen))[:, None, None, None]
    x = (x.clamp_min(0) ** gamma * gain).clamp(0, 1)
    return x, tip, entry


@torch.no_grad()
def evaluate(model, data, bs=100):
    model.eval()
    logits, tips = [], []
    for a in range(0, len(data["x"]), bs):
        t, _, p = model(data["x"][a:a + bs, None])
        logits.append(p[:, 0])
        tips.append(softargmax_torch(t)[0])
    model.train()
    logit = torch.cat(logits)
    tip = torch.cat(tips)
    y, m = data["y"] > 0.5, data["mask"] > 0.5
    pred = logit > 0
    err = ((tip - data["tip"]) * data["mmpx"][:, None]).norm(dim=1)
    hit = pred & y & (err <= 5.0)
    tp = int(hit.sum())
    fp = int((pred & m).sum()) - tp
    pos = int((y & m).sum())
    e = err[hit]
    return {"precision": tp / max(1, tp + fp), "recall": tp / max(1, pos), "tp": tp, "fp": fp, "pos": pos,
            "tip_mean_mm": float(e.mean()) if len(e) else float("nan"),
            "tip_p95_mm": float(np.percentile(e.numpy(), 95)) if len(e) else float("nan")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/needle_cache")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--widths", default="16,24,32,48,64")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--train-count", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hard", default="", help="extra cache of hard-case frames (needle_data render_hard_frame)")
    ap.add_argument("--init", default="", help="checkpoint to continue training from (fine-tune)")
    ap.add_argument("--pct-start", type=float, default=0.15)
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
    if args.hard:
        hd = prepare(args.hard, N)
        tr = {k: torch.cat([tr[k], hd[k]]) for k in tr}
    print(f"data {len(tr['x'])} train ({int(tr['y'].sum())} positives, {int((1 - tr['mask']).sum())} masked), "
          f"{len(va['x'])} val, prepared in {time.time() - t0:.0f} s", flush=True)
    widths = tuple(int(w) for w in args.widths.split(","))
    model = NeedleNet(widths)
    if args.init:
        model.load_state_dict(torch.load(args.init)["state"])
        print(f"init from {args.init}: {json.dumps(evaluate(model, va))}", flush=True)
    print(f"params {count_params(model)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n = len(tr["x"])
    nb = n // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * nb, pct_start=args.pct_start)
    gen = torch.Generator().manual_seed(args.seed)
    log = []
    for ep in range(args.epochs):
        te = time.time()
        perm = torch.randperm(n, generator=gen)
        tot = {"bce": 0.0, "tce": 0.0, "tmm": 0.0, "ece": 0.0}
        for bi in range(nb):
            idx = perm[bi * args.batch:(bi + 1) * args.batch]
            x, tip, entry = augment(tr["x"][idx, None], tr["tip"][idx], tr["entry"][idx], gen, N)
            y, m, mmpx = tr["y"][idx], tr["mask"][idx], tr["mmpx"][idx]
            t_l, e_l, p_l = model(x)
            bce = (F.binary_cross_entropy_with_logits(p_l[:, 0], y, reduction="none") * m).sum() / m.sum().clamp_min(1)
            pos = y > 0.5
            tce, tmm = heat_losses(t_l, tip, mmpx, pos)
            ece, emm = heat_losses(e_l, entry, mmpx, pos)
            loss = 2.0 * bce + tce + 0.3 * tmm + 0.5 * ece + 0.05 * emm
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in (("bce", bce), ("tce", tce), ("tmm", tmm), ("ece", ece)):
                tot[k] += float(v.detach())
            if bi % 100 == 0:
                print(f"  ep {ep + 1} batch {bi}/{nb} {time.time() - te:.0f} s", flush=True)
        ev = evaluate(model, va)
        rec = {"epoch": ep + 1, "sec": round(time.time() - te, 1), **{k: round(v / nb, 4) for k, v in tot.items()},
               **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in ev.items()}}
        log.append(rec)
        print(json.dumps(rec), flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        torch.save({"state": model.state_dict(), "widths": widths, "size": N, "args": vars(args), "log": log, "train_frames": n,
                    "params": count_params(model)}, args.out)
        torch.save({"state": model.state_dict(), "widths": widths, "size": N, "args": vars(args), "log": log, "train_frames": n,
                    "params": count_params(model)}, f"{args.out}.ep{ep + 1}")
    print(f"saved {args.out}; total {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
