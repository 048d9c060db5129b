#!/usr/bin/env bash
# Builds a guest initramfs for scripts/vm-test: busybox, the vivid module
# chain (kernel dir from fetch-kernel.sh), the zerocam binary, the vm_guest
# helper, /init and the list of cases to run.
#
# usage: mkinitramfs.sh KERNEL_DIR BUSYBOX ZEROCAM VM_GUEST OUT.cpio.gz CASE...
# env:   RELAY_BIN: a separate zerocam build with the relay feature (the Pi
#        build leaves it out); installed as /bin/zerocam-relay.
#        EXTRA_MODULES: a directory of extra .ko files (vicodec), installed
#        in /lib/modules/extra.
set -euo pipefail
kdir=$1 busybox=$2 zerocam=$3 vm_guest=$4 out=$5
shift 5
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp,vm,lib/modules}
cp "$busybox" "$root/bin/busybox"
# One symlink per applet; `busybox --list` names busybox itself, and linking
# that would replace the binary by a symlink loop (ELOOP at /init).
for a in $("$root/bin/busybox" --list 2>/dev/null || /bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done
cp "$kdir"/modules/*.ko "$root/lib/modules/"
if [ -n "${EXTRA_MODULES:-}" ]; then
  mkdir -p "$root/lib/modules/extra"
  cp "$EXTRA_MODULES"/*.ko "$root/lib/modules/extra/"
fi
cp "$kdir/modules.order" "$root/lib/modules/order"
cp "$zerocam" "$root/bin/zerocam"
cp "$vm_guest" "$root/bin/vm_guest"
[ -z "${RELAY_BIN:-}" ] || cp "$RELAY_BIN" "$root/bin/zerocam-relay"
cp "$here/init" "$root/init"
cp "$here/guest.sh" "$root/vm/guest.sh"
chmod +x "$root/init" "$root/bin/zerocam" "$root/bin/vm_guest"
printf '%s\n' "$@" > "$root/vm/cases"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out"
