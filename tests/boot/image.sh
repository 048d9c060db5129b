#!/usr/bin/env bash
# Usage: tests/boot/image.sh CACHE_DIR RPICAM_VID_BIN OUT.img
#
# The SD card image that scripts/boot-test provisions and boots: Debian
# bookworm armel laid out like Raspberry Pi OS (a FAT boot partition with
# config.txt, cmdline.txt, the kernel, its initramfs and the device tree;
# an ext4 root partition), 1 GiB (QEMU wants SD images whose size is a
# power of two). Everything comes from Debian's registry.
#
# The root file system (mmdebstrap through qemu-user-static, about 6
# minutes) is cached in CACHE_DIR, keyed by its package list; the image is
# assembled from it each run (seconds), so changes below take effect at once.
#
# What Raspberry Pi OS does at first boot and Debian does not, this image
# does with a small unit of its own (boot-test-firstboot.service), so that
# scripts/provision's files are acted on as on a real card: `ssh` on the boot
# partition enables the SSH server, `userconf.txt` creates the first user
# (in the sudo and video groups). The rest is test access: root logs in over
# SSH with the key in CACHE_DIR (the test's own), and nothing else.
set -euo pipefail
cache=$1 rpicam=$2 out=$3
say() { printf 'boot-image: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap, and files owned by root in the image)"

packages=systemd,systemd-sysv,udev,kmod,openssh-server,iproute2,sudo,e2fsprogs,dosfstools,procps,busybox-static
# The kernel is unpacked on this side, not installed in the chroot: its
# postinst and initramfs-tools would run depmod and mkinitramfs under
# qemu-user, which was more than half of the build (8 of 13 minutes on CI).
# depmod runs here instead; the initramfs is built below from busybox.
kernel_hook='set -e
export APT_CONFIG="$MMDEBSTRAP_APT_CONFIG"
cd "$1/tmp"
pkg=$(apt-cache depends linux-image-rpi | sed -n "s/^ *Depends: \(linux-image-[0-9][^ ]*-rpi\)$/\1/p" | head -n 1)
[ -n "$pkg" ] || { echo "boot-image: no kernel package behind linux-image-rpi" >&2; exit 1; }
apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2
dpkg-deb --fsys-tarfile ./"$pkg"_*.deb | tar -C "$1" -x --keep-directory-symlink
rm -f ./"$pkg"_*.deb
depmod -b "$1" "${pkg#linux-image-}"'
key=$(printf '%s bookworm armel minbase %s' "$packages" "$kernel_hook" | sha256sum | cut -c1-12)
tar=$cache/rootfs-$key.tar
mkdir -p "$cache"

# The build's peak is about 1.2 GB (the chroot, its tar and the image): a
# full disk would otherwise show as an apt or mkfs error halfway through.
for dir in "$cache" "${TMPDIR:-/tmp}" "$(dirname "$out")"; do
    free_mb=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
    [ "${free_mb:-0}" -ge 2048 ] ||
        die "only ${free_mb:-0} MB free in $dir; the image build needs 2048 MB there"
done

if [ ! -s "$tar" ]; then
    # Foreign-architecture binaries in the chroot run through qemu-user.
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
    [ -e /proc/sys/fs/binfmt_misc/qemu-arm ] ||
        die "qemu-arm is not registered with binfmt_misc (packages qemu-user-static, binfmt-support)"
    say "building the armel root file system (about 6 minutes, cached as ${tar##*/})"
    t=$SECONDS
    # The registry, or the way to it, can fail for a minute, and mmdebstrap
    # stops at apt's first warning: try three times, a while apart, and
    # say what apt said each time (--quiet would hide it).
    log=$cache/rootfs.log
    for attempt in 1 2 3; do
        rm -rf "$tar.part"
        # --format: mmdebstrap guesses it from the name, and `.part` would make a directory.
        mmdebstrap --arch=armel --variant=minbase --include="$packages" \
            --customize-hook="$kernel_hook" --format=tar bookworm "$tar.part" \
            http://deb.debian.org/debian >"$log" 2>&1 && break
        say "mmdebstrap failed (attempt $attempt of 3); what apt said:"
        grep -E '^(E|W|Err|Ign):' "$log" | tail -n 12 >&2 || tail -n 12 "$log" >&2
        [ "$attempt" -lt 3 ] || die "cannot build the root file system from Debian's registry (log: $log)"
        sleep $((attempt * 30))
    done
    mv "$tar.part" "$tar"
    say "root file system built in $((SECONDS - t)) s"
fi

# The test's SSH key (root's authorized key in the image).
[ -f "$cache/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C zerocam-boot-test -f "$cache/id_ed25519"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/root
mkdir "$tree"
tar -C "$tree" -xpf "$tar"

# --- Raspberry Pi OS layout -----------------------------------------------------
echo raspberrypi >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' >"$tree/etc/hosts"
mkdir -p "$tree/boot/firmware"
cat >"$tree/etc/fstab" <<'EOF'
/dev/mmcblk0p1  /boot/firmware  vfat  defaults          0  2
/dev/mmcblk0p2  /               ext4  defaults,noatime  0  1
EOF
# The network: DHCP on whatever Ethernet appears (the USB gadget here).
mkdir -p "$tree/etc/systemd/network"
cat >"$tree/etc/systemd/network/50-wired.network" <<'EOF'
[Match]
Name=en* eth* usb*
[Network]
DHCP=ipv4
EOF
systemctl --root="$tree" enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
# SSH starts only when the boot partition asks for it, as on Raspberry Pi OS.
systemctl --root="$tree" disable ssh.service >/dev/null 2>&1 || true
# Timers that would compete for the one emulated core mid-test, and two
# services that did in the first minute (systemd-analyze blame: 74 s for
# e2scrub_reap): e2scrub_reap (LVM snapshot clean-up; there is no LVM) and
# getty-static (gettys on tty2-6 when there is no logind; Raspberry Pi OS
# has logind, and this board has no screen).
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
         e2scrub_reap.service getty-static.service; do
    systemctl --root="$tree" mask "$u" >/dev/null 2>&1 || true
done
# The VideoCore drivers cannot work on QEMU's raspi0 (no VideoCore behind
# the mailbox: vchiq "could not initialize", vc4 waits out its deferred
# probe and fails), and loading them (vc4 pulls DRM and ALSA, 1.5 MB of
# modules) took the one emulated core seconds on every boot.
printf '# boot test only: no VideoCore under QEMU\nblacklist vc4\nblacklist vchiq\nblacklist snd_soc_hdmi_codec\n' \
    >"$tree/etc/modprobe.d/boot-test-no-videocore.conf"

install -d -m 755 "$tree/usr/lib/boot-test"
cat >"$tree/usr/lib/boot-test/firstboot" <<'EOF'
#!/bin/sh
# What Raspberry Pi OS's first boot does with scripts/provision's files.
set -eu
b=/boot/firmware
if [ -f $b/userconf.txt ]; then
    name=$(cut -d: -f1 $b/userconf.txt)
    hash=$(cut -d: -f2- $b/userconf.txt)
    id "$name" >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo,video "$name"
    usermod -p "$hash" "$name"
    rm -f $b/userconf.txt
    echo "firstboot: user $name created from userconf.txt"
fi
if [ -f $b/ssh ] || [ -f $b/ssh.txt ]; then
    systemctl enable ssh.service
    systemctl start --no-block ssh.service
    rm -f $b/ssh $b/ssh.txt
    echo "firstboot: SSH enabled (ssh file on the boot partition)"
fi
EOF
chmod 755 "$tree/usr/lib/boot-test/firstboot"
cat >"$tree/etc/systemd/system/boot-test-firstboot.service" <<'EOF'
[Unit]
Description=Raspberry Pi OS first-boot steps (userconf.txt, ssh) for the boot test
After=local-fs.target systemd-sysusers.service
Before=ssh.service getty.target
ConditionPathExistsGlob=|/boot/firmware/userconf.txt
ConditionPathExistsGlob=|/boot/firmware/ssh*
[Service]
Type=oneshot
ExecStart=/usr/lib/boot-test/firstboot
[Install]
WantedBy=multi-user.target
EOF
systemctl --root="$tree" enable boot-test-firstboot.service >/dev/null 2>&1

# --- test access and test-only devices ------------------------------------------
install -d -m 700 "$tree/root/.ssh"
install -m 600 "$cache/id_ed25519.pub" "$tree/root/.ssh/authorized_keys"
# vivid stands in for a USB camera: loaded at boot, capture node only.
echo vivid >"$tree/etc/modules-load.d/boot-test-vivid.conf"
echo 'options vivid node_types=0x1 n_devs=1' >"$tree/etc/modprobe.d/boot-test-vivid.conf"
# The libcamera drop-in's program, a stand-in (tools/rpicam_vid.rs).
install -m 755 "$rpicam" "$tree/usr/local/bin/rpicam-vid"
# A shorter service watchdog, so that the frozen-process case takes seconds.
# The shipped unit keeps WatchdogSec=60.
install -d -m 755 "$tree/etc/systemd/system/zerocam.service.d"
printf '# boot test only\n[Service]\nWatchdogSec=20\n' >"$tree/etc/systemd/system/zerocam.service.d/boot-test-watchdog.conf"
# An update that never reaches its relay is rolled back after 12 s up,
# looked at every 5 s, rather than the shipped 300 and 30.
install -d -m 755 "$tree/etc/systemd/system/zerocam-rollback.service.d" "$tree/etc/systemd/system/zerocam-rollback.timer.d"
printf '# boot test only\n[Service]\nEnvironment=ZEROCAM_ROLLBACK_AFTER=12\n' >"$tree/etc/systemd/system/zerocam-rollback.service.d/boot-test.conf"
printf '# boot test only (empty: the shipped 30 s go)\n[Timer]\nOnUnitActiveSec=\nOnBootSec=10s\nOnUnitActiveSec=5s\n' >"$tree/etc/systemd/system/zerocam-rollback.timer.d/boot-test.conf"

# --- boot partition ---------------------------------------------------------------
kver=$(basename "$(ls -d "$tree"/usr/lib/modules/*-rpi | tail -1)")
[ -f "$tree/boot/vmlinuz-$kver" ] || die "no kernel for $kver in the root file system"
# The initramfs: busybox, ext4 and what it needs (a module in this kernel;
# the SD host and mmc_block are built in), mount the root read-only as
# initramfs-tools does (systemd checks and remounts it), switch to it.
ird=$work/initramfs
mkdir -p "$ird/bin" "$ird/dev" "$ird/proc" "$ird/sys" "$ird/root"
cp "$tree/bin/busybox" "$ird/bin/busybox"
insmods=$(modprobe -d "$tree" -S "$kver" --show-depends -a crc32c_generic ext4 | sed -n 's/^insmod //p' | awk '!seen[$1]++ { print $1 }')
[ -n "$insmods" ] || die "no ext4 module for $kver"
for m in $insmods; do
    install -D -m 644 "$m" "$ird/${m#"$tree"/}"
done
{
    echo '#!/bin/busybox sh'
    echo '# zerocam boot-test initramfs (tests/boot/image.sh)'
    echo '/bin/busybox --install -s /bin'
    echo 'mount -t devtmpfs devtmpfs /dev; mount -t proc proc /proc; mount -t sysfs sysfs /sys'
    for m in $insmods; do echo "insmod /${m#"$tree"/}"; done
    cat <<'INIT'
root=/dev/mmcblk0p2 fstype=ext4
for a in $(cat /proc/cmdline); do
    case $a in root=*) root=${a#root=} ;; rootfstype=*) fstype=${a#rootfstype=} ;; esac
done
n=0
while [ ! -b "$root" ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
mount -t "$fstype" -o ro "$root" /root || { echo "initramfs: cannot mount $root ($fstype)"; exit 1; }
umount /sys /proc
mount --move /dev /root/dev
exec switch_root /root /sbin/init
INIT
} >"$ird/init"
chmod 755 "$ird/init"
bootdir=$work/boot
mkdir "$bootdir"
cp "$tree/boot/vmlinuz-$kver" "$bootdir/kernel.img"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -6) >"$bootdir/initramfs.img"
cp "$tree"/usr/lib/linux-image-"$kver"/bcm2835-rpi-zero*.dtb "$bootdir/"
cat >"$bootdir/config.txt" <<'EOF'
# Raspberry Pi firmware configuration (zerocam boot-test image: a Pi Zero)
kernel=kernel.img
initramfs initramfs.img followkernel
device_tree=bcm2835-rpi-zero.dtb

[all]
EOF
echo 'console=serial0,115200 console=tty1 root=/dev/mmcblk0p2 rootfstype=ext4 fsck.repair=yes rootwait' >"$bootdir/cmdline.txt"

# --- the image: 4 MiB gap, 128 MiB FAT32, the rest ext4 ---------------------------
boot_mb=128 total_mb=1024
boot_start=8192 boot_sectors=$((boot_mb * 2048))
root_start=$((boot_start + boot_sectors))
root_sectors=$((total_mb * 2048 - root_start))
export MTOOLS_SKIP_CHECK=1
mkfs.vfat -F 32 -s 1 -n bootfs -C "$work/boot.img" $((boot_mb * 1024)) >/dev/null 2>&1
mcopy -i "$work/boot.img" "$bootdir"/* ::/
mkfs.ext4 -q -F -L rootfs -d "$tree" "$work/root.img" $((root_sectors / 2))k >/dev/null
truncate -s "${total_mb}M" "$out.part"
printf 'label: dos\nstart=%s, size=%s, type=c\nstart=%s, size=%s, type=83\n' \
    $boot_start $boot_sectors $root_start $root_sectors | sfdisk -q "$out.part"
dd if="$work/boot.img" of="$out.part" bs=512 seek=$boot_start conv=notrunc,sparse status=none
dd if="$work/root.img" of="$out.part" bs=512 seek=$root_start conv=notrunc,sparse status=none
mv "$out.part" "$out"
say "image ready: $out (kernel $kver)"
