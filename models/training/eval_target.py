"""Held-out evaluation of target ONNX models with onnxruntime (one thread).

    python eval_target.py --data DIR --model ../target_fp32.onnx ../target_int8.onnx --json out.json

DIR is written by ``gen_transverse.py`` (frames.y4m + truth.json). Each frame
goes through exactly the path the Rust service implements: region crop ->
integer box resize -> /255 -> (v - mean) / std -> model -> soft-argmax decode
of the heatmap (``target_model.decode_softargmax``) -> screen px -> mm.

Metrics (target errors over frames whose truth is plane-visible, whatever the
plane head says; plane accuracy over all frames with threshold logit > 0):
target_error_mean/p95 (euclidean mm), depth_error_mean (|dy| mm),
lateral_error_mean, plane_accuracy, plus a latency median (ms, batch 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnxruntime as ort  # noqa: E402

import phantom_transverse as P  # noqa: E402
from gen_transverse import read_y4m  # noqa: E402
from target_model import decode_softargmax, input_to_region, softargmax_spread  # noqa: E402


def session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def latency_ms(sess, N, runs=300, warm=30):
    x = np.random.default_rng(0).random((1, 1, N, N), dtype=np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(warm):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append((time.perf_counter() - t) * 1000)
    return float(np.median(ts)), float(np.percentile(ts, 10))


def predict(sess, frame, N, mean=0.0, std=1.0):
    x = P.model_input(frame, N, mean, std)[None, None]
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    names = [o.name for o in sess.get_outputs()]
    heat = outs[names.index("heatmap")][0, 0]
    plane = float(outs[names.index("plane")].reshape(-1)[0])
    u, v = decode_softargmax(heat)
    rx, ry = input_to_region(u, v, N)
    return rx + P.REGION_X, ry + P.REGION_Y, plane, softargmax_spread(heat) * P.REGION_W / N


def group_flags(tr):
    """Subsets of plane-visible frames for the error breakdown."""
    needle = any(n["kind"] == "in_plane" for n in tr["needles"])
    return {
        "all": True,
        "needle_in_plane": needle,
        "no_needle": not tr["needles"],
        "narrow_window_offset_0.3_0.5": tr["interspace_offset"] >= 0.3,
        "obesity_over_0.6": tr["obesity"] > 0.6,
        "target_deeper_70mm": tr["target_mm"]["depth"] > 70,
        "target_shallower_45mm": tr["target_mm"]["depth"] < 45,
    }


def evaluate(model_path, frames, truth, threads=1):
    sess = session(model_path, threads)
    N = sess.get_inputs()[0].shape[-1]
    errs, derrs, lerrs, correct = [], [], [], 0
    per_view = {}
    worst = []
    spread = {True: [], False: []}
    groups = {}
    for img, tr in zip(frames, truth):
        x, y, logit, spr = predict(sess, img, N)
        spread[bool(tr["plane_visible"])].append(spr * tr["mm_per_px"][0])
        vis = tr["plane_visible"]
        ok = (logit > 0) == vis
        correct += ok
        pv = per_view.setdefault(tr["view"], [0, 0])
        pv[0] += ok
        pv[1] += 1
        if vis:
            s = tr["mm_per_px"]
            tx, ty = tr["target_px"]
            dx, dy = (x - tx) * s[0], (y - ty) * s[1]
            e = float(np.hypot(dx, dy))
            errs.append(e)
            derrs.append(abs(dy))
            lerrs.append(abs(dx))
            worst.append((e, tr["seed"]))
            for g, on in group_flags(tr).items():
                if on:
                    groups.setdefault(g, []).append(e)
    errs = np.array(errs)
    med, p10 = latency_ms(sess, N)
    worst.sort(reverse=True)
    return {
        "model": os.path.basename(model_path),
        "input_size": N,
        "frames": len(frames),
        "plane_visible_frames": int(len(errs)),
        "target_error_mean_mm": float(errs.mean()),
        "target_error_median_mm": float(np.median(errs)),
        "target_error_p95_mm": float(np.percentile(errs, 95)),
        "target_error_max_mm": float(errs.max()),
        "depth_error_mean_mm": float(np.mean(derrs)),
        "lateral_error_mean_mm": float(np.mean(lerrs)),
        "plane_accuracy": correct / len(frames),
        "plane_accuracy_by_view": {k: v[0] / v[1] for k, v in per_view.items()},
        "heatmap_spread_mm_visible_p50_p95": [float(np.percentile(spread[True], q)) for q in (50, 95)],
        "heatmap_spread_mm_hidden_p5_p50": [float(np.percentile(spread[False], q)) for q in (5, 50)]
        if spread[False] else None,
        "ort_latency_median_ms_1thread": round(med, 3),
        "ort_latency_p10_ms_1thread": round(p10, 3),
        "worst_seeds": [[round(e, 2), s] for e, s in worst[:8]],
        "target_error_by_group": {g: {"n": len(v), "mean_mm": round(float(np.mean(v)), 3),
                                      "p95_mm": round(float(np.percentile(v, 95)), 3)}
                                  for g, v in sorted(groups.items())},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder written by gen_transverse.py")
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    truth = json.load(open(os.path.join(args.data, "truth.json")))
    frames = read_y4m(os.path.join(args.data, "frames.y4m"))
    res = {"data": os.path.abspath(args.data), "seed_start": truth["seed_start"], "count": truth["count"],
           "results": []}
    for m in args.model:
        r = evaluate(m, frames, truth["frames"], args.threads)
        print(json.dumps(r), flush=True)
        res["results"].append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
