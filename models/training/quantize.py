"""Static int8 QDQ quantization of models/level_fp32.onnx -> models/level_int8.onnx.

    python quantize.py [--calib-seeds 0:30] [--per-sweep 10]

Calibration: frames of TRAINING sweeps only (seeds < 100000), ~10 per sweep,
a third of them JPEG-compressed like the training data. onnxruntime
quant_pre_process (skip_symbolic_shape=True), then quantize_static with QDQ
format, int8 weights (per channel, reduce_range: 7-bit), uint8 activations,
MinMax calibration.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import jpeg_roundtrip  # noqa: E402
from phantom_sagittal import HELDOUT_SEED_MIN, Sweep  # noqa: E402
from preprocess import preprocess  # noqa: E402


def calibration_inputs(seeds, per_sweep):
    xs = []
    for seed in seeds:
        assert seed < HELDOUT_SEED_MIN
        sw = Sweep(seed)
        rng = np.random.default_rng([seed, 4242])
        for i in np.sort(rng.choice(len(sw), size=min(per_sweep, len(sw)), replace=False)):
            scr = sw.frame(int(i))
            if rng.random() < 0.33:
                scr = jpeg_roundtrip(scr, int(rng.integers(50, 96)))
            xs.append(preprocess(scr))
    return xs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fp32", default=str(HERE.parent / "level_fp32.onnx"))
    ap.add_argument("--out", default=str(HERE.parent / "level_int8.onnx"))
    ap.add_argument("--calib-seeds", default="0:30")
    ap.add_argument("--per-sweep", type=int, default=10)
    args = ap.parse_args()

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    a, b = (int(x) for x in args.calib_seeds.split(":"))
    xs = calibration_inputs(range(a, b), args.per_sweep)
    print(f"calibrating on {len(xs)} training frames (seeds {a}..{b - 1})", flush=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(xs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(args.fp32, str(pre), skip_symbolic_shape=True)
        # reduce_range=True: 7-bit weights. On x86 without VNNI (AVX2, AVX-512 without VNNI), ONNX Runtime's
        # CPU provider runs QDQ convolutions as u8 x s8 with pairwise sums in 16 bits, which saturate with
        # full 8-bit weights: ORT's int8 then lands 0.81 logit from fp32 while tract's int8 (dequantized,
        # float) stays within 0.14, and backend = "auto" could not use ORT for it. ORT's quantization docs
        # recommend reduce_range on such CPUs. With 7-bit weights ORT and tract agree.
        quantize_static(str(pre), args.out, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
    m = onnx.load(args.out)
    del m.graph.value_info[:]
    m.doc_string = "spine-edge level classifier, int8 QDQ (onnxruntime static quantization)"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, args.out)
    ops = sorted({n.op_type for n in m.graph.node})
    print("wrote", args.out, "ops:", ", ".join(ops))


if __name__ == "__main__":
    main()
