#!/usr/bin/env bash
# Kernel-driver tests (issue 4, (a)-(g)): builds spine-edge and the tests/vm_hw.rs test
# binary, stages the VM board, level model and demo sweep, boots the VM (vm/run.sh) and
# runs the vm_* tests inside it. Exit code = the tests' (0 all passed; 124 timeout,
# 125 VM failure). Prints the VM-RESULT lines (figures per test) and wall times at the end.
#
#   vm/test.sh [--release] [TEST-FILTER...]   e.g. vm/test.sh vm_d vm_e
#
# Default: the debug profile with our crate at opt-level 2 (dependencies are opt-level 3
# there already), so only spine-edge itself is recompiled; --release uses dev-release.
#
# Env: CARGO_TARGET_DIR as usual; SPINE_VM_TIMEOUT (default 600 s); SPINE_VM_CYCLES
# (unplug/replug cycles in (e), default 10); SPINE_VM_SWEEP_FPS (writer rate in (a) and (c),
# default 4: below the VM's ~5 frames/s pipeline throughput, so no frame is dropped);
# SPINE_VM_CPU (qemu -cpu, default Nehalem, see below).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
profile_args=()
profile_dir=debug
filters=()
for a in "$@"; do
  case "$a" in
    --release) profile_args=(--profile dev-release); profile_dir=dev-release ;;
    *) filters+=("$a") ;;
  esac
done
[ ${#filters[@]} -gt 0 ] || filters=(vm_)
# The debug profile's dependencies are already optimised (Cargo.toml); our own crate at
# opt-level 2 makes the pipeline fast enough for real time under TCG without a release build.
export CARGO_PROFILE_DEV_OPT_LEVEL=${CARGO_PROFILE_DEV_OPT_LEVEL:-2}
# TCG emulates AVX/AVX2/FMA (what -cpu max offers, and tract then uses) far more slowly than
# SSE4: measured in the VM, level inference 266 ms (max) vs 61 ms (Nehalem) a frame, pipeline
# throughput 1.1 vs 5.3 frames/s. The kernel interfaces under test are the same.
export SPINE_VM_CPU=${SPINE_VM_CPU:-Nehalem}
t_start=$(date +%s.%N)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}

echo "[vm-test] building spine-edge and the VM test binary (${profile_dir})"
cargo build "${profile_args[@]}" --bin spine-edge
test_bin=$(cargo test "${profile_args[@]}" --no-run --test vm_hw --message-format=json \
  | python3 -c 'import json,sys
for l in sys.stdin:
    try: m=json.loads(l)
    except Exception: continue
    if m.get("executable") and m.get("profile",{}).get("test"): print(m["executable"])' | tail -1)
[ -x "$test_bin" ] || { echo "[vm-test] could not find the vm_hw test binary" >&2; exit 1; }
t_built=$(date +%s.%N)

stage=$(mktemp -d /tmp/spine-vm-test.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/spinedata/boards" "$stage/spinedata/models" "$stage/spinedata/demo"
cp "$here/data/board-vm.toml" "$stage/spinedata/boards/vm.toml"
cp "$repo"/models/level_fp32.toml "$repo"/models/level_fp32.onnx "$stage/spinedata/models/"
cp "$repo"/demo/sagittal_sweep.dcm "$repo"/demo/sagittal_sweep.truth.json "$stage/spinedata/demo/"
cp "$target/$profile_dir/spine-edge" "$stage/spine-edge"
cp "$test_bin" "$stage/vm_hw"

log="$stage/vm.log"
set +e
"$here/run.sh" --timeout "${SPINE_VM_TIMEOUT:-600}" --strip --env RUST_BACKTRACE=1 \
  --env "SPINE_VM_CYCLES=${SPINE_VM_CYCLES:-10}" --env "SPINE_VM_SWEEP_FPS=${SPINE_VM_SWEEP_FPS:-4}" \
  --files "$stage/spine-edge" "$stage/vm_hw" "$stage/spinedata" \
  -- /vm_hw --include-ignored --test-threads=1 --nocapture "${filters[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
t_end=$(date +%s.%N)
echo "================ vm/test.sh summary ================"
grep -a 'VM-RESULT' "$log" | sed 's/^.*VM-RESULT/VM-RESULT/' || true
grep -aE '^test vm_|test result:' "$log" || true
python3 - "$t_start" "$t_built" "$t_end" <<'PY'
import sys
s, b, e = map(float, sys.argv[1:])
print(f"[vm-test] wall: build {b-s:.1f} s, VM run {e-b:.1f} s, total {e-s:.1f} s")
PY
echo "[vm-test] exit code $rc"
exit "$rc"
