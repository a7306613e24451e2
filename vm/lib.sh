# shellcheck shell=bash
# Shared helpers for vm/setup.sh, vm/run.sh, vm/selftest.sh. Source, don't run.

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SPINE_VM_CACHE:-$HOME/.cache/spine-edge-vm}
# Kernel modules the harness loads (top level; dependencies are resolved with depmod).
# v4l2loopback and gpio-sim are built by setup.sh, the rest come from the Debian kernel package.
VM_MODULES="vivid v4l2loopback vfb gpio-sim ${SPINE_VM_EXTRA_MODULES:-}"

log() { printf '[spine-vm] %s\n' "$*" >&2; }
die() { printf '[spine-vm] ERROR: %s\n' "$*" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO="sudo -n" || SUDO=
fi

_APT_UPDATED=
apt_update_once() {
    [ -n "$_APT_UPDATED" ] && return 0
    log "apt-get update"
    $SUDO apt-get update -qq >&2 || die "apt-get update failed"
    _APT_UPDATED=1
}

# apt_install PKG... : install the packages that are not installed yet.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # Refresh the lists when apt does not know a package (fresh CI image).
    for p in "${missing[@]}"; do
        if ! apt-cache show "$p" >/dev/null 2>&1; then apt_update_once; break; fi
    done
    log "apt-get install ${missing[*]}"
    mkdir -p "$CACHE"
    local alog=$CACHE/apt-install.log
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$alog" 2>&1 \
        || { apt_update_once; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$alog" 2>&1; } \
        || { cat "$alog" >&2; die "apt-get install ${missing[*]} failed"; }
}

# candidate_version PKG : apt candidate version or empty.
candidate_version() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# discover_kernel : print the kernel release (e.g. 6.1.0-56-amd64) to use.
#  1. $SPINE_VM_KERNEL if set (pin), 2. what linux-headers-amd64 points at, if the image
#  package of the same version exists, 3. the newest ABI whose image, headers and
#  headers-common packages exist with one version.
discover_kernel() {
    if [ -n "${SPINE_VM_KERNEL:-}" ]; then echo "$SPINE_VM_KERNEL"; return; fi
    local rel hv
    rel=$(apt-cache depends linux-headers-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-headers-\(.*-amd64\)$/\1/p' | head -1)
    if [ -z "$rel" ]; then   # no apt lists yet (fresh CI image)
        apt_update_once
        rel=$(apt-cache depends linux-headers-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-headers-\(.*-amd64\)$/\1/p' | head -1)
    fi
    if [ -n "$rel" ] && kernel_is_complete "$rel"; then echo "$rel"; return; fi
    for hv in $(apt-cache pkgnames linux-headers- 2>/dev/null \
                | sed -n 's/^linux-headers-\([0-9.]*-[0-9]*-amd64\)$/\1/p' | sort -rV); do
        if kernel_is_complete "$hv"; then echo "$hv"; return; fi
    done
    return 1
}

# kernel_is_complete REL : image, headers and headers-common exist with the same version
# (one apt-cache call: each costs ~1 s on a busy machine).
kernel_is_complete() {
    local rel=$1 abi=${1%-amd64}
    apt-cache policy "linux-image-$rel" "linux-headers-$rel" "linux-headers-$abi-common" 2>/dev/null \
        | awk '/^[^ ]/ { n++ } /Candidate:/ && $2 != "(none)" { v[$2]++ }
               END { for (k in v) if (v[k] == 3 && n == 3) ok = 1; exit !ok }'
}

# kernel_dir REL : cache directory of one kernel release.
kernel_dir() { echo "$CACHE/kernels/$1"; }

# current_kernel : the kernel run.sh should use.
current_kernel() {
    if [ -n "${SPINE_VM_KERNEL:-}" ]; then echo "$SPINE_VM_KERNEL"; return; fi
    [ -f "$CACHE/current-kernel" ] && cat "$CACHE/current-kernel"
}

# build_base_initramfs KVER : $KD/base.cpio.gz = busybox + modules + /init. Rebuilt only when
# init.sh, the module set or busybox changed. run.sh appends a per-run cpio to it.
build_base_initramfs() {
    local kver=$1 kd bb key st
    kd=$(kernel_dir "$kver")
    bb=$(command -v busybox-static 2>/dev/null || echo /bin/busybox)
    [ -x "$bb" ] || die "busybox-static not installed"
    [ -f "$kd/modroot/modules.load" ] || die "modules for $kver missing: run vm/setup.sh"
    key=$( { cat "$VM_DIR/init.sh" "$kd/modroot/modules.load"; sha256sum "$bb"; echo "$kver"; } | sha256sum | cut -d' ' -f1)
    if [ -f "$kd/base.cpio.gz" ] && [ "$(cat "$kd/base.key" 2>/dev/null)" = "$key" ]; then return 0; fi
    log "building base initramfs"
    st=$(mktemp -d "$CACHE/base.XXXXXX")
    mkdir -p "$st"/{bin,dev,proc,sys,tmp,run,root,etc/spine-vm,lib,usr,mnt,spine}
    ln -s bin "$st/sbin"; ln -s ../bin "$st/usr/bin"; ln -s ../bin "$st/usr/sbin"
    cp "$bb" "$st/bin/busybox"
    local a
    for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$st/bin/$a"; done
    cp -a "$kd/modroot/lib/modules" "$st/lib/"
    cp "$kd/modroot/modules.load" "$st/etc/spine-vm/modules.load"
    install -m 0755 "$VM_DIR/init.sh" "$st/init"
    if [ "$(id -u)" = 0 ]; then   # the kernel opens /dev/console before /init runs
        mknod -m 600 "$st/dev/console" c 5 1; mknod -m 666 "$st/dev/null" c 1 3
    fi
    (cd "$st" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$kd/base.cpio.gz.tmp"
    # pad to 512 bytes so an uncompressed cpio appended later starts aligned
    local sz; sz=$(stat -c %s "$kd/base.cpio.gz.tmp")
    truncate -s $(( (sz + 511) / 512 * 512 )) "$kd/base.cpio.gz.tmp"
    mv "$kd/base.cpio.gz.tmp" "$kd/base.cpio.gz"
    echo "$key" > "$kd/base.key"
    rm -rf "$st"
}
