"""Exports the needle network and merges it into the target model's ONNX
files, so one inference gives the target and the needle.

    python export_needle.py onnx --ckpt needle.pt --cache /tmp/needle_cache --outdir ..
    python export_needle.py manifests --ckpt needle.pt --outdir .. [--report eval-target.json]

Steps: BatchNorm folded, TorchScript export (opset 17, static batch 1, input
``image`` [1, 1, N, N], outputs ``needle_tip`` and ``needle_entry``
[1, 1, N/4, N/4] logits and ``needle`` [1, 1] logit), checked against torch;
int8: onnxruntime static QDQ exactly like the target model (per-channel int8
weights, uint8 activations, MinMax calibration on 256 needle training
frames). Then, for fp32 and for int8, the needle graph (names prefixed
``needle/``) is added beside the target graph of ``target_{fp32,int8}.onnx``,
both reading the one ``image`` input. The target part is taken as it is
(only its ``heatmap`` and ``plane`` outputs are kept, so re-running is
idempotent): the target outputs stay bit-identical.
"""

from __future__ import annotations

import argparse
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

import needle_data as ND  # noqa: E402
import transverse_data as D  # noqa: E402
from export_target import FP32, INT8, fuse_bn, sha256  # noqa: E402
from needle_model import NeedleNet  # noqa: E402

NEEDLE_OUTPUTS = ["needle_tip", "needle_entry", "needle"]
TARGET_OUTPUTS = ["heatmap", "plane"]


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = NeedleNet(ck["widths"])
    net.load_state_dict(ck["state"])
    net.eval()
    return net, ck


def _strip(m):
    del m.graph.value_info[:]
    used = {n.domain for n in m.graph.node}
    keep = [o for o in m.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del m.opset_import[:]
    m.opset_import.extend(keep)
    return m


def export_needle(ckpt, cache, td):
    """-> (fp32 path, int8 path, N) of the needle graph alone."""
    torch.set_num_threads(1)
    net, ck = load_ckpt(ckpt)
    N = ck["size"]
    fused = fuse_bn(load_ckpt(ckpt)[0]).eval()
    x = torch.rand(1, 1, N, N, generator=torch.Generator().manual_seed(0))
    fp32 = os.path.join(td, "needle_fp32.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(fused, (x,), fp32, input_names=["image"], output_names=NEEDLE_OUTPUTS,
                          opset_version=17, do_constant_folding=True, dynamo=False)
    m = _strip(onnx.load(fp32))
    onnx.checker.check_model(m)
    onnx.save(m, fp32)
    regions, _ = ND.load(os.path.join(cache, "val"))
    X = D.box_resize_regions(regions[:32], N)
    sess = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"])
    md = 0.0
    with torch.no_grad():
        for k in range(len(X)):
            xi = X[k][None, None]
            ref = net(torch.from_numpy(xi))
            got = sess.run(None, {"image": xi})
            md = max(md, *(float(np.abs(a.numpy() - b).max()) for a, b in zip(ref, got)))
    print(f"needle fp32 onnx vs torch max |diff| = {md:.2e}")
    assert md < 1e-3, md

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    tr_regions, _ = ND.load(os.path.join(cache, "train"))
    calib = D.box_resize_regions(tr_regions[:256], N)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            v = next(self.it, None)
            return None if v is None else {"image": v[None, None].astype(np.float32)}

    int8 = os.path.join(td, "needle_int8.onnx")
    pre = os.path.join(td, "pre.onnx")
    quant_pre_process(fp32, pre, skip_symbolic_shape=True)
    quantize_static(pre, int8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    m8 = _strip(onnx.load(int8))
    onnx.checker.check_model(m8)
    onnx.save(m8, int8)
    return fp32, int8, N


def merge(target_path, needle_path, out_path):
    """Target graph (heatmap, plane) + needle graph, one shared ``image`` input."""
    t = onnx.load(target_path)
    t = onnx.utils.Extractor(t).extract_model(["image"], TARGET_OUTPUTS)
    n = onnx.compose.add_prefix(onnx.load(needle_path), "needle/", rename_inputs=False, rename_outputs=False)
    g = t.graph
    g.node.extend(n.graph.node)
    g.initializer.extend(n.graph.initializer)
    g.output.extend(n.graph.output)
    have = {(o.domain, o.version) for o in t.opset_import}
    for o in n.opset_import:
        if (o.domain, o.version) not in have and o.domain not in {x.domain for x in t.opset_import}:
            t.opset_import.append(o)
    t.producer_name = "spine-edge train_target + train_needle"
    t.doc_string = ("needle-target heatmap (stride 4 logits) + plane-visible logit; needle tip and entry heatmaps "
                    "(stride 4 logits) + needle-present logit; synthetic phantom only")
    t = _strip(t)
    onnx.checker.check_model(t)
    onnx.save(t, out_path)
    return t


def needle_block(h: int) -> str:
    """The manifest's [[outputs]] entries of the needle heads (grid h x h)."""
    # The tip: soft-argmax around the mode farthest from the entry (spine-edge's
    # task/target/far_mode.rs; chosen on validation frames, see the card).
    heat = "".join(f'\n[[outputs]]\nname = "{n}"\nshape = [1, 1, {h}, {h}]\nkind = "heatmap_logits"\n'
                   f'stride_px = 4\ndecode = "{d}"\n'
                   for n, d in (("needle_tip", "softargmax_far_mode"), ("needle_entry", "softargmax")))
    return heat + '\n[[outputs]]\nname = "needle"\nshape = [1, 1]\nkind = "logit"\nlabels = ["needle_present"]\n'


NEEDLE_METHOD = ("; needle: a second encoder-decoder CNN ({params} params) in the same ONNX graph, tip and entry "
                 "heatmaps (softmax CE to a gaussian + soft-argmax mm error) and needle-present logit (BCE, frames "
                 "with the tip in a bone shadow masked); AdamW one-cycle, {epochs} epochs on {n} needle-heavy frames")


def _chain(ckpt):
    """The checkpoint and those it was fine-tuned from (``--init``), first run first."""
    out = []
    while ckpt:
        ck = torch.load(ckpt, map_location="cpu", weights_only=False)
        out.insert(0, ck)
        ckpt = ck["args"].get("init")
    return out


def _hard_count(path):
    if not path:
        return 0
    return len(np.load(os.path.join(path, "labels.npz"))["needle"])


def patch_manifests(ckpt, outdir, report):
    """Adds the needle outputs, method and (Rust-measured) metrics to the
    manifests ``export_target.py manifests`` wrote; refreshes the sha256."""
    import re

    ck = torch.load(ckpt, map_location="cpu", weights_only=False)
    N = ck["size"]
    by = {}
    if report:
        for e in json.load(open(report)):
            by[os.path.basename(e["model"]).replace(".toml", ".onnx")] = e
    for file in (FP32, INT8):
        path = os.path.join(outdir, file.replace(".onnx", ".toml"))
        text = open(path).read()
        text = re.sub(r'sha256 = "[0-9a-f]+"', f'sha256 = "{sha256(os.path.join(outdir, file))}"', text, count=1)
        if 'name = "needle_tip"' not in text:
            text = text.replace("\n[training]", needle_block(N // 4) + "\n[training]", 1)
        text = re.sub(r'; needle: [^"]*"', '"', text)  # re-running replaces the needle parts
        chain = _chain(ckpt)  # first run, then fine-tunes (--init)
        n = chain[0]["args"].get("train_count") or chain[0].get("train_frames", 0)
        m = NEEDLE_METHOD.format(params=ck["params"], epochs=chain[0]["args"]["epochs"], n=n)
        nh = 0
        for c in chain[1:]:
            nh = _hard_count(c["args"].get("hard"))
            m += (f", then fine-tuned {c['args']['epochs']} epochs (one-cycle, lr {c['args']['lr']:g})"
                  + (f" with {nh} hard-case frames added" if nh else ""))
        d = "; needle: needle-heavy frames (needle_data.py, seeds 0-" + str(n - 1) + ", stream 0x4EED)"
        if nh:
            d += f" + hard-case frames (render_hard_frame, seeds 0-{nh - 1}, stream 0x4EEE)"
        text = re.sub(r'(method = "[^"]*)"', lambda mo: mo.group(1) + m + '"', text, count=1)
        text = re.sub(r'(data = "[^"]*)"', lambda mo: mo.group(1) + d + '"', text, count=1)
        text = re.sub(r"\nheldout_needle_[^\n]*", "", text)
        f = by.get(file, {}).get("frames")
        if f:
            text = text.rstrip("\n") + "\n" + "".join([
                f"heldout_needle_precision = {f['needle_precision']:.4f}\n",
                f"heldout_needle_recall = {f['needle_recall']:.4f}\n",
                f"heldout_needle_tip_error_mean_mm = {f['needle_tip_error_mean_mm']:.3f}\n",
                f"heldout_needle_tip_error_p95_mm = {f['needle_tip_error_p95_mm']:.3f}\n",
                f"heldout_needle_description = \"spine-edge eval-target (tract) on {f['frames']} new phantom frames, "
                f"{f['needle_positives']} needle positives; tip decode softargmax_far_mode, model_min_prob 0.3\"\n"])
        open(path, "w").write(text)
        print(f"patched {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["onnx", "manifests"])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--cache", default="/tmp/needle_cache")
    ap.add_argument("--outdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--report", default=None, help="spine-edge eval-target --report JSON (needle metrics)")
    args = ap.parse_args()
    if args.what == "manifests":
        patch_manifests(args.ckpt, args.outdir, args.report)
        return
    with tempfile.TemporaryDirectory() as td:
        nf, n8, N = export_needle(args.ckpt, args.cache, td)
        for tgt, nd in ((FP32, nf), (INT8, n8)):
            path = os.path.join(args.outdir, tgt)
            before = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            x = np.random.default_rng(0).random((1, 1, N, N), dtype=np.float32)
            ref = before.run(TARGET_OUTPUTS, {"image": x})
            merge(path, nd, path)
            s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            got = s.run(None, {"image": x})
            names = [o.name for o in s.get_outputs()]
            assert names == TARGET_OUTPUTS + NEEDLE_OUTPUTS, names
            assert all(np.array_equal(a, b) for a, b in zip(ref, got[:2])), "target outputs changed"
            print(f"{path}: outputs {names} {[g.shape for g in got]}; sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
