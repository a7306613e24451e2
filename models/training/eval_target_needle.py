"""Needle-head experiment: exports the 4-head checkpoint (train_target.py
--needle) to ONNX and measures needle detection and tip error on held-out
frames, to compare with an image-processing detector. Not shipped.

    python eval_target_needle.py --ckpt n128.pt --data DIR [--onnx out.onnx]

Truth "needle present" = an ``in_plane`` needle with strength >= 0.5 whose tip
is not in a bone shadow (the label the heads were trained on). Predicted
present = needle logit > 0. Tip = soft-argmax of ``needle_heatmap`` decoded
exactly like the target heatmap. Frames with only an out-of-plane dot or a
linear artefact count as negatives (false positives are reported for them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import phantom_transverse as P  # noqa: E402
from eval_target import latency_ms, session  # noqa: E402
from export_target import fuse_bn, load_ckpt  # noqa: E402
from gen_transverse import read_y4m  # noqa: E402
from target_model import decode_softargmax, input_to_region  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--onnx", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, ck = load_ckpt(args.ckpt)
    assert ck["needle"], "checkpoint has no needle heads"
    net = fuse_bn(net).eval()
    N = ck["size"]
    path = args.onnx or os.path.join(tempfile.mkdtemp(), "needle.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 1, N, N),), path, input_names=["image"],
                          output_names=["heatmap", "plane", "needle_heatmap", "needle"], opset_version=17,
                          dynamo=False)
    sess = session(path)
    truth = json.load(open(os.path.join(args.data, "truth.json")))["frames"]
    frames = read_y4m(os.path.join(args.data, "frames.y4m"))
    tp = fp = fn = tn = 0
    fp_by_kind = {}
    errs, errs_depth = [], []
    for img, tr in zip(frames, truth):
        x = P.model_input(img, N)[None, None]
        heat, plane, nheat, nlogit = sess.run(None, {"image": x})
        pres = float(nlogit.reshape(-1)[0]) > 0
        gt = [n for n in tr["needles"] if n["kind"] == "in_plane" and n["strength"] >= 0.5 and n["tip_visible"]]
        if gt and pres:
            tp += 1
            u, v = decode_softargmax(nheat[0, 0])
            rx, ry = input_to_region(u, v, N)
            sx, sy = rx + P.REGION_X, ry + P.REGION_Y
            s = tr["mm_per_px"]
            tx, ty = gt[0]["tip_px"]
            errs.append(float(np.hypot((sx - tx) * s[0], (sy - ty) * s[1])))
            errs_depth.append(abs(sy - ty) * s[1])
        elif gt:
            fn += 1
        elif pres:
            fp += 1
            kinds = "+".join(sorted({n["kind"] for n in tr["needles"]})) or "none"
            fp_by_kind[kinds] = fp_by_kind.get(kinds, 0) + 1
        else:
            tn += 1
    errs = np.array(errs)
    neg_kinds = {}
    for tr in truth:
        if not [n for n in tr["needles"] if n["kind"] == "in_plane" and n["strength"] >= 0.5 and n["tip_visible"]]:
            k = "+".join(sorted({n["kind"] for n in tr["needles"]})) or "none"
            neg_kinds[k] = neg_kinds.get(k, 0) + 1
    res = {
        "frames": len(frames),
        "positives": tp + fn,
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, tp + fn),
        "false_positives_by_frame_content": fp_by_kind,
        "negatives_by_frame_content": neg_kinds,
        "tip_error_mean_mm": float(errs.mean()),
        "tip_error_median_mm": float(np.median(errs)),
        "tip_error_p95_mm": float(np.percentile(errs, 95)),
        "tip_depth_error_mean_mm": float(np.mean(errs_depth)),
        "tip_within_2mm": float((errs <= 2.0).mean()),
        "ort_latency_median_ms_1thread_4heads": round(latency_ms(sess, N)[0], 3),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        json.dump(res, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
