#!/bin/sh
# /init of the spine-edge test VM (busybox ash). Packed into the initramfs by vm/lib.sh.
# Mounts the usual filesystems, loads the test drivers, creates the gpio-sim chip, runs
# /spine/cmd.sh (written by vm/run.sh), prints SPINE_VM_EXIT=<code> and powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

say() { echo "SPINE_VM: $*"; }
ERRORS=0
err() { echo "SPINE_VM_ERROR: $*"; ERRORS=$((ERRORS + 1)); }
die_vm() { err "$*"; echo "SPINE_VM_SETUP_FAILED"; poweroff -f; echo o > /proc/sysrq-trigger; sleep 10; }

# Defaults; run.sh overrides them in run.conf.
VIVID_ARGS="n_devs=1 node_types=0x1"
LOOP_ARGS="devices=1 exclusive_caps=0 video_nr=10 card_label=spine-loop"
VFB_ARGS="vfb_enable=1 mode_option=640x480-32 videomemorysize=1228800"
GPIO_SIM_NAME=spine
GPIO_NUM_LINES=8
GPIO_LINE_NAMES="guidance on_target fault"
GPIO_LABEL=spine-gpio-sim
IGNORE_SETUP_ERRORS=0
[ -f /etc/spine-vm/run.conf ] && . /etc/spine-vm/run.conf

KVER=$(uname -r)
say "kernel $KVER up at $(cut -d' ' -f1 /proc/uptime)s"

# ---- modules (dependencies first, see modules.load) ----
while read -r name rel; do
    case $name in
        vivid) args=$VIVID_ARGS ;;
        v4l2loopback) args=$LOOP_ARGS ;;
        vfb) args=$VFB_ARGS ;;
        *) args= ;;
    esac
    # shellcheck disable=SC2086  # args are split on purpose (no spaces inside values)
    insmod "/lib/modules/$KVER/$rel" $args || err "insmod $name $args failed"
done < /etc/spine-vm/modules.load
grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs configfs /sys/kernel/config || err "configfs mount"

# fbcon grabs the first framebuffer and would draw the text console (and a blinking
# cursor) into our vfb: unbind it so fb0 holds only what tests write.
for vt in /sys/class/vtconsole/vtcon*; do
    [ -f "$vt/name" ] && grep -q 'frame buffer' "$vt/name" && echo 0 > "$vt/bind"
done

# ---- gpio-sim chip through configfs ----
G=/sys/kernel/config/gpio-sim/$GPIO_SIM_NAME
if [ -d /sys/kernel/config/gpio-sim ]; then
    mkdir "$G" "$G/bank0" &&
    echo "$GPIO_NUM_LINES" > "$G/bank0/num_lines" &&
    echo "$GPIO_LABEL" > "$G/bank0/label" || err "gpio-sim configfs setup"
    i=0
    for n in $GPIO_LINE_NAMES; do
        mkdir "$G/bank0/line$i" && echo "$n" > "$G/bank0/line$i/name" || err "gpio-sim line$i name"
        i=$((i + 1))
    done
    echo 1 > "$G/live" || err "gpio-sim live"
    GPIO_CHIP=$(cat "$G/bank0/chip_name" 2>/dev/null)
    GPIO_DEV=$(cat "$G/dev_name" 2>/dev/null)
    [ -c "/dev/$GPIO_CHIP" ] || err "gpio-sim: /dev/$GPIO_CHIP missing"
    export SPINE_GPIO_CHIP=/dev/$GPIO_CHIP
    export SPINE_GPIO_SIM_SYSFS=/sys/devices/platform/$GPIO_DEV/$GPIO_CHIP
else
    err "gpio-sim not available (/sys/kernel/config/gpio-sim missing)"
fi

# ---- find the device nodes by driver name ----
for d in /sys/class/video4linux/*; do
    [ -f "$d/name" ] || continue
    case $(cat "$d/name") in
        vivid-000-vid-cap) export SPINE_VIVID_DEV=/dev/${d##*/} ;;
        spine-loop*) export SPINE_LOOP_DEV=/dev/${d##*/} ;;
    esac
done
for d in /sys/class/graphics/fb*; do
    [ "$(cat "$d/name" 2>/dev/null)" = "Virtual FB" ] && export SPINE_FB_DEV=/dev/${d##*/}
done
[ -n "${SPINE_VIVID_DEV:-}" ] || err "vivid capture device not found"
[ -n "${SPINE_LOOP_DEV:-}" ] || err "v4l2loopback device not found"
[ -n "${SPINE_FB_DEV:-}" ] || err "vfb framebuffer not found"
export SPINE_VM=1
env | grep '^SPINE_' | sort > /run/spine-vm.env
say "devices: $(tr '\n' ' ' < /run/spine-vm.env)"

if [ "$ERRORS" -gt 0 ] && [ "$IGNORE_SETUP_ERRORS" != 1 ]; then
    die_vm "$ERRORS setup error(s); not running the command (run.sh --keep-going to run anyway)"
fi

[ -f /spine/cmd.sh ] || die_vm "/spine/cmd.sh missing: initramfs incomplete (too big for guest memory? run.sh --mem/--strip)"

# ---- the command ----
say "running command at $(cut -d' ' -f1 /proc/uptime)s"
cd /
sh /spine/cmd.sh
rc=$?
say "command finished at $(cut -d' ' -f1 /proc/uptime)s"
echo; echo "SPINE_VM_EXIT=$rc"
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 10
