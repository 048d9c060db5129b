#!/usr/bin/env bash
# Tests scripts/provision on a synthetic Raspberry Pi OS image (built
# without root or mounting: sfdisk, mkfs.vfat --offset, mkfs.ext4 -d) and on
# boot/root directories (the mounted-card mode), reading every change back.
# Installs mtools, dosfstools, e2fsprogs and fdisk when missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
prov="$here/scripts/provision"
export MTOOLS_SKIP_CHECK=1

missing=()
for t in sfdisk:fdisk mcopy:mtools mkfs.vfat:dosfstools mkfs.ext4:e2fsprogs debugfs:e2fsprogs; do
    command -v "${t%%:*}" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
export PATH=$PATH:/sbin:/usr/sbin
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0
ok() { printf '  ok   %s\n' "$1"; }
bad() { printf '  FAIL %s\n' "$1"; fails=$((fails + 1)); }
check() { # description, command...
    local d=$1; shift
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}

# A stock-looking boot and root file system.
mkdir -p "$t/boot" "$t/root/etc/systemd/system/multi-user.target.wants" "$t/root/usr/local/bin"
cat >"$t/boot/config.txt" <<'EOF'
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

[cm4]
otg_mode=1

[all]
EOF
printf 'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n' >"$t/boot/cmdline.txt"
echo raspberrypi >"$t/root/etc/hostname"
printf '\177ELF fake zerocam binary\n' >"$t/zerocam" # or the real one:
if [ -n "${PROVISION_TEST_BINARY:-}" ]; then cp "$PROVISION_TEST_BINARY" "$t/zerocam"; fi
hash='$6$saltsalt$Qx9rQ0N8ZkYhVh1Vwz0WlYzB0J9Vf2y8yq2yB2dJkq1v9qf0m8Q3l8yVjP5yQ8l0cK1hYz9bG2e0vG1v3Q2aB1'
cp -a "$t/boot" "$t/boot.orig"

# The image: 4 MiB gap, 32 MiB FAT, 48 MiB ext4.
img="$t/pi.img"
truncate -s 84M "$img"
printf 'label: dos\nstart=8192, size=65536, type=c\nstart=73728, type=83\n' | sfdisk -q "$img"
mkfs.vfat -F 16 --offset=8192 "$img" $((65536 / 2)) >/dev/null 2>&1
boot="$img@@$((8192 * 512))"
mcopy -i "$boot" "$t/boot/config.txt" "$t/boot/cmdline.txt" ::/
mkfs.ext4 -q -F -d "$t/root" -E offset=$((73728 * 512)) "$img" $(((172032 - 73728) / 2))k
root="$img?offset=$((73728 * 512))"

# Readers for both modes.
mode=image
rb() { if [ $mode = image ]; then mtype -i "$boot" "::$1"; else cat "$t/boot/$1"; fi; }
rbx() { if [ $mode = image ]; then mdir -i "$boot" "::$1" >/dev/null 2>&1; else [ -e "$t/boot/$1" ]; fi; }
rr() { if [ $mode = image ]; then debugfs -R "cat $1" "$root" 2>/dev/null; else cat "$t/root$1"; fi; }
rmode() { # octal permission bits and uid
    if [ $mode = image ]; then
        debugfs -R "stat $1" "$root" 2>/dev/null | sed -n 's/.*Mode: *0*\([0-7]*\).*/\1/p;s/^User: *\([0-9]*\).*/uid\1/p' | xargs
    else
        stat -c '%a uid%u' "$t/root$1" | sed "s/uid$(id -u)\$/uid0/"
    fi
}
rlink() { if [ $mode = image ]; then debugfs -R "stat $1" "$root" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'; else readlink "$t/root$1"; fi; }
rexists() { if [ $mode = image ]; then debugfs -R "stat $1" "$root" 2>/dev/null | grep -q '^Inode:'; else [ -e "$t/root$1" ] || [ -L "$t/root$1" ]; fi; }
rmissing() { ! rexists "$1"; }
target() { if [ $mode = image ]; then echo "$img"; else echo "$t/boot $t/root"; fi; }
contains() { grep -qxF -- "$2" <<<"$1"; }

run_checks() {
    echo "== $mode mode: first run (legacy camera, Wi-Fi, SSH, user)"
    # shellcheck disable=SC2046
    "$prov" --binary "$t/zerocam" --camera legacy --wifi-ssid 'Home Net' --wifi-psk 'secret-psk-123' \
        --wifi-country GB --ssh --user pi --password-hash "$hash" $(target) 2>"$t/log1" || { cat "$t/log1"; bad "provision ran"; return; }
    ok "provision ran"
    check "binary installed" cmp <(rr /usr/local/bin/zerocam) "$t/zerocam"
    check "binary mode 755 root" test "$(rmode /usr/local/bin/zerocam)" = "755 uid0"
    check "unit installed" cmp <(rr /etc/systemd/system/zerocam.service) "$here/deploy/zerocam.service"
    check "unit enabled for multi-user.target" test "$(rlink /etc/systemd/system/multi-user.target.wants/zerocam.service)" = /etc/systemd/system/zerocam.service
    check "rollback script" cmp <(rr /usr/local/lib/zerocam/rollback) "$here/deploy/zerocam-rollback"
    check "rollback timer enabled" test "$(rlink /etc/systemd/system/timers.target.wants/zerocam-rollback.timer)" = /etc/systemd/system/zerocam-rollback.timer
    check "rollback timer's service" cmp <(rr /etc/systemd/system/zerocam-rollback.service) "$here/deploy/zerocam-rollback.service"
    check "config installed" cmp <(rr /etc/zerocam/zerocam.toml) "$here/deploy/zerocam.toml"
    check "sysusers" cmp <(rr /etc/sysusers.d/zerocam.conf) "$here/deploy/zerocam.sysusers"
    check "tmpfiles" cmp <(rr /etc/tmpfiles.d/zerocam.conf) "$here/deploy/zerocam.tmpfiles"
    check "udev LED rule" cmp <(rr /etc/udev/rules.d/99-zerocam-led.rules) "$here/deploy/99-zerocam-led.rules"
    check "legacy: bcm2835-v4l2 loaded" grep -qx bcm2835-v4l2 <(rr /etc/modules-load.d/zerocam.conf)
    check "no libcamera drop-in" rmissing /etc/systemd/system/zerocam.service.d/libcamera.conf
    local nm=/etc/NetworkManager/system-connections/zerocam-wifi.nmconnection w
    w=$(rr $nm)
    check "wifi ssid" contains "$w" "ssid=Home Net"
    check "wifi psk" contains "$w" "psk=secret-psk-123"
    check "wifi power saving off" contains "$w" "powersave=2"
    check "wifi file mode 600" bash -c "[[ '$(rmode $nm)' == 600\ uid0* ]]"
    check "hostname untouched" test "$(rr /etc/hostname)" = raspberrypi

    local c
    c=$(rb config.txt)
    check "config.txt keeps the original" grep -qx 'dtparam=audio=on' <<<"$c"
    check "config.txt enable_uart=1" contains "$c" "enable_uart=1"
    check "config.txt legacy: start_x=1" contains "$c" "start_x=1"
    check "config.txt legacy: gpu_mem=128" contains "$c" "gpu_mem=128"
    check "config.txt legacy: camera_auto_detect=0 last" test "$(grep '^camera_auto_detect' <<<"$c" | tail -n 1)" = camera_auto_detect=0
    check "config.txt block under [all]" bash -c "sed -n '/^# >>> zerocam/,/^# <<< zerocam/p' <<<'$c' | sed -n 2p | grep -qx '\[all\]'"
    local l
    l=$(rb cmdline.txt)
    check "cmdline.txt one line" test "$(printf '%s\n' "$l" | wc -l)" = 1
    check "cmdline.txt serial console after tty1" grep -q 'console=tty1 console=serial0,115200 root=' <<<"$l"
    check "cmdline.txt one serial console" test "$(grep -o 'console=serial0' <<<"$l" | wc -l)" = 1
    check "cmdline.txt keeps args" grep -q 'rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot' <<<"$l"
    check "cmdline.txt regdom" grep -q 'cfg80211.ieee80211_regdom=GB$' <<<"$l"
    check "boot/ssh" rbx ssh
    check "boot/userconf.txt" test "$(rb userconf.txt)" = "pi:$hash"

    echo "== $mode mode: second run changes nothing"
    local before after
    before=$(if [ $mode = image ]; then sha256sum <"$img"; else tar -C "$t" -cf - boot root | sha256sum; fi)
    # shellcheck disable=SC2046
    "$prov" --binary "$t/zerocam" --camera legacy --wifi-ssid 'Home Net' --wifi-psk 'secret-psk-123' \
        --wifi-country GB --ssh --user pi --password-hash "$hash" $(target) 2>"$t/log2"
    after=$(if [ $mode = image ]; then sha256sum <"$img"; else tar -C "$t" -cf - boot root | sha256sum; fi)
    check "identical after second run" test "$before" = "$after"
    check "says nothing to change" grep -q 'nothing to change' "$t/log2"

    echo "== $mode mode: upgrade keeps an edited config; switch to usb"
    printf 'camera = "edited"\n' >"$t/edited.toml"
    # shellcheck disable=SC2046
    "$prov" --binary "$t/zerocam" --config "$t/edited.toml" --camera legacy $(target) 2>/dev/null
    # shellcheck disable=SC2046
    "$prov" --binary "$t/zerocam" --config "$here/deploy/zerocam.toml" --camera usb $(target) 2>"$t/log3"
    check "config kept" grep -q 'kept existing /etc/zerocam/zerocam.toml' "$t/log3"
    check "usb: module file removed" rmissing /etc/modules-load.d/zerocam.conf
    c=$(rb config.txt)
    check "usb: no start_x" bash -c "! grep -q '^start_x' <<<'$c'"
    check "usb: enable_uart still" contains "$c" "enable_uart=1"
    check "usb: one zerocam block" test "$(grep -c '^# >>> zerocam' <<<"$c")" = 1
    check "usb: original camera_auto_detect kept" contains "$c" "camera_auto_detect=1"

    echo "== $mode mode: libcamera with the static binary (frames from rpicam-vid)"
    # shellcheck disable=SC2046
    "$prov" --binary "$t/zerocam" --camera libcamera $(target) 2>"$t/log4" || { cat "$t/log4"; bad "libcamera provision ran"; }
    local d
    d=$(rr /etc/systemd/system/zerocam.service.d/libcamera.conf)
    check "libcamera: drop-in reads rpicam-vid" grep -qF -- '--source "exec:rpicam-vid -t 0 -n --codec yuv420' <<<"$d"
    check "libcamera: no libcamerify" bash -c '! grep -q libcamerify' <<<"$d"
    c=$(rb config.txt)
    check "libcamera: camera_auto_detect=1 last" test "$(grep '^camera_auto_detect' <<<"$c" | tail -n 1)" = camera_auto_detect=1

    echo "== $mode mode: refusals"
    # shellcheck disable=SC2046
    check "short psk refused" bash -c "! '$prov' --binary '$t/zerocam' --wifi-ssid x --wifi-psk short $(target)"
    check "bad camera refused" bash -c "! '$prov' --binary '$t/zerocam' --camera csi $(target)"
    check "x86 binary refused" bash -c "! '$prov' --binary /bin/true $(target) 2>/dev/null"
}

run_checks

mode=dir
rm -rf "${t:?}/boot" && cp -a "$t/boot.orig" "$t/boot"
run_checks

echo "== image that is not a Pi OS image"
truncate -s 1M "$t/blank.img"
if msg=$("$prov" --binary "$t/zerocam" "$t/blank.img" 2>&1); then
    bad "blank image refused"
else
    check "blank image refused with a message" grep -q 'no partition table' <<<"$msg"
fi

if [ $fails -gt 0 ]; then
    echo "provision tests: $fails failed"
    exit 1
fi
echo "provision tests: all passed"
