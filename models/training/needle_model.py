"""The needle network (shipped inside the target model's ONNX graph).

A small encoder-decoder like the target network, trained on its own
(``train_needle.py``), with three heads:
* ``needle_tip``: tip logits on a grid at stride 4 of the model input
  (N/4 x N/4 cells, decoded by soft-argmax exactly like the target heatmap);
* ``needle_entry``: logits of where the shaft enters the image region (the
  other end of the needle axis), same grid and decode;
* ``needle``: one logit, "an in-plane needle with its tip visible".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from target_model import cbr


class NeedleNet(nn.Module):
    def __init__(self, widths=(16, 24, 32, 48, 64)):
        super().__init__()
        c0, c1, c2, c3, c4 = widths
        self.widths = tuple(widths)
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
        self.d2 = nn.Sequential(cbr(c2, c1), cbr(c1, c1))
        self.tip = nn.Conv2d(c1, 1, 1)
        self.entry = nn.Conv2d(c1, 1, 1)
        self.present = nn.Linear(2 * c4 + 2 * c1, 1)

    def forward(self, x):
        f1 = self.e1(x)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        f5 = self.e5(f4)
        y = self.d4(F.interpolate(f5, scale_factor=2.0, mode="nearest") + self.l4(f4))
        y = self.d3(F.interpolate(y, scale_factor=2.0, mode="nearest") + self.l3(f3))
        y = self.d2(F.interpolate(y, scale_factor=2.0, mode="nearest") + self.l2(f2))
        tip = self.tip(y)
        entry = self.entry(y)
        g = torch.cat([f5.mean(dim=(2, 3)), f5.amax(dim=(2, 3)), y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)
        return tip, entry, self.present(g)
