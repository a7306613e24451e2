"""Training/validation samples from phantom sweeps (preprocessed 128x128 tensors).

Per sweep: every frame within 3 frames of a class transition, a random share of
the other frames, and extra frames re-rendered with the probe placed within
+-1.5 mm of each anatomical boundary the sweep crosses (the classifier must be
exact near lamina/interspace boundaries). A share of frames is JPEG-compressed
(whole 640x480 screen, Pillow, random quality) before preprocessing.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from phantom_sagittal import CLASSES, FrameState, Sweep, HELDOUT_SEED_MIN
from preprocess import preprocess

CLS = {c: i for i, c in enumerate(CLASSES)}


def jpeg_roundtrip(screen: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(screen, "L").save(buf, format="JPEG", quality=int(quality))
    return np.array(Image.open(io.BytesIO(buf.getvalue())).convert("L"))


def sweep_samples(seed: int, keep_frac: float = 0.12, per_boundary: int = 6, jpeg_frac: float = 0.4):
    if seed >= HELDOUT_SEED_MIN:
        raise ValueError("held-out seeds are never used for training")
    rng = np.random.default_rng([seed, 999])
    sw = Sweep(seed)
    tr = [sw.truth_frame(i) for i in range(len(sw))]
    labels = np.array([CLS[f["class"]] for f in tr])
    n = len(sw)
    near = np.zeros(n, bool)
    ch = np.nonzero(labels[1:] != labels[:-1])[0]
    for c in ch:
        near[max(0, c - 2):c + 4] = True
    lift = np.array([s.lift_off for s in sw.states])
    pick = near | lift | (rng.random(n) < keep_frac)
    screens, ys = [], []
    for i in np.nonzero(pick)[0]:
        screens.append(sw.frame(int(i)))
        ys.append(labels[i])
    # boundary oversampling
    probes = np.array([s.probe_mm for s in sw.states])
    lo, hi = probes.min(), probes.max()
    for b in sw.anat.boundaries():
        if not (lo - 1.0 <= b <= hi + 1.0):
            continue
        for j in range(per_boundary):
            src = sw.states[int(rng.integers(0, n))]
            p = min(b + rng.uniform(-1.5, 1.5), hi)
            st = FrameState(p, False, None, src.lowq if rng.random() < 0.3 else None,
                            src.gain_db, src.press_px, src.tilt)
            screens.append(sw.frame_at(st, (int(b * 1000) & 0xFFFFFF, j)))
            ys.append(CLS[sw.anat.label_at(p)[0]])
    X = np.empty((len(screens), 128, 128), np.float16)
    for k, scr in enumerate(screens):
        if rng.random() < jpeg_frac:
            scr = jpeg_roundtrip(scr, rng.integers(50, 96))
        X[k] = preprocess(scr)[0, 0]
    return X, np.array(ys, np.int64)


def build(seeds, workers: int = 2, **kw):
    if workers > 1:
        from multiprocessing import get_context
        with get_context("fork").Pool(workers) as pool:
            parts = pool.starmap(sweep_samples, [(s,) for s in seeds], chunksize=1)
    else:
        parts = [sweep_samples(s, **kw) for s in seeds]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return X, y
