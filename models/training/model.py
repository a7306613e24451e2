"""Small CNN for per-frame level-structure classification.

Input [1,1,128,128] (see preprocess.py), output logits [1,4] in the order
sacrum, lamina, interspace, off_spine. A 4x4/stride-4 patch convolution, then
3x3 convolutions (two strided) down to an 8x8 grid; the head keeps the spatial layout (flatten of an 8x8 map, no global
pooling) so the classifier can tell what lies under the centre column.
"""

import torch
from torch import nn


def cbr(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LevelNet(nn.Module):
    def __init__(self, width=(16, 32, 32, 48, 48), head_ch=12, hidden=48, n_classes=4):
        super().__init__()
        c = width
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, c[0], 4, 4, 0, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True)),  # 32
            cbr(c[0], c[1], 2),   # 16
            cbr(c[1], c[2], 1),   # 16
            cbr(c[2], c[3], 2),   # 8
            cbr(c[3], c[4], 1),   # 8
            nn.Conv2d(c[4], head_ch, 1, bias=False), nn.BatchNorm2d(head_ch), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(head_ch * 64, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(0.1), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every Conv2d(bias=False)+BatchNorm2d pair into one Conv2d with bias (eval only)."""
    import copy
    m = copy.deepcopy(model).eval()

    def fold(seq):
        mods = list(seq.children())
        out, i = [], 0
        while i < len(mods):
            a = mods[i]
            if isinstance(a, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                bn = mods[i + 1]
                conv = nn.Conv2d(a.in_channels, a.out_channels, a.kernel_size, a.stride, a.padding, bias=True)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.data = a.weight.data * scale[:, None, None, None]
                b0 = a.bias.data if a.bias is not None else torch.zeros_like(bn.running_mean)
                conv.bias.data = (b0 - bn.running_mean) * scale + bn.bias
                out.append(conv)
                i += 2
            elif isinstance(a, nn.Sequential):
                out.append(fold(a))
                i += 1
            else:
                out.append(a)
                i += 1
        return nn.Sequential(*out)

    m.features = fold(m.features)
    return m


def n_params(m):
    return sum(p.numel() for p in m.parameters())
