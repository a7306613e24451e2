#!/usr/bin/env bash
# vm/selftest.sh — prove the harness: boots the VM and checks vivid, v4l2loopback, vfb and
# gpio-sim with busybox plus a small dynamically linked C probe (selftest/spine-vm-probe.c).
# Exits non-zero if any check fails. Extra arguments go to run.sh (e.g. --quiet).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T0=$(now)
command -v gcc >/dev/null || apt_install gcc libc6-dev
mkdir -p "$CACHE/selftest"
PROBE=$CACHE/selftest/spine-vm-probe
SRC=$VM_DIR/selftest/spine-vm-probe.c
if [ ! -x "$PROBE" ] || [ "$SRC" -nt "$PROBE" ]; then
    gcc -O2 -Wall -Wextra -o "$PROBE" "$SRC"
fi
set +e
"$VM_DIR/run.sh" --timeout "${SPINE_VM_TIMEOUT:-240}" "$@" \
    --files "$VM_DIR/selftest/guest.sh" "$PROBE" -- sh /guest.sh
rc=$?
set -e
if [ "$rc" = 0 ]; then log "SELFTEST PASSED, wall time $(elapsed "$T0") s"
else log "SELFTEST FAILED (exit $rc), wall time $(elapsed "$T0") s"; fi
exit "$rc"
