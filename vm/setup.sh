#!/usr/bin/env bash
# vm/setup.sh — prepare everything vm/run.sh needs to boot a Debian kernel under qemu (TCG)
# with vivid, v4l2loopback, vfb and gpio-sim. Idempotent: cached steps are skipped.
#
# Env: SPINE_VM_CACHE   cache dir (default ~/.cache/spine-edge-vm)
#      SPINE_VM_KERNEL  pin a kernel release, e.g. 6.1.0-56-amd64 (default: discovered via apt)
#      SPINE_VM_EXTRA_MODULES  extra in-tree modules to put in the initramfs (loaded at boot)
#      SPINE_VM_FORCE=1 rebuild everything for the kernel
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T0=$(now)

# ---- host packages -----------------------------------------------------------------------
apt_install qemu-system-x86 busybox-static cpio kmod gzip xz-utils gcc make libc6-dev binutils

KVER=$(discover_kernel) || die "no linux-image/linux-headers pair found in apt (try SPINE_VM_KERNEL=...)"
KD=$(kernel_dir "$KVER")
[ "${SPINE_VM_FORCE:-0}" = 1 ] && rm -rf "$KD"
mkdir -p "$KD" "$CACHE/debs"
log "kernel $KVER (cache $KD)"

# Headers must match the image exactly; they pull linux-kbuild-6.x and the right gcc.
apt_install "linux-headers-$KVER"
HDR=/usr/src/linux-headers-$KVER
[ -f "$HDR/Makefile" ] || die "headers not found in $HDR"
PKGVER=$(dpkg-query -W -f='${Version}' "linux-headers-$KVER")
SERIES=$(echo "$KVER" | cut -d. -f1,2)            # 6.1

# fetch DEB_PKG [VERSION] : download a .deb into the cache (not installed); prints its path.
fetch() {
    local pkg=$1 ver=${2:-} f
    f=$(ls "$CACHE/debs/${pkg}_${ver:+$(echo "$ver" | sed 's/^[0-9]*://')}"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$f" ]; then
        log "apt-get download $pkg${ver:+=$ver}"
        ( cd "$CACHE/debs" && apt-get download -qq "$pkg${ver:+=$ver}" 2>&1 | grep -v 'unsandboxed' >&2 ) || true
        f=$(ls -t "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
        if [ -z "$f" ]; then
            apt_update_once
            ( cd "$CACHE/debs" && apt-get download -qq "$pkg${ver:+=$ver}" 2>&1 | grep -v 'unsandboxed' >&2 ) || true
            f=$(ls -t "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
        fi
    fi
    [ -n "$f" ] || die "could not download $pkg${ver:+=$ver}"
    echo "$f"
}

# ---- kernel image: vmlinuz + all modules (extracted once, trimmed later) -----------------
extract_image() {
    local deb
    deb=$(fetch "linux-image-$KVER" "$PKGVER")
    rm -rf "$KD/root"; mkdir -p "$KD/root"
    log "extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$KD/root"
    cp "$KD/root/boot/vmlinuz-$KVER" "$KD/vmlinuz"
    cp "$KD/root/boot/config-$KVER" "$KD/config"
    rm -f "$deb"
}
[ -f "$KD/vmlinuz" ] || extract_image

# ---- v4l2loopback (out of tree, from the Debian dkms source package) ---------------------
B=$KD/build
if [ ! -f "$B/v4l2loopback/v4l2loopback.ko" ]; then
    deb=$(fetch v4l2loopback-dkms)
    rm -rf "$B/v4l2loopback" "$B/v4l2l-src"; mkdir -p "$B/v4l2l-src"
    dpkg-deb -x "$deb" "$B/v4l2l-src"
    mv "$B/v4l2l-src"/usr/src/v4l2loopback-* "$B/v4l2loopback"; rm -rf "$B/v4l2l-src"
    dpkg-deb -f "$deb" Version > "$B/v4l2loopback/DEB_VERSION"
    log "building v4l2loopback $(cat "$B/v4l2loopback/DEB_VERSION")"
    make -s -C "$HDR" M="$B/v4l2loopback" modules >"$B/v4l2loopback.build.log" 2>&1 \
        || { cat "$B/v4l2loopback.build.log" >&2; die "v4l2loopback build failed"; }
fi

# ---- gpio-sim (out of tree) ---------------------------------------------------------------
# Debian's 6.1 config has CONFIG_GPIO_SIM and CONFIG_IRQ_SIM off, so we build gpio-sim.c and
# kernel/irq/irq_sim.c from linux-source-<series> of the same version into one module.
# irq_sim's handle_simple_irq(irq_to_desc(n)) uses an unexported symbol; generic_handle_irq(n)
# (exported) dispatches to the same handle_simple_irq set in irq_sim_domain_map().
if grep -q '^CONFIG_GPIO_SIM=[ym]' "$KD/config"; then
    log "kernel has CONFIG_GPIO_SIM; using the in-tree module"
elif [ ! -f "$B/gpio-sim/gpio-sim.ko" ]; then
    srcver=$PKGVER
    if ! apt-cache madison "linux-source-$SERIES" 2>/dev/null | awk '{print $3}' | grep -qx "$PKGVER"; then
        srcver=$(candidate_version "linux-source-$SERIES")
        log "WARNING: linux-source-$SERIES=$PKGVER not offered; using $srcver (gpiolib.h may differ)"
    fi
    deb=$(fetch "linux-source-$SERIES" "$srcver")
    rm -rf "$B/gpio-sim" "$B/ksrc"; mkdir -p "$B/gpio-sim" "$B/ksrc"
    log "extracting gpio-sim sources from $(basename "$deb")"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/linux-source-$SERIES.tar.xz" \
        | tar -xJ -C "$B/ksrc" --wildcards \
            "linux-source-$SERIES/drivers/gpio/gpio-sim.c" \
            "linux-source-$SERIES/drivers/gpio/gpiolib.h" \
            "linux-source-$SERIES/kernel/irq/irq_sim.c"
    s=$B/ksrc/linux-source-$SERIES
    cp "$s/drivers/gpio/gpio-sim.c" "$B/gpio-sim/gpio-sim-core.c"
    cp "$s/drivers/gpio/gpiolib.h" "$B/gpio-sim/"
    sed 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' \
        "$s/kernel/irq/irq_sim.c" > "$B/gpio-sim/irq_sim.c"
    grep -q 'generic_handle_irq(irqnum)' "$B/gpio-sim/irq_sim.c" || die "irq_sim.c patch did not apply"
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq_sim.o\n' > "$B/gpio-sim/Kbuild"
    echo "$srcver" > "$B/gpio-sim/SOURCE_VERSION"
    rm -rf "$B/ksrc" "$deb"
    log "building gpio-sim"
    make -s -C "$HDR" M="$B/gpio-sim" modules >"$B/gpio-sim.build.log" 2>&1 \
        || { cat "$B/gpio-sim.build.log" >&2; die "gpio-sim build failed"; }
fi

# ---- collect the modules and their dependencies --------------------------------------------
# modroot/ = only the modules we load, laid out like /lib/modules, plus modules.load:
# "name relpath" lines in load order (dependencies first).
want="$VM_MODULES|$(cat "$B/v4l2loopback/DEB_VERSION")|$(cat "$B/gpio-sim/SOURCE_VERSION" 2>/dev/null || true)"
if [ "$(cat "$KD/modroot.stamp" 2>/dev/null || true)" != "$want" ]; then
    [ -d "$KD/root/lib/modules/$KVER" ] || extract_image   # trimmed after an earlier run
    M=$KD/root/lib/modules/$KVER
    mkdir -p "$M/updates"
    cp "$B/v4l2loopback/v4l2loopback.ko" "$M/updates/"
    [ -f "$B/gpio-sim/gpio-sim.ko" ] && cp "$B/gpio-sim/gpio-sim.ko" "$M/updates/"
    depmod -b "$KD/root" "$KVER"
    rm -rf "$KD/modroot"; MR=$KD/modroot/lib/modules/$KVER; mkdir -p "$MR"
    : > "$KD/modroot/modules.load"
    for m in $VM_MODULES; do
        out=$(modprobe -d "$KD/root" -S "$KVER" --show-depends "$m" 2>&1) || die "module $m: $out"
        while read -r kind path _; do
            [ "$kind" = insmod ] || continue
            rel=${path#"$M"/}
            name=$(basename "$rel" .ko); name=${name//-/_}
            grep -q "^$name " "$KD/modroot/modules.load" && continue
            mkdir -p "$MR/$(dirname "$rel")"; cp "$path" "$MR/$rel"
            echo "$name $rel" >> "$KD/modroot/modules.load"
        done <<< "$out"
    done
    cp "$M/modules.builtin" "$M/modules.builtin.modinfo" "$M/modules.order" "$MR/" 2>/dev/null || true
    depmod -b "$KD/modroot" "$KVER"
    echo "$want" > "$KD/modroot.stamp"
    log "modules: $(awk '{printf "%s ", $1}' "$KD/modroot/modules.load")"
fi
# The full module tree is 400 MB; keep it only if asked (SPINE_VM_KEEP_ROOT=1).
[ "${SPINE_VM_KEEP_ROOT:-0}" = 1 ] || rm -rf "$KD/root"

echo "$KVER" > "$CACHE/current-kernel"
echo "$PKGVER" > "$KD/PKG_VERSION"
build_base_initramfs "$KVER"
log "setup done: kernel $KVER ($PKGVER), cache $KD, wall time $(elapsed "$T0") s"
