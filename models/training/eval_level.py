"""Per-frame accuracy of the level classifier on held-out phantom sweeps (onnxruntime).

    python eval_level.py [--seeds 100000:100020] [--out metrics_level.json]

Held-out sweeps (seeds >= 100000, never used in training or calibration) are
rendered frame by frame exactly as gen_sweeps.py writes them and classified
by models/level_fp32.onnx and models/level_int8.onnx, each on the lossless
frame and on the same frame after JPEG compression of the whole 640x480
screen at the demo's quality (make_demo.JPEG_QUALITY). Also: the bundled
demo DICOM (its own JPEG frames), per-class accuracy, confusion matrices,
accuracy vs distance to the nearest class boundary, and onnxruntime latency.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import CLS, jpeg_roundtrip  # noqa: E402
from make_demo import JPEG_QUALITY  # noqa: E402
from phantom_sagittal import CLASSES, HELDOUT_SEED_MIN, Sweep  # noqa: E402
from preprocess import preprocess  # noqa: E402

MODELS = {"fp32": HERE.parent / "level_fp32.onnx", "int8": HERE.parent / "level_int8.onnx"}


def session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def eval_sweep(seed: int):
    assert seed >= HELDOUT_SEED_MIN
    sess = {k: session(p) for k, p in MODELS.items()}
    sw = Sweep(seed)
    bounds = sw.anat.boundaries()
    rows = []
    for i in range(len(sw)):
        scr = sw.frame(i)
        t = sw.truth_frame(i)
        x = {"lossless": preprocess(scr), "jpeg": preprocess(jpeg_roundtrip(scr, JPEG_QUALITY))}
        r = {"y": CLS[t["class"]], "dist_mm": float(np.min(np.abs(bounds - sw.states[i].probe_mm)))}
        for m, s in sess.items():
            for c, xx in x.items():
                r[f"{m}_{c}"] = s.run(["logits"], {"image": xx})[0][0]
        rows.append(r)
    return seed, rows


def summarize(y, pred, dist, trans_near):
    n = len(y)
    cm = np.zeros((4, 4), int)
    np.add.at(cm, (y, pred), 1)
    ok = y == pred
    per_class = {CLASSES[k]: (float(ok[y == k].mean()) if (y == k).any() else None) for k in range(4)}
    far = dist > 1.0
    return {
        "frames": int(n),
        "accuracy": float(ok.mean()),
        "per_class_accuracy": per_class,
        "confusion_rows_true_cols_pred": cm.tolist(),
        "accuracy_far_from_boundary_gt_1mm": float(ok[far].mean()),
        "accuracy_near_boundary_le_1mm": float(ok[~far].mean()) if (~far).any() else None,
        "frames_near_boundary_le_1mm": int((~far).sum()),
        "errors": int((~ok).sum()),
        "errors_within_1_frame_of_a_true_transition": int((~ok & trans_near).sum()),
    }


def demo_eval(dcm_path: Path, truth_path: Path):
    import pydicom
    from PIL import Image
    from pydicom.encaps import generate_frames
    ds = pydicom.dcmread(str(dcm_path))
    truth = json.loads(truth_path.read_text())
    frames = [np.array(Image.open(io.BytesIO(f)).convert("L"))
              for f in generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    y = np.array([CLS[f["class"]] for f in truth["frames"]])
    out = {}
    for m, p in MODELS.items():
        s = session(p)
        pred = np.array([int(np.argmax(s.run(["logits"], {"image": preprocess(fr)})[0][0])) for fr in frames])
        out[m] = {"frames": len(frames), "accuracy": float((pred == y).mean()), "errors_at": np.nonzero(pred != y)[0].tolist()}
    return out


def latency_ms(path, n=500):
    s = session(path)
    x = np.random.default_rng(0).random((1, 1, 128, 128), dtype=np.float32)
    for _ in range(50):
        s.run(["logits"], {"image": x})
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        s.run(["logits"], {"image": x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="100000:100020")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "metrics_level.json"))
    ap.add_argument("--demo", default=str(HERE.parent.parent / "demo" / "sagittal_sweep.dcm"))
    args = ap.parse_args()
    a, b = (int(x) for x in args.seeds.split(":"))
    seeds = list(range(a, b))
    t0 = time.time()
    if args.workers > 1:
        from multiprocessing import get_context
        with get_context("fork").Pool(args.workers) as pool:
            res = pool.map(eval_sweep, seeds, chunksize=1)
    else:
        res = [eval_sweep(s) for s in seeds]
    keys = [f"{m}_{c}" for m in MODELS for c in ("lossless", "jpeg")]
    y, dist, trans_near, logits = [], [], [], {k: [] for k in keys}
    for seed, rows in res:
        yy = np.array([r["y"] for r in rows])
        tn = np.zeros(len(yy), bool)
        for c in np.nonzero(yy[1:] != yy[:-1])[0]:  # frames c and c+1 straddle a transition
            tn[max(0, c - 1):c + 3] = True
        y.append(yy)
        trans_near.append(tn)
        dist.append([r["dist_mm"] for r in rows])
        for k in keys:
            logits[k] += [r[k] for r in rows]
    y, dist, trans_near = np.concatenate(y), np.concatenate(dist), np.concatenate(trans_near)
    metrics = {"heldout_seeds": f"{a}..{b - 1}", "sweeps": len(seeds), "jpeg_quality": JPEG_QUALITY,
               "results": {}}
    preds = {}
    for k in keys:
        preds[k] = np.argmax(np.array(logits[k]), 1)
        metrics["results"][k] = summarize(y, preds[k], dist, trans_near)
    metrics["fp32_int8_agreement_lossless"] = float((preds["fp32_lossless"] == preds["int8_lossless"]).mean())
    metrics["max_abs_logit_diff_fp32_int8"] = float(np.abs(np.array(logits["fp32_lossless"]) -
                                                           np.array(logits["int8_lossless"])).max())
    if Path(args.demo).exists():
        metrics["demo_dicom"] = demo_eval(Path(args.demo), Path(args.demo).with_suffix(".truth.json"))
    metrics["onnxruntime_latency_ms_1thread"] = {m: round(latency_ms(p), 4) for m, p in MODELS.items()}
    metrics["eval_seconds"] = round(time.time() - t0, 1)
    Path(args.out).write_text(json.dumps(metrics, indent=1) + "\n")
    for k in keys:
        r = metrics["results"][k]
        print(f"{k:15s} acc {r['accuracy']:.4f}  far {r['accuracy_far_from_boundary_gt_1mm']:.4f}  "
              f"near {r['accuracy_near_boundary_le_1mm']:.4f}  per-class "
              + " ".join(f"{c}={v:.3f}" if v is not None else f"{c}=n/a" for c, v in r["per_class_accuracy"].items()))
    print("demo:", {m: v["accuracy"] for m, v in metrics.get("demo_dicom", {}).items()})
    print("latency ms:", metrics["onnxruntime_latency_ms_1thread"])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
