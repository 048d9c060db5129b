#!/usr/bin/env bash
# Builds the kernel's own vicodec (a stateful FWHT encoder/decoder with the
# V4L2 memory-to-memory interface the Pi's bcm2835-codec has) and
# v4l2-mem2mem as out-of-tree modules for the vm-test kernel: Debian's
# kernel ships neither (CONFIG_VIDEO_VICODEC, CONFIG_V4L2_MEM2MEM_DEV are
# unset). From Debian's linux-source-6.1 against linux-headers-KVER, both
# from apt; module signing is not enforced in the guest.
# (../shared/reference/m2m-vicodec.md shows the recipe.)
#
# usage: build-vicodec.sh KVER OUT_DIR    → OUT_DIR/{v4l2-mem2mem,vicodec}.ko
set -euo pipefail
kver=$1 out=$2
mkdir -p "$out"
if [ -f "$out/vicodec.ko" ] && [ -f "$out/v4l2-mem2mem.ko" ]; then
  exit 0
fi
need=()
[ -f /usr/src/linux-source-6.1.tar.xz ] || need+=(linux-source-6.1)
[ -d "/lib/modules/$kver/build" ] || need+=("linux-headers-$kver")
if [ ${#need[@]} -gt 0 ]; then
  echo "build-vicodec: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xJf /usr/src/linux-source-6.1.tar.xz --wildcards \
  'linux-source-6.1/drivers/media/v4l2-core/v4l2-mem2mem.c' \
  'linux-source-6.1/drivers/media/test-drivers/vicodec/*'
src=$work/src
mkdir -p "$src"
cp "$work"/linux-source-6.1/drivers/media/v4l2-core/v4l2-mem2mem.c "$src/"
cp "$work"/linux-source-6.1/drivers/media/test-drivers/vicodec/*.[ch] "$src/"
cat >"$src/Makefile" <<'MK'
obj-m += v4l2-mem2mem.o vicodec.o
vicodec-objs := codec-fwht.o codec-v4l2-fwht.o vicodec-core.o
MK
make -s -C "/lib/modules/$kver/build" M="$src" modules >&2
cp "$src/v4l2-mem2mem.ko" "$src/vicodec.ko" "$out/"
echo "build-vicodec: built vicodec and v4l2-mem2mem for $kver" >&2
