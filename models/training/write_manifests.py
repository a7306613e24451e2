"""Write models/level_fp32.toml, models/level_int8.toml and the metrics section of models/level.md.

    python write_manifests.py [--work DIR]

Reads the ONNX files (sha256), the training log (--work/train_log.json) and
models/training/metrics_level.json (eval_level.py). In level.md only the
text between the METRICS:BEGIN / METRICS:END markers is replaced, so prose
added by hand elsewhere in the card survives a re-run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
sys.path.insert(0, str(HERE))

from phantom_sagittal import CLASSES  # noqa: E402

TOML = """[model]
name = "{name}"
task = "level"
file = "{file}"
sha256 = "{sha}"
quantization = "{quant}"
card = "level.md"

[input]
name = "image"
shape = [1, 1, 128, 128]
layout = "NCHW"
color = "gray"
resize = "box"
mean = 0.0
std = 1.0

[output]
name = "logits"
shape = [1, 4]
kind = "logits"
labels = ["sacrum", "lamina", "interspace", "off_spine"]

[training]
data = "{data}"
method = "{method}"
validated_on_patients = false

[metrics]
heldout_frame_accuracy = {acc:.4f}
heldout_description = "{desc}"
"""


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def confusion_md(cm):
    head = "| true \\ predicted | " + " | ".join(CLASSES) + " |\n|---|" + "---|" * len(CLASSES) + "\n"
    return head + "".join(f"| {CLASSES[i]} | " + " | ".join(str(v) for v in row) + " |\n" for i, row in enumerate(cm))


def metrics_md(m, tlog):
    R = m["results"]
    out = [f"Held-out sweeps: seeds {m['heldout_seeds']} ({m['sweeps']} sweeps, "
           f"{R['fp32_lossless']['frames']} frames; never used for training, validation or calibration). "
           f"Every frame of each sweep, rendered exactly as `gen_sweeps.py` writes it; \"jpeg\" = the same "
           f"640x480 screen JPEG-compressed at quality {m['jpeg_quality']} (the demo DICOM's quality). "
           f"onnxruntime 1 thread, CPU.", "",
           "| model | input | frame accuracy | sacrum | lamina | interspace | off_spine | "
           "> 1 mm from a boundary | <= 1 mm from a boundary |",
           "|---|---|---|---|---|---|---|---|---|"]
    for k, r in R.items():
        mdl, inp = k.split("_")
        pc = r["per_class_accuracy"]
        out.append(f"| {mdl} | {inp} | **{pct(r['accuracy'])}** | " + " | ".join(pct(pc[c]) for c in CLASSES)
                   + f" | {pct(r['accuracy_far_from_boundary_gt_1mm'])} | {pct(r['accuracy_near_boundary_le_1mm'])}"
                   f" ({r['frames_near_boundary_le_1mm']} frames) |")
    out += ["", "Per-class numbers are recall (share of that class's frames classified correctly). "
            "Errors within one frame of a true class transition: "
            + ", ".join(f"{k} {r['errors_within_1_frame_of_a_true_transition']}/{r['errors']}" for k, r in R.items())
            + ".", ""]
    for k in ("fp32_lossless", "int8_lossless", "fp32_jpeg", "int8_jpeg"):
        out += [f"Confusion matrix, {k.replace('_', ', ')} (rows true, columns predicted):", "",
                confusion_md(R[k]["confusion_rows_true_cols_pred"])]
    out.append(f"fp32 and int8 agree on {pct(m['fp32_int8_agreement_lossless'])} of lossless held-out frames "
               f"(largest logit difference {m['max_abs_logit_diff_fp32_int8']:.3f}).")
    if "demo_dicom" in m:
        d = m["demo_dicom"]
        out += ["", f"Bundled demo `demo/sagittal_sweep.dcm` ({d['fp32']['frames']} JPEG frames, decoded from the "
                f"DICOM): fp32 {pct(d['fp32']['accuracy'])}, int8 {pct(d['int8']['accuracy'])} "
                f"(wrong frames: fp32 {d['fp32']['errors_at']}, int8 {d['int8']['errors_at']})."]
    lat = m["onnxruntime_latency_ms_1thread"]
    out += ["", f"Latency (onnxruntime {ort_version()}, 1 thread, this build machine, median of 500): "
            f"fp32 {lat['fp32']:.3f} ms, int8 {lat['int8']:.3f} ms per frame (model only; preprocessing excluded). "
            "tract timings are measured by the Rust benches.", "",
            f"Training: {tlog['n_train']} samples, {len(tlog['epochs'])} epochs; final validation accuracy "
            f"(seeds {int(tlog['val_seeds'].split(':')[0])}..{int(tlog['val_seeds'].split(':')[1]) - 1}, boundary-oversampled) "
            f"{pct(tlog['epochs'][-1]['val_acc'])}."]
    return "\n".join(out)


def ort_version():
    import onnxruntime
    return onnxruntime.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.environ.get("LEVEL_WORK", "/tmp/spine-edge-level"))
    args = ap.parse_args()
    m = json.loads((HERE / "metrics_level.json").read_text())
    tlog = json.loads((Path(args.work) / "train_log.json").read_text())
    R = m["results"]
    a, b = (int(x) for x in tlog["train_seeds"].split(":"))
    data = (f"synthetic phantom only (models/training/phantom_sagittal.py): {tlog['n_train']} frames sampled from "
            f"{b - a} training sweeps, seeds {a}-{b - 1} (boundary-oversampled, ~40 % JPEG-compressed); "
            f"no patient data")
    method = (f"LevelNet CNN ({tlog['params']} params, patch conv + 4 conv3x3 + spatial 8x8 FC head), "
              f"AdamW one-cycle, {len(tlog['epochs'])} epochs, cross-entropy; BatchNorm folded; exported opset 17")
    for quant, key, qdesc in (("fp32", "fp32", "fp32"), ("int8-qdq", "int8", "int8-qdq")):
        f = MODELS / f"level_{key}.onnx"
        meth = method + ("" if key == "fp32" else
                         "; onnxruntime static QDQ int8 (per-channel weights, reduce_range (7-bit weights), uint8 activations, "
                         "MinMax calibration on 300 training frames)")
        r, rj = R[f"{key}_lossless"], R[f"{key}_jpeg"]
        desc = (f"held-out phantom seeds {m['heldout_seeds']}: {m['sweeps']} sweeps, {r['frames']} frames, "
                f"lossless; same frames JPEG q{m['jpeg_quality']}: {rj['accuracy']:.4f}")
        text = TOML.format(name=f"level-sagittal-{key}", file=f.name, sha=sha256(f), quant=qdesc,
                           data=data, method=meth, acc=r["accuracy"], desc=desc)
        tomllib.loads(text)  # must parse
        (MODELS / f"level_{key}.toml").write_text(text)
        print("wrote", MODELS / f"level_{key}.toml")
    card = MODELS / "level.md"
    body = metrics_md(m, tlog)
    txt = card.read_text()
    pat = re.compile(r"(<!-- METRICS:BEGIN[^>]*-->\n).*?(<!-- METRICS:END -->)", re.S)
    assert pat.search(txt), "level.md lacks the METRICS markers"
    card.write_text(pat.sub(lambda mm: mm.group(1) + body + "\n" + mm.group(2), txt))
    print("updated", card)


if __name__ == "__main__":
    main()
