"""Datasets of phantom frames for the target model (cache on disk).

A dataset is a folder holding the 360x360 image regions of frames rendered by
``phantom_transverse.render_frame(seed)`` for consecutive seeds, as a uint8
memmap, plus per-frame labels. Every frame depends only on its seed, so the
cache can be rebuilt bit for bit (and in parallel).
"""

from __future__ import annotations

import json
import os
from multiprocessing import get_context

import numpy as np

import phantom_transverse as P

VIEW_CODES = {"interspace": 0, "spinous": 1, "liftoff": 2}


def labels_of(tr: dict) -> dict:
    """Flat numeric labels of one truth dict (region pixel coordinates)."""
    out = {
        "visible": np.uint8(tr["plane_visible"]),
        "view": np.uint8(VIEW_CODES[tr["view"]]),
        "mm_per_px": np.float32(tr["mm_per_px"][0]),
        "target": np.array([np.nan, np.nan], np.float32),
        "needle": np.uint8(0),
        "needle_tip": np.array([np.nan, np.nan], np.float32),
    }
    if tr["target_px"] is not None:
        out["target"] = np.array([tr["target_px"][0] - P.REGION_X, tr["target_px"][1] - P.REGION_Y], np.float32)
    for n in tr["needles"]:
        if n["kind"] == "in_plane" and n["strength"] >= 0.5 and n["tip_visible"]:
            out["needle"] = np.uint8(1)
            out["needle_tip"] = np.array([n["tip_px"][0] - P.REGION_X, n["tip_px"][1] - P.REGION_Y], np.float32)
            break
    return out


def _work(args):
    seeds, path, start = args
    mm = np.load(os.path.join(path, "regions.npy"), mmap_mode="r+")
    labs = []
    for s in seeds:
        img, tr = P.render_frame(int(s))
        mm[s - start] = img[P.REGION_Y:P.REGION_Y + P.REGION_H, P.REGION_X:P.REGION_X + P.REGION_W]
        labs.append((int(s), labels_of(tr)))
    mm.flush()
    return labs


def build(path: str, seed_start: int, count: int, workers: int = 2, chunk: int = 100) -> None:
    """Renders frames seed_start..seed_start+count-1 into ``path`` (skips if done)."""
    done = os.path.join(path, "done.json")
    if os.path.exists(done):
        meta = json.load(open(done))
        if meta["seed_start"] == seed_start and meta["count"] == count:
            return
    os.makedirs(path, exist_ok=True)
    mm = np.lib.format.open_memmap(os.path.join(path, "regions.npy"), mode="w+", dtype=np.uint8,
                                   shape=(count, P.REGION_H, P.REGION_W))
    del mm
    jobs = [(list(range(a, min(a + chunk, seed_start + count))), path, seed_start)
            for a in range(seed_start, seed_start + count, chunk)]
    results = []
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            for r in pool.imap_unordered(_work, jobs):
                results.extend(r)
    else:
        for j in jobs:
            results.extend(_work(j))
    results.sort(key=lambda r: r[0])
    keys = results[0][1].keys()
    arrays = {k: np.stack([r[1][k] for r in results]) for k in keys}
    np.savez(os.path.join(path, "labels.npz"), seeds=np.array([r[0] for r in results]), **arrays)
    json.dump({"seed_start": seed_start, "count": count}, open(done, "w"))


def load(path: str):
    regions = np.load(os.path.join(path, "regions.npy"), mmap_mode="r")
    labels = dict(np.load(os.path.join(path, "labels.npz")))
    return regions, labels


def box_resize_regions(regions: np.ndarray, N: int, batch: int = 256) -> np.ndarray:
    """Box-resizes uint8 regions (n, 360, 360) to float32 (n, N, N) in [0, 1]
    exactly as ``phantom_transverse.model_input`` (mean 0, std 1)."""
    A = np.zeros((N, P.REGION_H), np.float32)
    for o in range(N):
        s0 = (o * P.REGION_H) // N
        s1 = max(s0 + 1, ((o + 1) * P.REGION_H) // N)
        A[o, s0:s1] = 1
    cnt = np.outer(A.sum(1), A.sum(1)).astype(np.float32)
    out = np.empty((len(regions), N, N), np.float32)
    scale = np.float32(1.0 / 255.0)
    for a in range(0, len(regions), batch):
        r = np.asarray(regions[a:a + batch], dtype=np.float32)
        # sums of integers < 2^24 are exact in float32
        sums = np.einsum("ij,bjk,lk->bil", A, r, A, optimize=True)
        out[a:a + batch] = (sums / cnt) * scale
    return out
