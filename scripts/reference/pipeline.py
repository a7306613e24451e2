"""The level + needle-target pipeline written as a research lab would:
Python, NumPy and onnxruntime, one frame at a time. It exists to be measured
beside `spine-edge bench` on the same frames (scripts/compare-reference);
it is not a product and does none of the service's safety logic (no level
tracking, no confidence gating, no overlay).

Per frame, like the service: read a gray 640x480 frame from the Y4M file,
crop the image region (x 140..500, y 60..420, the phantoms' region), box-
filter it to 128x128 (the training contract, models/training/preprocess.py),
scale to [0, 1]; run the level model (softmax over its logits) and the
target model (soft-argmax of the target and needle-tip heatmaps, sigmoid of
the plane and needle logits, millimetres from the frame's pixel spacing);
write one JSON line. Latency is measured from the frame's bytes in memory to
its JSON line written, like the service's end-to-end figure, with frames
arriving at --fps (60, as `spine-edge bench`'s latency run; 0: as fast as
they go).

    python pipeline.py --frames FRAMES.y4m --models models --out results.jsonl
      [--quantization fp32|int8] [--threads 1]

Prints p50/p99 end-to-end ms, frames/s and peak RSS (MiB).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort

RX, RY, RW, RH = 140, 60, 360, 360
N = 128
MM_PER_PX = 0.125  # the board's [probe] calibration for sources without spacing (x86-dev.toml)


def box_bounds(S: int, n: int = N):
    o = np.arange(n)
    s0 = (o * S) // n
    s1 = np.maximum(s0 + 1, ((o + 1) * S) // n)
    return s0, s1


S0Y, S1Y = box_bounds(RH)
S0X, S1X = box_bounds(RW)
AREA = ((S1Y - S0Y)[:, None] * (S1X - S0X)[None, :]).astype(np.float32)


def preprocess(frame: np.ndarray) -> np.ndarray:
    region = frame[RY:RY + RH, RX:RX + RW]
    sums = np.add.reduceat(np.add.reduceat(region.astype(np.int32), S0Y, axis=0), S0X, axis=1)
    return (sums / AREA / 255.0).astype(np.float32)[None, None]


def softargmax(logits: np.ndarray):
    h = logits.reshape(logits.shape[-2], logits.shape[-1]).astype(np.float64)
    p = np.exp(h - h.max())
    p /= p.sum()
    stride = N // h.shape[0]
    centres = stride * np.arange(h.shape[0]) + (stride - 1) / 2
    y = float((p.sum(axis=1) * centres).sum())
    x = float((p.sum(axis=0) * centres).sum())
    # model-input px -> frame px
    return RX + (x + 0.5) * RW / N - 0.5, RY + (y + 0.5) * RH / N - 0.5


def sigmoid(v) -> float:
    return float(1.0 / (1.0 + np.exp(-float(np.asarray(v).ravel()[0]))))


def read_y4m(path: str):
    """Yields (index, 640x480 uint8 frame) from a mono or 4:2:0 Y4M file."""
    with open(path, "rb") as f:
        header = f.readline().split()
        w = int(next(t for t in header if t.startswith(b"W"))[1:])
        h = int(next(t for t in header if t.startswith(b"H"))[1:])
        mono = any(t.startswith(b"Cmono") for t in header)
        chroma = 0 if mono else 2 * ((w + 1) // 2) * ((h + 1) // 2)
        i = 0
        while True:
            line = f.readline()
            if not line:
                return
            y = f.read(w * h)
            if len(y) < w * h:
                return
            f.read(chroma)
            yield i, np.frombuffer(y, np.uint8).reshape(h, w)
            i += 1


def session(path: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", required=True)
    ap.add_argument("--models", default="models")
    ap.add_argument("--out", required=True)
    ap.add_argument("--quantization", default="fp32", choices=["fp32", "int8"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fps", type=float, default=60.0)
    a = ap.parse_args()
    level = session(f"{a.models}/level_{a.quantization}.onnx", a.threads)
    target = session(f"{a.models}/target_{a.quantization}.onnx", a.threads)
    level_in = level.get_inputs()[0].name
    target_in = target.get_inputs()[0].name
    target_out = [o.name for o in target.get_outputs()]
    lat_ms = []
    t_start = time.perf_counter()
    with open(a.out, "w") as out:
        for i, frame in read_y4m(a.frames):
            if a.fps > 0:  # the frame arrives at its time, like a live source
                due = t_start + i / a.fps
                while time.perf_counter() < due:
                    time.sleep(max(0.0, min(0.002, due - time.perf_counter())))
            t0 = time.perf_counter()
            x = preprocess(frame)
            logits = level.run(None, {level_in: x})[0].ravel()
            p = np.exp(logits - logits.max())
            p /= p.sum()
            outs = dict(zip(target_out, target.run(None, {target_in: x})))
            tx, ty = softargmax(outs["heatmap"])
            nx, ny = softargmax(outs["needle_tip"])
            rec = {
                "frame": i,
                "level_probs": [round(float(v), 4) for v in p],
                "level_class": int(p.argmax()),
                "plane": round(sigmoid(outs["plane"]), 4),
                "target_px": [round(tx, 2), round(ty, 2)],
                "target_depth_mm": round((ty - RY) * MM_PER_PX, 2),
                "needle": round(sigmoid(outs["needle"]), 4),
                "needle_tip_px": [round(nx, 2), round(ny, 2)],
            }
            out.write(json.dumps(rec) + "\n")
            lat_ms.append((time.perf_counter() - t0) * 1e3)
    wall = time.perf_counter() - t_start
    lat = np.sort(np.array(lat_ms))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pace = f"at {a.fps:.0f} frames/s" if a.fps > 0 else "as fast as possible"
    print(f"reference (Python + onnxruntime {ort.__version__}, {a.quantization}, {a.threads} thread, {pace}): "
          f"{len(lat)} frames, end-to-end p50 {np.percentile(lat, 50):.3f} ms, p99 {np.percentile(lat, 99):.3f} ms, "
          f"{len(lat) / wall:.0f} frames/s processed, peak RSS {rss_mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
