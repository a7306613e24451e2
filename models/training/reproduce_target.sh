#!/usr/bin/env bash
# Reproduces the needle-target model from nothing but the phantom:
# training data -> training -> fp32/int8 ONNX -> held-out evaluation ->
# manifests. Deterministic (seeded; one torch thread).
#
#   VENV=/work/venv models/training/reproduce_target.sh
#
# Env: VENV (required: a venv with torch, numpy, scipy, onnx, onnxruntime,
# onnxscript), WORK (scratch, default /tmp/spine-edge-target), WORKERS (phantom
# rendering processes, default 2), HELDOUT (held-out frames, default 2000),
# OUT (where the artefacts go, default models/).
# SPINE_EDGE (optional: a built spine-edge binary; then the needle figures
# are measured through the Rust service and written into the manifests).
# Writes $OUT/target_fp32.onnx, target_int8.onnx (target + needle networks in
# one graph), target_fp32.toml, target_int8.toml, target.md; the held-out
# metrics JSON stays in $WORK.
set -euo pipefail
: "${VENV:?set VENV to the python venv}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODELS="${OUT:-$(cd "$HERE/.." && pwd)}"
mkdir -p "$MODELS"
MODELS="$(cd "$MODELS" && pwd)"
WORK="${WORK:-/tmp/spine-edge-target}"
WORKERS="${WORKERS:-2}"
HELDOUT="${HELDOUT:-2000}"
PY="$VENV/bin/python"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
mkdir -p "$WORK"
cd "$HERE"
start=$(date +%s)

echo "== phantom training data (train seeds 0-11999, validation seeds 50000-50599)"
"$PY" -c "
import transverse_data as D
D.build('$WORK/cache/val', 50000, 600, workers=$WORKERS)
D.build('$WORK/cache/train', 0, 12000, workers=$WORKERS)
"
echo "== train"
"$PY" train_target.py --cache "$WORK/cache" --out "$WORK/ckpt.pt" --size 128 --epochs 5
echo "== export fp32 + int8"
"$PY" export_target.py onnx --ckpt "$WORK/ckpt.pt" --cache "$WORK/cache" --outdir "$MODELS"
echo "== needle network: data (needle-heavy seeds 0-13999, hard-case seeds 0-4999, validation seeds 60000-62399), train, fine-tune, merge into the target graph"
"$PY" needle_data.py "$WORK/needle_cache" 14000 "$WORKERS"
"$PY" train_needle.py --cache "$WORK/needle_cache" --out "$WORK/needle6.pt" --size 128 --epochs "${NEEDLE_EPOCHS:-6}"
"$PY" train_needle.py --cache "$WORK/needle_cache" --hard "$WORK/needle_cache/hard" --out "$WORK/needle_ft1.pt" --size 128 \
    --epochs 3 --lr 1e-3 --pct-start 0.1 --init "$WORK/needle6.pt"
"$PY" train_needle.py --cache "$WORK/needle_cache" --hard "$WORK/needle_cache/hard" --out "$WORK/needle.pt" --size 128 \
    --epochs 2 --lr 5e-4 --pct-start 0.1 --init "$WORK/needle_ft1.pt"
"$PY" export_needle.py onnx --ckpt "$WORK/needle.pt" --cache "$WORK/needle_cache" --outdir "$MODELS"
echo "== held-out frames (seeds 100000-$((100000 + HELDOUT - 1)))"
"$PY" gen_transverse.py --seed-start 100000 --count "$HELDOUT" --out "$WORK/heldout"
echo "== evaluate (onnxruntime, 1 thread)"
"$PY" eval_target.py --data "$WORK/heldout" --model "$MODELS/target_fp32.onnx" "$MODELS/target_int8.onnx" \
    --json "$WORK/heldout_metrics.json"
echo "== manifests"
"$PY" export_target.py manifests --ckpt "$WORK/ckpt.pt" --metrics "$WORK/heldout_metrics.json" --outdir "$MODELS"
"$PY" export_needle.py manifests --ckpt "$WORK/needle.pt" --outdir "$MODELS"
if [ -n "${SPINE_EDGE:-}" ]; then
    echo "== needle + target through the Rust service (new seeds 400000+, clips 410000+)"
    "$PY" gen_transverse.py --seed-start 400000 --count "$HELDOUT" --out "$WORK/heldout-rust"
    "$PY" gen_transverse.py --seed-start 410000 --count 20 --sequence --out "$WORK/heldout-rust-seq"
    (cd "$MODELS/.." && "$SPINE_EDGE" eval-target --data "$WORK/heldout-rust" --sequences "$WORK/heldout-rust-seq" \
        --board boards/x86-dev.toml --model "$MODELS/target_fp32.toml" --model "$MODELS/target_int8.toml" \
        --report "$WORK/eval-target.json")
    "$PY" export_needle.py manifests --ckpt "$WORK/needle.pt" --outdir "$MODELS" --report "$WORK/eval-target.json"
fi
echo "done in $(( $(date +%s) - start )) s; metrics: $WORK/heldout_metrics.json"
