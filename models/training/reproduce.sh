#!/usr/bin/env bash
# Reproduce the level-identification models, their manifests and card metrics, and the demo.
#
#   VENV=/path/to/venv models/training/reproduce.sh
#
# VENV (default /work/venv) is created if missing and given requirements.txt
# if any pinned package is missing or at another version. LEVEL_WORK (default
# /tmp/spine-edge-level) holds the sampled training set, checkpoint and log;
# it is cleared first unless KEEP_CACHE=1. Everything is seeded: a re-run
# gives byte-identical ONNX files, manifests and demo.
#
# Writes: models/level_fp32.onnx, models/level_int8.onnx, models/level_{fp32,int8}.toml,
# the metrics section of models/level.md, models/training/metrics_level.json,
# demo/sagittal_sweep.dcm, demo/sagittal_sweep.truth.json.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-/work/venv}"
export LEVEL_WORK="${LEVEL_WORK:-/tmp/spine-edge-level}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
if ! "$PY" - "$HERE/requirements.txt" <<'CHECK'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != want:
        bad.append(f"{name} {have} != {want}")
if bad:
    print("missing/mismatched:", "; ".join(bad))
    sys.exit(1)
CHECK
then
    "$VENV/bin/pip" install -r "$HERE/requirements.txt"
fi

if [ "${KEEP_CACHE:-0}" != "1" ]; then
    rm -rf "$LEVEL_WORK"
fi
mkdir -p "$LEVEL_WORK"
cd "$HERE"
start=$(date +%s)
"$PY" train_level.py            # phantom training set (seeds 0-199) -> models/level_fp32.onnx
"$PY" quantize.py               # -> models/level_int8.onnx (QDQ, calibrated on training frames)
"$PY" make_demo.py              # -> demo/sagittal_sweep.dcm + .truth.json
"$PY" eval_level.py             # held-out seeds 100000-100019 + demo -> metrics_level.json
"$PY" write_manifests.py        # -> models/level_{fp32,int8}.toml, metrics in models/level.md
if command -v dciodvfy >/dev/null; then
    if dciodvfy "$HERE/../../demo/sagittal_sweep.dcm" 2>&1 | grep '^Error'; then
        echo "dciodvfy reports errors in demo/sagittal_sweep.dcm" >&2
        exit 1
    fi
fi
echo "reproduce.sh: done in $(( $(date +%s) - start )) s"
