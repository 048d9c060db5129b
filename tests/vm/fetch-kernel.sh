#!/usr/bin/env bash
# Fetches a Debian kernel for the test VMs and keeps only what the guests
# need: vmlinuz, the vivid module chain (in load order) and, for armhf, a
# static busybox. Everything comes from Debian's archive through apt; nothing
# is installed and the host's dpkg architectures are left untouched (a
# private apt state dir is used for foreign architectures).
#
# usage: fetch-kernel.sh amd64|armhf CACHE_DIR
# prints the kernel directory (CACHE_DIR/ARCH/KVER) as its last line.
set -euo pipefail
arch=$1
cache=$(realpath -m "$2")
mkdir -p "$cache/$arch"

case $arch in
  amd64) meta=linux-image-amd64 ;;
  armhf) meta=linux-image-armmp ;;
  *) echo "fetch-kernel: unknown architecture '$arch' (amd64 or armhf)" >&2; exit 2 ;;
esac

apt_opts=(-o "APT::Sandbox::User=root")
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  # A private package index for the foreign architecture, so the host's
  # dpkg/apt configuration is never changed.
  lists=$cache/apt-$arch/lists
  mkdir -p "$lists/partial" "$cache/apt-$arch/cache/archives/partial"
  apt_opts=(-o "Dir::State::Lists=$lists" -o "Dir::Cache=$cache/apt-$arch/cache"
            -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
            -o "Dir::State::status=/dev/null")
  # Refresh the private index at most once a day.
  if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
    # A partly failed update (a mirror mid-sync) still leaves a usable index.
    apt-get "${apt_opts[@]}" update -qq >&2 || echo "fetch-kernel: apt-get update for $arch reported errors; going on" >&2
  fi
fi

# The metapackage's dependency names the current kernel (it changes as
# Debian publishes updates, so it is resolved, never pinned).
kpkg=$(apt-cache "${apt_opts[@]}" depends "$meta" 2>/dev/null \
  | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
kpkg=${kpkg%:*}
if [ -z "$kpkg" ]; then
  # No index, or an offline machine: fall back to the newest cached kernel.
  last=$(ls -d "$cache/$arch"/*/ 2>/dev/null | sort -V | tail -1)
  if [ -n "$last" ] && [ -f "$last/vmlinuz" ]; then
    echo "fetch-kernel: cannot resolve $meta; using cached ${last%/}" >&2
    echo "${last%/}"; exit 0
  fi
  echo "fetch-kernel: cannot resolve $meta's kernel package (apt-get update needed?)" >&2
  exit 1
fi
kver=${kpkg#linux-image-}
kdir=$cache/$arch/$kver
if [ -f "$kdir/vmlinuz" ] && [ -f "$kdir/modules.order" ] && { [ "$arch" = amd64 ] || [ -x "$kdir/busybox" ]; }; then
  echo "$kdir"; exit 0
fi

tmp=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-kernel: downloading $kpkg ($arch)" >&2
pkgs=("$kpkg")
[ "$arch" = amd64 ] || pkgs+=(busybox-static)
(cd "$tmp" && apt-get "${apt_opts[@]}" download -qq "${pkgs[@]/%/:$arch}" >&2)
dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/root"
depmod -b "$tmp/root" "$kver"
rm -rf "$kdir.new" && mkdir -p "$kdir.new/modules"
cp "$tmp/root/boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
# vivid and everything it needs, in load order (rc-core comes in through cec,
# so modinfo's direct list is not enough).
modprobe -d "$tmp/root" -S "$kver" --show-depends vivid | awk '$1 == "insmod" {print $2}' |
while read -r f; do
  name=$(basename "$f"); name=${name%.xz}; name=${name%.zst}
  case $f in
    *.ko.xz)  xz -dc "$f" > "$kdir.new/modules/$name" ;;
    *.ko.zst) zstd -qdc "$f" > "$kdir.new/modules/$name" ;;
    *)        cp "$f" "$kdir.new/modules/$name" ;;
  esac
  echo "${name%.ko}" >> "$kdir.new/modules.order"
done
[ -s "$kdir.new/modules.order" ] || { echo "fetch-kernel: $kpkg has no vivid module" >&2; exit 1; }
if [ "$arch" != amd64 ]; then
  dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/bb"
  cp "$tmp/bb/bin/busybox" "$kdir.new/busybox"
fi
rm -rf "$kdir" && mv "$kdir.new" "$kdir"
echo "$kdir"
