"""Latency of architecture alternatives for the target model (onnxruntime,
one thread, batch 1, random weights: latency does not depend on them).

    python bench_target.py

Compares the shipped layout (one network, heatmap + plane heads) at input
sizes 128/160/192 with the two-network alternative (a heatmap network plus a
separate plane classifier of the same encoder)."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
import torch
import torch.nn as nn
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from eval_target import latency_ms, session  # noqa: E402
from target_model import TargetNet  # noqa: E402


class EncoderClassifier(nn.Module):
    """The plane head alone on its own copy of the encoder."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        f5 = n.e5(n.e4(n.e3(n.e2(n.e1(x)))))
        return n.plane(torch.cat([f5.mean(dim=(2, 3)), f5.amax(dim=(2, 3))], 1))


def export(model, N, path):
    """Exports and returns the parameter count actually in the graph."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 1, N, N),), path, input_names=["image"], opset_version=17,
                          dynamo=False)
    return sum(int(np.prod(t.dims)) for t in onnx.load(path).graph.initializer)


def main():
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for N in (128, 160, 192):
            net = TargetNet()
            p = os.path.join(td, f"t{N}.onnx")
            n_par = export(net, N, p)
            rows.append((f"one net, 2 heads, N={N}", n_par, latency_ms(session(p), N)[0]))
        net = TargetNet()
        p1, p2 = os.path.join(td, "h.onnx"), os.path.join(td, "c.onnx")
        n1 = export(net, 128, p1)
        n2 = export(EncoderClassifier(TargetNet()), 128, p2)
        l1, l2 = latency_ms(session(p1), 128)[0], latency_ms(session(p2), 128)[0]
        rows.append(("two nets (heatmap net + encoder classifier), N=128", n1 + n2, l1 + l2))
        rows.append(("  of which the classifier alone", n2, l2))
    for name, params, ms in rows:
        print(f"{name:55s} params {params:7d}  ort 1-thread median {ms:.3f} ms")


if __name__ == "__main__":
    main()
