"""Needle-heavy phantom frames and needle labels for the needle model (cache on disk).

Frames come from the transverse phantom (``phantom_transverse``) with the
scene sampled as usual but the needle-like objects re-drawn from a
needle-heavy mix, so the network sees more needles and more hard negatives
than the eval distribution holds (seed stream key 0x4EED, so these frames
never coincide with ``render_frame(seed)``):

    48 % an in-plane needle (plus a linear artefact 25 %, plus an out-of-plane dot 10 %)
    18 % a linear artefact only (the hard negatives), 14 % an out-of-plane dot only
    20 % no needle-like object (lift-off frames never carry needles)

Labels follow the evaluation's definition (``src/eval_target.rs``):
* ``needle`` 1 = an in-plane needle with strength >= 0.5 whose tip is not in a
  bone shadow;
* ``mask`` 0 = "don't care" (no loss on the present logit): an in-plane needle
  with its tip in a shadow, or one with strength < 0.5;
* out-of-plane dots, linear artefacts and no needle are negatives;
* ``tip`` and ``entry``: region px of the positive needle's tip and entry
  (where the shaft enters the image region), NaN otherwise.
"""

from __future__ import annotations

import json

import os
from multiprocessing import get_context

import numpy as np

import phantom_transverse as P


def needle_labels(tr: dict) -> dict:
    out = {
        "needle": np.uint8(0),
        "mask": np.uint8(1),
        "tip": np.array([np.nan, np.nan], np.float32),
        "entry": np.array([np.nan, np.nan], np.float32),
        "mm_per_px": np.float32(tr["mm_per_px"][0]),
    }
    for n in tr["needles"]:
        if n["kind"] != "in_plane":
            continue
        if n["strength"] >= 0.5 and n["tip_visible"]:
            out["needle"] = np.uint8(1)
            out["mask"] = np.uint8(1)
            out["tip"] = np.array([n["tip_px"][0] - P.REGION_X, n["tip_px"][1] - P.REGION_Y], np.float32)
            out["entry"] = np.array([n["entry_px"][0] - P.REGION_X, n["entry_px"][1] - P.REGION_Y], np.float32)
            break
        out["mask"] = np.uint8(0)
    return out


def render_hard_frame(seed: int):
    """One hard-case frame (seed stream key 0x4EEE, disjoint from the others):
    off-interspace views 60 % (tips near bone), in-plane needles 65 % of them
    half of them deep (the deepest of four draws), plus linear artefacts."""
    rng = np.random.default_rng([seed, 0x4EEE])
    p = P.sample_params(rng, "spinous" if rng.random() < 0.6 else "interspace")
    s = p["mm_per_px"]
    d_t = p["target_depth_mm"]
    tx = P.CENTER_X - P.REGION_X + p["lateral_offset_mm"] / s
    r = rng.random()
    nd = []
    if r < 0.65:
        draws = [P._sample_in_plane(rng, p, tx, d_t, s) for _ in range(4 if rng.random() < 0.5 else 1)]
        nd.append(max(draws, key=lambda n: n["tip"][1]))
        if rng.random() < 0.3:
            nd.append(P._sample_linear_artefact(rng, p, s))
    elif r < 0.9:
        nd.append(P._sample_linear_artefact(rng, p, s))
        if rng.random() < 0.3:
            nd.append(P._sample_linear_artefact(rng, p, s))
    p["needles"] = nd
    noise = P.Noise(rng)
    img, tr = P.render_params(p, noise)
    tr["seed"] = int(seed)
    return img, tr


def render_needle_frame(seed: int):
    """One needle-heavy frame: (640x480 uint8, truth dict)."""
    rng = np.random.default_rng([seed, 0x4EED])
    p = P.sample_params(rng)
    if p["kind"] != "liftoff":
        s = p["mm_per_px"]
        d_t = p["target_depth_mm"]
        tx = P.CENTER_X - P.REGION_X + p["lateral_offset_mm"] / s
        r = rng.random()
        nd = []
        if r < 0.48:
            nd.append(P._sample_in_plane(rng, p, tx, d_t, s))
            if rng.random() < 0.25:
                nd.append(P._sample_linear_artefact(rng, p, s))
            if rng.random() < 0.10:
                nd.append(P._sample_out_of_plane(rng, p, s))
        elif r < 0.66:
            nd.append(P._sample_linear_artefact(rng, p, s))
        elif r < 0.80:
            nd.append(P._sample_out_of_plane(rng, p, s))
        p["needles"] = nd
    noise = P.Noise(rng)
    img, tr = P.render_params(p, noise)
    tr["seed"] = int(seed)
    return img, tr


def _work(args):
    seeds, path, start, plain = args
    mm = np.load(os.path.join(path, "regions.npy"), mmap_mode="r+")
    labs = []
    for s in seeds:
        if plain == "hard":
            img, tr = render_hard_frame(int(s))
        else:
            img, tr = P.render_frame(int(s)) if plain else render_needle_frame(int(s))
        mm[s - start] = img[P.REGION_Y:P.REGION_Y + P.REGION_H, P.REGION_X:P.REGION_X + P.REGION_W]
        labs.append((int(s), needle_labels(tr)))
    mm.flush()
    return labs


def build(path: str, seed_start: int, count: int, workers: int = 2, chunk: int = 100, plain: bool = False) -> None:
    """Renders frames seed_start.. into ``path`` (``plain``: True the eval
    distribution, ``render_frame``; "hard" ``render_hard_frame``; else
    needle-heavy). Skips if done."""
    done = os.path.join(path, "done.json")
    if os.path.exists(done):
        meta = json.load(open(done))
        if meta == {"seed_start": seed_start, "count": count, "plain": plain}:
            return
    os.makedirs(path, exist_ok=True)
    mm = np.lib.format.open_memmap(os.path.join(path, "regions.npy"), mode="w+", dtype=np.uint8,
                                   shape=(count, P.REGION_H, P.REGION_W))
    del mm
    jobs = [(list(range(a, min(a + chunk, seed_start + count))), path, seed_start, plain)
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
    json.dump({"seed_start": seed_start, "count": count, "plain": plain}, open(done, "w"))


def load(path: str):
    regions = np.load(os.path.join(path, "regions.npy"), mmap_mode="r")
    labels = dict(np.load(os.path.join(path, "labels.npz")))
    return regions, labels


if __name__ == "__main__":
    import sys
    # python needle_data.py CACHE [TRAIN_COUNT] [WORKERS]  (val 2400, train, hard 5000)
    cache = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 14000
    w = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    build(os.path.join(cache, "val"), 60000, 2400, workers=w, plain=True)
    print("val done", flush=True)
    build(os.path.join(cache, "train"), 0, n, workers=w)
    print("train done", flush=True)
    build(os.path.join(cache, "hard"), 0, 5000, workers=w, plain="hard")
    print("hard done", flush=True)

