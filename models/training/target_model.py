"""The needle-target network and its heatmap decode (shared by train/export/eval).

One small encoder-decoder with two heads:
* ``heatmap``: target logits on a grid at stride 4 of the model input
  (N/4 x N/4 cells); cell (r, c) is centred at model-input pixel
  (4c + 1.5, 4r + 1.5) (pixel centres at integers).
* ``plane``: one logit, "the interlaminar target plane is visible".
An optional third/fourth head (``needle_heatmap``, ``needle``) exists only for
the needle experiment; the shipped target model is built without it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDE = 4


def cbr(cin, cout, stride=1, dil=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dil, dilation=dil, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TargetNet(nn.Module):
    def __init__(self, widths=(16, 24, 32, 48, 64), needle=False):
        super().__init__()
        c0, c1, c2, c3, c4 = widths
        self.widths = tuple(widths)
        self.needle = needle
        self.e1 = cbr(1, c0, 2)  # /2
        self.e2 = nn.Sequential(cbr(c0, c1, 2), cbr(c1, c1))  # /4
        self.e3 = nn.Sequential(cbr(c1, c2, 2), cbr(c2, c2))  # /8
        self.e4 = nn.Sequential(cbr(c2, c3, 2), cbr(c3, c3, dil=2))  # /16
        self.e5 = nn.Sequential(cbr(c3, c4, 2), cbr(c4, c4))  # /32
        self.l4 = nn.Conv2d(c3, c4, 1)
        self.d4 = cbr(c4, c3)
        self.l3 = nn.Conv2d(c2, c3, 1)
        self.d3 = cbr(c3, c2)
        self.l2 = nn.Conv2d(c1, c2, 1)
        self.d2 = cbr(c2, c1)
        self.head = nn.Conv2d(c1, 1, 1)
        self.plane = nn.Linear(2 * c4, 1)
        if needle:
            self.nhead = nn.Sequential(cbr(c1, c1), nn.Conv2d(c1, 1, 1))
            self.nplane = nn.Linear(2 * c4 + c1, 1)

    def forward(self, x):
        f1 = self.e1(x)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        f5 = self.e5(f4)
        y = self.d4(F.interpolate(f5, scale_factor=2.0, mode="nearest") + self.l4(f4))
        y = self.d3(F.interpolate(y, scale_factor=2.0, mode="nearest") + self.l3(f3))
        y = self.d2(F.interpolate(y, scale_factor=2.0, mode="nearest") + self.l2(f2))
        heat = self.head(y)
        g = torch.cat([f5.mean(dim=(2, 3)), f5.amax(dim=(2, 3))], dim=1)
        plane = self.plane(g)
        if not self.needle:
            return heat, plane
        nheat = self.nhead(y)
        ng = torch.cat([g, y.amax(dim=(2, 3))], dim=1)
        return heat, plane, nheat, self.nplane(ng)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def cell_centres(n_cells: int) -> np.ndarray:
    """Model-input pixel coordinate of each heatmap cell centre."""
    return np.arange(n_cells, dtype=np.float64) * STRIDE + (STRIDE - 1) / 2.0


def softargmax_torch(logits: torch.Tensor):
    """(B, 1, h, w) logits -> (B, 2) expected (x, y) in model-input px."""
    b, _, h, w = logits.shape
    p = torch.softmax(logits.reshape(b, -1), dim=1).reshape(b, h, w)
    cx = torch.arange(w, dtype=logits.dtype, device=logits.device) * STRIDE + (STRIDE - 1) / 2.0
    cy = torch.arange(h, dtype=logits.dtype, device=logits.device) * STRIDE + (STRIDE - 1) / 2.0
    x = (p.sum(1) * cx).sum(1)
    y = (p.sum(2) * cy).sum(1)
    return torch.stack([x, y], 1), p


def decode_softargmax(logits: np.ndarray) -> tuple[float, float]:
    """The decode the Rust service reproduces. logits: (h, w) float.

    p = exp(l - max l) / sum(exp(l - max l))   (temperature 1, whole grid)
    x = sum p * (4c + 1.5),  y = sum p * (4r + 1.5)   [model-input px]"""
    l = np.asarray(logits, np.float64)
    e = np.exp(l - l.max())
    p = e / e.sum()
    h, w = l.shape
    x = float((p.sum(0) * cell_centres(w)).sum())
    y = float((p.sum(1) * cell_centres(h)).sum())
    return x, y


def softargmax_spread(logits: np.ndarray) -> float:
    """Standard deviation (model-input px) of the soft-argmax distribution:
    sqrt(sum p * ((cx - x)^2 + (cy - y)^2)). A confidence signal."""
    l = np.asarray(logits, np.float64)
    e = np.exp(l - l.max())
    p = e / e.sum()
    h, w = l.shape
    x, y = decode_softargmax(l)
    cx, cy = cell_centres(w), cell_centres(h)
    return float(np.sqrt((p.sum(0) * (cx - x) ** 2).sum() + (p.sum(1) * (cy - y) ** 2).sum()))


def input_to_region(u, v, N: int, S: int = 360):
    """Model-input px -> region px (linear map, pixel centres at integers)."""
    return (u + 0.5) * S / N - 0.5, (v + 0.5) * S / N - 0.5


def region_to_input(x, y, N: int, S: int = 360):
    return (x + 0.5) * N / S - 0.5, (y + 0.5) * N / S - 0.5
