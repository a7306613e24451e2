"""Exports the trained target model: fp32 ONNX, int8 QDQ ONNX, manifests.

    python export_target.py onnx --ckpt ckpt.pt --outdir ..           # both .onnx
    python export_target.py manifests --metrics metrics.json --outdir ..  # .toml

ONNX: opset 17, static batch 1, input ``image`` [1, 1, N, N], outputs
``heatmap`` [1, 1, N/4, N/4] (logits) and ``plane`` [1, 1] (logit).
BatchNorm is folded into the convolutions before export. The TorchScript
exporter is used (no symbolic dims, no value_info with a batch symbol).
int8: onnxruntime static QDQ (per-channel int8 weights, uint8 activations,
MinMax calibration on 256 training frames, never held-out ones), after
``quant_pre_process(skip_symbolic_shape=True)``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import transverse_data as D  # noqa: E402
from target_model import STRIDE, TargetNet  # noqa: E402

FP32 = "target_fp32.onnx"
INT8 = "target_int8.onnx"


def fuse_bn(model: nn.Module) -> nn.Module:
    """Folds every Conv2d + BatchNorm2d pair inside a Sequential."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in model.modules():
        if isinstance(m, nn.Sequential):
            for i in range(len(m) - 1):
                if isinstance(m[i], nn.Conv2d) and isinstance(m[i + 1], nn.BatchNorm2d):
                    m[i] = fuse_conv_bn_eval(m[i], m[i + 1])
                    m[i + 1] = nn.Identity()
    return model


class Exported(nn.Module):
    """Only the two shipped heads, in the manifest's output order."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        out = self.net(image)
        return out[0], out[1]


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = TargetNet(ck["widths"], needle=ck["needle"])
    net.load_state_dict(ck["state"])
    net.eval()
    return net, ck


def export_onnx(ckpt, outdir, cache):
    torch.set_num_threads(1)
    net, ck = load_ckpt(ckpt)
    N = ck["size"]
    ref = Exported(net).eval()
    fused = Exported(fuse_bn(load_ckpt(ckpt)[0])).eval()
    x = torch.rand(1, 1, N, N, generator=torch.Generator().manual_seed(0))
    fp32 = os.path.join(outdir, FP32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(fused, (x,), fp32, input_names=["image"], output_names=["heatmap", "plane"],
                          opset_version=17, do_constant_folding=True, dynamo=False)
    m = onnx.load(fp32)
    del m.graph.value_info[:]  # no intermediate shapes (see FIELD-NOTES)
    m.producer_name = "spine-edge train_target"
    m.doc_string = "needle-target heatmap (stride 4 logits) + plane-visible logit; synthetic phantom only"
    onnx.checker.check_model(m)
    onnx.save(m, fp32)

    # verify fp32 against torch on real frames
    regions, _ = D.load(os.path.join(cache, "val"))
    X = D.box_resize_regions(regions[:32], N)
    sess = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"])
    md = 0.0
    with torch.no_grad():
        for k in range(len(X)):
            xi = X[k][None, None]
            h_t, p_t = ref(torch.from_numpy(xi))
            h_o, p_o = sess.run(None, {"image": xi})
            md = max(md, float(np.abs(h_t.numpy() - h_o).max()), float(np.abs(p_t.numpy() - p_o).max()))
    print(f"fp32 onnx vs torch max |diff| = {md:.2e}")
    assert md < 1e-3, md

    # int8 static QDQ
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tr_regions, _ = D.load(os.path.join(cache, "train"))
    calib = D.box_resize_regions(tr_regions[:256], N)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            v = next(self.it, None)
            return None if v is None else {"image": v[None, None].astype(np.float32)}

    int8 = os.path.join(outdir, INT8)
    with tempfile.TemporaryDirectory() as td:
        pre = os.path.join(td, "pre.onnx")
        quant_pre_process(fp32, pre, skip_symbolic_shape=True)
        quantize_static(pre, int8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    m8 = onnx.load(int8)
    del m8.graph.value_info[:]
    # quant_pre_process leaves every registered domain in opset_import; keep the used ones
    used = {n.domain for n in m8.graph.node}
    keep = [o for o in m8.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del m8.opset_import[:]
    m8.opset_import.extend(keep)
    onnx.checker.check_model(m8)
    onnx.save(m8, int8)
    s8 = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
    h8, p8 = s8.run(None, {"image": X[:1][None, 0:1].reshape(1, 1, N, N)})
    print(f"int8 outputs {h8.shape} {p8.shape}")
    for name in (fp32, int8):
        print(f"{name}: {os.path.getsize(name)} bytes sha256 {sha256(name)}")
    return N, ck


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 16), b""):
            h.update(b)
    return h.hexdigest()


MANIFEST = """[model]
name = "{name}"
task = "target"
file = "{file}"
sha256 = "{sha}"
quantization = "{quant}"
card = "target.md"

[input]
name = "image"
shape = [1, 1, {N}, {N}]
layout = "NCHW"
color = "gray"
resize = "box"
mean = 0.0
std = 1.0

[[outputs]]
name = "heatmap"
shape = [1, 1, {h}, {h}]
kind = "heatmap_logits"
stride_px = {stride}
decode = "softargmax"

[[outputs]]
name = "plane"
shape = [1, 1]
kind = "logit"
labels = ["plane_visible"]

[training]
data = "{data}"
method = "{method}"
validated_on_patients = false

[metrics]
heldout_target_error_mean_mm = {em:.3f}
heldout_target_error_p95_mm = {ep:.3f}
heldout_depth_error_mean_mm = {dm:.3f}
heldout_plane_accuracy = {pa:.4f}
heldout_lateral_error_mean_mm = {lm:.3f}
heldout_description = "{desc}"
"""

DATA = ("synthetic transverse lumbar ultrasound phantom only (phantom_transverse.py, train seeds 0-{ntr}); "
        "no patient data")
METHOD = ("encoder-decoder CNN ({params} params), stride-4 target heatmap (softmax CE to a gaussian + soft-argmax "
          "mm error) and plane-visible logit (BCE); AdamW one-cycle, {epochs} epochs, CPU")


def write_manifests(metrics_path, outdir, ckpt):
    res = json.load(open(metrics_path))
    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    N = ck["size"]
    by = {r["model"]: r for r in res["results"]}
    ntr = ck["args"].get("train_count") or 12000
    desc = (f"onnxruntime on {res['count']} phantom frames, seeds {res['seed_start']}-"
            f"{res['seed_start'] + res['count'] - 1} (errors over the "
            f"{by[FP32]['plane_visible_frames']} plane-visible frames)")
    for file, quant, name in ((FP32, "fp32", "target-transverse-fp32"), (INT8, "int8-qdq", "target-transverse-int8")):
        r = by[file]
        text = MANIFEST.format(
            name=name, file=file, sha=sha256(os.path.join(outdir, file)), quant=quant, N=N, h=N // STRIDE,
            stride=STRIDE, data=DATA.format(ntr=ntr - 1),
            method=METHOD.format(params=ck["params"], epochs=ck["args"]["epochs"]),
            em=r["target_error_mean_mm"], ep=r["target_error_p95_mm"], dm=r["depth_error_mean_mm"],
            pa=r["plane_accuracy"], lm=r["lateral_error_mean_mm"], desc=desc)
        path = os.path.join(outdir, file.replace(".onnx", ".toml"))
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path}")
    write_card(by, ck, desc, outdir)


def write_card(by, ck, desc, outdir):
    tpl = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "target_card.md.in")).read()
    N = ck["size"]
    f, q = by[FP32], by[INT8]

    def views(r):
        v = r["plane_accuracy_by_view"]
        return " / ".join(f"{v.get(k, float('nan')):.3f}" for k in ("interspace", "spinous", "liftoff"))

    groups = "\n".join(f"* {g}: n = {v['n']}, {v['mean_mm']:.2f} / {v['p95_mm']:.2f}"
                        for g, v in f["target_error_by_group"].items())
    sv, sh = f["heatmap_spread_mm_visible_p50_p95"], f["heatmap_spread_mm_hidden_p5_p50"]
    fields = {
        "N": N, "H": N // STRIDE, "params": ck["params"], "epochs": ck["args"]["epochs"], "desc": desc,
        "method": METHOD.format(params=ck["params"], epochs=ck["args"]["epochs"]) + ".",
        "spread_vis": f"median {sv[0]:.1f} mm, p95 {sv[1]:.1f} mm",
        "spread_hid": f"p5 {sh[0]:.1f} mm, median {sh[1]:.1f} mm" if sh else "n/a",
        "groups": groups,
    }
    for pre, r in (("fp", f), ("i8", q)):
        fields.update({
            f"{pre}_em": f"{r['target_error_mean_mm']:.3f}", f"{pre}_med": f"{r['target_error_median_mm']:.3f}",
            f"{pre}_ep": f"{r['target_error_p95_mm']:.3f}", f"{pre}_max": f"{r['target_error_max_mm']:.2f}",
            f"{pre}_dm": f"{r['depth_error_mean_mm']:.3f}", f"{pre}_lm": f"{r['lateral_error_mean_mm']:.3f}",
            f"{pre}_pa": f"{r['plane_accuracy']:.4f}", f"{pre}_pav": views(r),
            f"{pre}_lat": f"{r['ort_latency_median_ms_1thread']:.2f}",
        })
    path = os.path.join(outdir, "target.md")
    with open(path, "w") as fh:
        fh.write(tpl.format(**fields))
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["onnx", "manifests"])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--outdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--cache", default="/tmp/target_cache")
    ap.add_argument("--metrics")
    args = ap.parse_args()
    if args.what == "onnx":
        export_onnx(args.ckpt, args.outdir, args.cache)
    else:
        write_manifests(args.metrics, args.outdir, args.ckpt)


if __name__ == "__main__":
    main()
