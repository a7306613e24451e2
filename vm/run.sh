#!/usr/bin/env bash
# vm/run.sh — boot the test VM (Debian kernel, qemu TCG) and run one command inside it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<'EOF'
usage: vm/run.sh [options] -- COMMAND [ARGS...]

Boots qemu-system-x86_64 (TCG) with a busybox initramfs, loads vivid, v4l2loopback (/dev/video10,
"spine-loop"), vfb (640x480x32) and gpio-sim (8 lines: guidance, on_target, fault), runs COMMAND
as root in / and exits with its exit code.

options:
  --timeout S      kill the VM after S seconds (default $SPINE_VM_TIMEOUT or 300); exit 124
  --files PATH...  copy files/directories into the VM root as /<basename>; shared libraries
                   of ELF executables among them (ldd) are added at their host paths
  --env K=V        export K=V for COMMAND (repeatable)
  --strip          strip debug info from the copied ELF files (smaller initramfs, faster boot)
  --mem MB         guest memory (default $SPINE_VM_MEM, else 512 or 256+3*initrd MiB if larger)
  --log FILE       console log file (default $CACHE/logs/run-*.log, also logs/last.log)
  --quiet          don't stream the console; print its last lines at the end
  --keep-going     run COMMAND even if a driver failed to load
exit codes: COMMAND's code; 124 timeout; 125 boot/setup failure (see log)
env: SPINE_VM_CACHE SPINE_VM_KERNEL SPINE_VM_SMP SPINE_VM_APPEND (extra kernel args)
     SPINE_VM_VIVID_ARGS SPINE_VM_LOOP_ARGS SPINE_VM_VFB_ARGS (module parameters)
     SPINE_VM_GPIO_NUM_LINES SPINE_VM_GPIO_LINE_NAMES (space separated, from line 0)
EOF
}

TIMEOUT=${SPINE_VM_TIMEOUT:-300}
MEM=${SPINE_VM_MEM:-}
SMP=${SPINE_VM_SMP:-2}
FILES=() ENVS=() LOGFILE='' QUIET=0 STRIP=0 KEEP_GOING=0
while [ $# -gt 0 ]; do
    case $1 in
        --timeout) TIMEOUT=$2; shift 2 ;;
        --files) shift; while [ $# -gt 0 ] && [[ $1 != --* ]]; do FILES+=("$1"); shift; done ;;
        --env) [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants K=V, got '$2'" 2
               ENVS+=("$2"); shift 2 ;;
        --strip) STRIP=1; shift ;;
        --mem) MEM=$2; shift 2 ;;
        --log) LOGFILE=$2; shift 2 ;;
        --quiet) QUIET=1; shift ;;
        --keep-going) KEEP_GOING=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) usage >&2; die "unknown option '$1' (the command goes after --)" 2 ;;
    esac
done
[ $# -gt 0 ] || { usage >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || "$VM_DIR/setup.sh"

KVER=$(current_kernel || true)
if [ -z "$KVER" ] || [ ! -f "$(kernel_dir "$KVER")/vmlinuz" ] || [ ! -f "$(kernel_dir "$KVER")/modroot/modules.load" ]; then
    log "cache not ready: running vm/setup.sh"
    "$VM_DIR/setup.sh"
    KVER=$(current_kernel)
fi
KD=$(kernel_dir "$KVER")
build_base_initramfs "$KVER"

mkdir -p "$CACHE/logs" "$CACHE/tmp"
WORK=$(mktemp -d "$CACHE/tmp/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ST=$WORK/root
mkdir -p "$ST/spine" "$ST/etc/spine-vm"

# ---- files and their shared libraries ----
is_elf() { [ "$(od -An -tx1 -N4 "$1" 2>/dev/null | tr -d ' \n')" = 7f454c46 ]; }
for f in ${FILES[@]+"${FILES[@]}"}; do
    [ -e "$f" ] || die "--files: $f does not exist" 2
    cp -rL --preserve=mode,timestamps "$f" "$ST/$(basename "$f")"
done
declare -A LIBS=()
while IFS= read -r -d '' f; do
    is_elf "$f" || continue
    [ "$STRIP" = 1 ] && [ -x "$f" ] && { strip --strip-debug "$f" 2>/dev/null || true; }
    out=$(ldd "$f" 2>/dev/null || true)
    if grep -q 'not found' <<< "$out"; then die "$f: missing shared libraries:
$(grep 'not found' <<< "$out")" 2; fi
    while read -r lib; do [ -n "$lib" ] && LIBS[$lib]=1; done < <(awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' <<< "$out")
done < <(find "$ST" -type f -print0)
for lib in "${!LIBS[@]}"; do
    [ -e "$ST$lib" ] && continue
    mkdir -p "$ST$(dirname "$lib")"
    cp -L "$lib" "$ST$lib"
done

# ---- guest configuration and the command ----
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
    [ -n "${SPINE_VM_VIVID_ARGS:-}" ] && echo "VIVID_ARGS=$(q "$SPINE_VM_VIVID_ARGS")"
    [ -n "${SPINE_VM_LOOP_ARGS:-}" ] && echo "LOOP_ARGS=$(q "$SPINE_VM_LOOP_ARGS")"
    [ -n "${SPINE_VM_VFB_ARGS:-}" ] && echo "VFB_ARGS=$(q "$SPINE_VM_VFB_ARGS")"
    [ -n "${SPINE_VM_GPIO_NUM_LINES:-}" ] && echo "GPIO_NUM_LINES=$(q "$SPINE_VM_GPIO_NUM_LINES")"
    [ -n "${SPINE_VM_GPIO_LINE_NAMES:-}" ] && echo "GPIO_LINE_NAMES=$(q "$SPINE_VM_GPIO_LINE_NAMES")"
    echo "IGNORE_SETUP_ERRORS=$KEEP_GOING"
} > "$ST/etc/spine-vm/run.conf"
{
    for e in ${ENVS[@]+"${ENVS[@]}"}; do echo "export $(q "$e")"; done
    printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} > "$ST/spine/cmd.sh"

(cd "$ST" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$WORK/overlay.cpio"
cat "$KD/base.cpio.gz" "$WORK/overlay.cpio" > "$WORK/initrd.img"
rm -rf "$ST" "$WORK/overlay.cpio"
INITRD_MB=$(( $(stat -c %s "$WORK/initrd.img") / 1048576 ))
# The initrd and its unpacked copy are both in guest RAM while booting: 512 MiB fails with a
# 150 MiB initrd. Grow the default memory with the initrd unless --mem/SPINE_VM_MEM is given.
if [ -z "$MEM" ]; then
    MEM=512
    if [ $(( 256 + 3 * INITRD_MB )) -gt "$MEM" ]; then
        MEM=$(( 256 + 3 * INITRD_MB ))
        log "initrd is ${INITRD_MB} MiB: using -m ${MEM} (set --mem, or --strip debug info)"
    fi
fi

# ---- boot ----
[ -n "$LOGFILE" ] || LOGFILE=$CACHE/logs/run-$(date +%Y%m%d-%H%M%S)-$$.log
mkdir -p "$(dirname "$LOGFILE")"
ln -sfn "$(realpath "$LOGFILE")" "$CACHE/logs/last.log"
QEMU=(qemu-system-x86_64 -machine q35,accel=tcg -cpu "${SPINE_VM_CPU:-max}" -m "$MEM" -smp "$SMP"
      -nographic -no-reboot -vga none -nic none
      -kernel "$KD/vmlinuz" -initrd "$WORK/initrd.img"
      -append "console=ttyS0 quiet panic=-1 ${SPINE_VM_APPEND:-}")
log "booting $KVER (initrd ${INITRD_MB} MiB, timeout ${TIMEOUT}s): $*"
CLEAN='s/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g'   # CRs and SeaBIOS terminal escapes
T0=$(now)
set +e
if [ "$QUIET" = 1 ]; then
    timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 | sed -u "$CLEAN" > "$LOGFILE"
else
    timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 | sed -u "$CLEAN" | tee "$LOGFILE"
fi
QRC=${PIPESTATUS[0]}
set -e
WALL=$(elapsed "$T0")

[ "$QUIET" = 1 ] && { echo "----- last lines of $LOGFILE -----"; tail -n "${SPINE_VM_TAIL:-40}" "$LOGFILE"; echo "-----"; }
CODE=$(grep -a -E '^SPINE_VM_EXIT=[0-9]+$' "$LOGFILE" | tail -1 | cut -d= -f2 || true)
START=$(grep -a -o 'running command at [0-9.]*s' "$LOGFILE" | tail -1 | awk '{print $4}' || true)
SUMMARY="wall ${WALL}s (boot+run; command started at guest uptime ${START:-?}), log $LOGFILE"
if [ -n "$CODE" ]; then
    log "command exit code $CODE; $SUMMARY"
    exit "$CODE"
fi
grep -a '^SPINE_VM_ERROR' "$LOGFILE" >&2 || true
grep -aq 'Initramfs unpacking failed' "$LOGFILE" &&
    log "the kernel could not unpack the initramfs (${INITRD_MB} MiB into -m ${MEM}): use --mem or --strip"
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    log "TIMEOUT: VM killed after ${TIMEOUT}s without finishing; $SUMMARY"
    exit 124
fi
if grep -aq '^SPINE_VM_SETUP_FAILED' "$LOGFILE"; then
    log "SETUP FAILED inside the VM (see SPINE_VM_ERROR above); $SUMMARY"
else
    log "BOOT FAILURE: VM exited (qemu rc $QRC) without SPINE_VM_EXIT marker; $SUMMARY"
fi
exit 125
