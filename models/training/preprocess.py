"""Model input preprocessing: the exact contract the Rust service implements.

crop region (x 140..500, y 60..420) of the 640x480 gray screen -> integer box
filter to 128x128 -> /255 -> (v - MEAN) / STD, float32, NCHW [1,1,128,128].

Box filter, per axis of source length S and output length 128: output index o
averages source pixels [s0, s1) with s0 = (o*S)//128 and
s1 = max(s0+1, ((o+1)*S)//128); the 2-D output is the float mean over the
rectangle [s0,s1) x [t0,t1) (no rounding).
"""

from __future__ import annotations

import numpy as np

from phantom_sagittal import RH, RW, RX, RY

OUT = 128
MEAN = 0.0
STD = 1.0


def box_bounds(S: int, n: int = OUT):
    o = np.arange(n)
    s0 = (o * S) // n
    s1 = np.maximum(s0 + 1, ((o + 1) * S) // n)
    return s0, s1


def _box_axis(a: np.ndarray, S: int, axis: int) -> np.ndarray:
    s0, s1 = box_bounds(S)
    c = np.cumsum(a, axis=axis, dtype=np.float64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    return (np.take(c, s1, axis=axis) - np.take(c, s0, axis=axis))


def box_resize(region: np.ndarray) -> np.ndarray:
    """Mean of each box (float64) for a [H, W] uint8 region."""
    H, W = region.shape
    s0y, s1y = box_bounds(H)
    s0x, s1x = box_bounds(W)
    if H >= OUT and W >= OUT:  # boxes tile the source: s1[o] == s0[o+1]
        sums = np.add.reduceat(np.add.reduceat(region.astype(np.int32), s0y, axis=0), s0x, axis=1)
    else:
        sums = _box_axis(_box_axis(region.astype(np.float64), H, 0), W, 1)
    return sums / ((s1y - s0y)[:, None] * (s1x - s0x)[None, :])


def preprocess(screen: np.ndarray) -> np.ndarray:
    """640x480 uint8 screen -> float32 [1,1,128,128]."""
    region = screen[RY:RY + RH, RX:RX + RW]
    v = box_resize(region) / 255.0
    v = (v - MEAN) / STD
    return v.astype(np.float32)[None, None]


def box_resize_reference(region: np.ndarray) -> np.ndarray:
    """Slow, literal implementation of the contract (for tests)."""
    H, W = region.shape
    out = np.zeros((OUT, OUT))
    for oy in range(OUT):
        t0 = (oy * H) // OUT
        t1 = max(t0 + 1, ((oy + 1) * H) // OUT)
        for ox in range(OUT):
            s0 = (ox * W) // OUT
            s1 = max(s0 + 1, ((ox + 1) * W) // OUT)
            out[oy, ox] = region[t0:t1, s0:s1].astype(np.float64).mean()
    return out
