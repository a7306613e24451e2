#!/bin/sh
# Runs inside the VM (busybox sh), started by vm/selftest.sh. Exits non-zero if a check fails.
# Uses the SPINE_* variables exported by /init (see /run/spine-vm.env).
FAIL=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; FAIL=$((FAIL + 1)); }
check() { # check DESCRIPTION COMMAND...
    d=$1; shift
    if "$@"; then ok "$d"; else bad "$d"; fi
}
PROBE=/spine-vm-probe

echo "== environment"
cat /run/spine-vm.env
echo "modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"

echo "== V4L2 devices (/sys/class/video4linux/*/name)"
for d in /sys/class/video4linux/*; do echo "  ${d##*/}: $(cat "$d/name")"; done
check "vivid capture node $SPINE_VIVID_DEV" test -c "${SPINE_VIVID_DEV:-/nonexistent}"
check "loopback node /dev/video10 is spine-loop" grep -qx spine-loop /sys/class/video4linux/video10/name
check "loopback char device /dev/video10" test -c /dev/video10

echo "== vivid capture via read()"
t0=$(cut -d' ' -f1 /proc/uptime)
timeout 60 dd if="$SPINE_VIVID_DEV" of=/tmp/vivid.raw bs=8M count=3 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
sz=$(stat -c %s /tmp/vivid.raw 2>/dev/null || echo 0)
nz=$(tr -d '\000' < /tmp/vivid.raw | wc -c)
echo "  3 reads: $sz bytes in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s, $nz non-zero bytes"
check "vivid delivered frames with content" test "$sz" -gt 0 -a "$nz" -gt 0

echo "== framebuffer"
FB=${SPINE_FB_DEV:-/dev/fb0}; S=/sys/class/graphics/${FB##*/}
echo "  $FB: name='$(cat "$S/name")' virtual_size=$(cat "$S/virtual_size") bpp=$(cat "$S/bits_per_pixel") stride=$(cat "$S/stride") mode=$(cat "$S/modes" 2>/dev/null | head -1)"
check "fb char device $FB" test -c "$FB"
check "fb name 'Virtual FB'" test "$(cat "$S/name")" = "Virtual FB"
check "fb virtual_size 640,480" test "$(cat "$S/virtual_size")" = "640,480"
check "fb bits_per_pixel 32" test "$(cat "$S/bits_per_pixel")" = 32
check "fb stride 2560" test "$(cat "$S/stride")" = 2560
dd if=/dev/urandom of=/tmp/fb.pat bs=2560 count=480 2>/dev/null
dd if=/tmp/fb.pat of="$FB" bs=2560 count=480 2>/dev/null
sleep 1   # would catch a console/cursor drawing into the fb
dd if="$FB" of=/tmp/fb.back bs=2560 count=480 2>/dev/null
check "fb write/read-back of 640x480x4 bytes identical" cmp -s /tmp/fb.pat /tmp/fb.back

echo "== gpio-sim"
CFG=/sys/kernel/config/gpio-sim/spine
CHIP=$(cat $CFG/bank0/chip_name); DEV=$(cat $CFG/dev_name); SIM=$SPINE_GPIO_SIM_SYSFS
echo "  configfs: dev_name=$DEV chip_name=$CHIP live=$(cat $CFG/live) label=$(cat $CFG/bank0/label) num_lines=$(cat $CFG/bank0/num_lines)"
check "/dev/$CHIP char device" test -c "/dev/$CHIP"
check "/sys/bus/gpio/devices/$CHIP exists" test -e "/sys/bus/gpio/devices/$CHIP"
check "sim sysfs dir $SIM" test -d "$SIM"
names=
for i in 0 1 2; do names="$names $(cat $CFG/bank0/line$i/name)"; done
check "configfs line names:$names" test "$names" = " guidance on_target fault"
check "8 sim_gpioN entries" test "$(ls -d "$SIM"/sim_gpio* | wc -l)" = 8
echo "  sysfs values: $(for i in 0 1 2 3 4 5 6 7; do printf '%s ' "$(cat "$SIM/sim_gpio$i/value")"; done)(pull: $(cat "$SIM/sim_gpio2/pull"))"
echo pull-up > "$SIM/sim_gpio2/pull"
check "unrequested line 2 follows pull-up (value $(cat "$SIM/sim_gpio2/value"))" test "$(cat "$SIM/sim_gpio2/value")" = 1
echo pull-down > "$SIM/sim_gpio2/pull"
check "unrequested line 2 follows pull-down (value $(cat "$SIM/sim_gpio2/value"))" test "$(cat "$SIM/sim_gpio2/value")" = 0

echo "== GPIO character device (dynamically linked probe: $(ls /lib*/ld-linux* /lib/x86_64-linux-gnu/libc.so.6 2>/dev/null | tr '\n' ' '))"
if "$PROBE" gpio "/dev/$CHIP" "$SIM" guidance on_target fault; then ok "gpio probe"; else bad "gpio probe"; fi

echo "== v4l2loopback write()/read() (probe sets the format, then busybox dd)"
exec 3<>/dev/video10   # keeps the format and buffers after the probe closes its handles
if "$PROBE" loop /dev/video10 640 480 10; then ok "loopback probe"; else bad "loopback probe"; fi
dd if=/dev/urandom of=/tmp/loop.pat bs=307200 count=1 2>/dev/null
# a new reader (more than 2 frames behind) gets the newest frame: write it 3 times, then read
for i in 1 2 3; do dd if=/tmp/loop.pat of=/dev/video10 bs=307200 count=1 2>/dev/null; done
timeout 20 dd if=/dev/video10 of=/tmp/loop.out bs=307200 count=1 2>/dev/null
check "busybox dd: frame written to /dev/video10 reads back identical" cmp -s /tmp/loop.pat /tmp/loop.out
exec 3<&-

echo "== result: $FAIL failure(s)"
[ "$FAIL" = 0 ]
