#!/usr/bin/env bash
# Builds what scripts/bench's ARMv6 part runs, into target/bench-arm/, and
# prints KEY=PATH lines for it:
#   zerocam=  tools/encode_frames.rs for the Pi Zero (--profile pi, the
#             shipped build's optimisation), arm-unknown-linux-musleabihf
#   turbo=    bench/arm/turbo_frames.c against libjpeg-turbo 3.x (the copy
#             bundled in the turbojpeg-sys crate the x86 bench uses), both
#             compiled by zig cc for -mcpu=arm1176jzf_s, without SIMD (the
#             ARM1176 has no NEON), CMake's Release flags (-O3)
#   zerocam64=, turbo64=  the same two for the Zero 2 W (aarch64,
#             -mcpu=cortex_a53), libjpeg-turbo with its NEON code
#   plugin=   bench/arm/insncount.c, a qemu TCG plugin counting executed
#             guest instructions, built against qemu-plugin.h from Debian's
#             source package of the installed qemu-user (fetched with
#             apt-get source into target/bench-arm; the system's apt
#             sources are not touched)
# Installs what it needs (zig and cargo-zigbuild as for the Pi build;
# cmake, gcc, qemu-user from apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/pi-toolchain.sh
root=$PWD
out=$root/target/bench-arm
mkdir -p "$out"

pi_setup qemu
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v gcc >/dev/null || missing+=(gcc)
command -v xz >/dev/null || missing+=(xz-utils)
[ ${#missing[@]} = 0 ] || pi_apt_install "${missing[@]}"
py=$(command -v python3)

# --- the counting plugin -------------------------------------------------
if ! qemu-arm -h 2>&1 | grep -q -- '-plugin'; then
    pi_log "bench/arm: this qemu-arm has no -plugin option (a static qemu-user-static?); install Debian's qemu-user"
    exit 1
fi
qver=$(dpkg-query -W -f='${source:Version}' qemu-user 2>/dev/null || true)
[ -n "$qver" ] || { pi_log "bench/arm: cannot tell qemu-user's source version (dpkg-query)"; exit 1; }
header=$out/qemu-$qver/qemu-plugin.h
if [ ! -f "$header" ]; then
    pi_log "bench/arm: fetching qemu-plugin.h from Debian's qemu $qver source package"
    apt=$out/apt
    rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/src"
    . /etc/os-release
    printf 'deb-src http://deb.debian.org/debian %s main\ndeb-src http://deb.debian.org/debian-security %s-security main\ndeb-src http://deb.debian.org/debian %s-updates main\n' \
        "$VERSION_CODENAME" "$VERSION_CODENAME" "$VERSION_CODENAME" >"$apt/sources.list"
    aptc=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$apt/lists" -o DPkg::Lock::Timeout=600)
    apt-get "${aptc[@]}" update -qq >&2
    (cd "$apt/src" && apt-get "${aptc[@]}" source --download-only -qq "qemu=$qver" >&2)
    mkdir -p "$(dirname "$header")"
    tar -xJf "$apt"/src/qemu_*.orig.tar.xz -C "$apt/src" --wildcards '*/include/qemu/qemu-plugin.h'
    cp "$apt"/src/qemu-*/include/qemu/qemu-plugin.h "$header"
    rm -rf "$apt"
fi
gcc -shared -fPIC -O2 -Wall -I"$(dirname "$header")" bench/arm/insncount.c -o "$out/insncount.so"

# --- zig cc wrappers and libjpeg-turbo, per target ---------------------
# zig_tools PREFIX ZIG_TARGET CPU: $out/PREFIX{cc,ar,ranlib} for that CPU.
zig_tools() {
    local tool extra
    for tool in cc ar ranlib; do
        extra=
        [ $tool = cc ] && extra="-target $2 -mcpu=$3"
        printf '#!/bin/sh\nexec %s -m ziglang %s %s "$@"\n' "$py" "$tool" "$extra" >"$out/$1$tool"
        chmod +x "$out/$1$tool"
    done
}
# turbo PREFIX BUILD_DIR PROCESSOR WITH_SIMD: libjpeg-turbo's static
# TurboJPEG library with those tools (CMake's Release flags, -O3), once.
turbo() {
    [ -f "$out/$2/libturbojpeg.a" ] && return
    pi_log "bench/arm: building libjpeg-turbo ($turbo_src) for $3 (WITH_SIMD=$4) with zig cc"
    rm -rf "${out:?}/$2"
    cmake -S "$turbo_src" -B "$out/$2" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR="$3" \
        -DCMAKE_C_COMPILER="$out/$1cc" -DCMAKE_AR="$out/$1ar" -DCMAKE_RANLIB="$out/$1ranlib" \
        -DENABLE_SHARED=0 -DWITH_SIMD="$4" >&2
    cmake --build "$out/$2" --target turbojpeg-static -j"$(nproc)" >&2
}
zig_tools z arm-linux-musleabihf arm1176jzf_s

# --- libjpeg-turbo and its driver ----------------------------------------
turbo_src=$(cargo metadata --format-version 1 --manifest-path bench/Cargo.toml --locked |
    "$py" -c 'import json,sys,os; m=json.load(sys.stdin); print(next(os.path.join(os.path.dirname(p["manifest_path"]),"libjpeg-turbo") for p in m["packages"] if p["name"]=="turbojpeg-sys"))')
[ -f "$turbo_src/CMakeLists.txt" ] || (cd bench && cargo fetch --locked >&2)
turbo z turbo-build arm 0
"$out/zcc" -O3 -static -I"$turbo_src/src" -I"$out/turbo-build" bench/arm/turbo_frames.c \
    "$out/turbo-build/libturbojpeg.a" -o "$out/turbo_frames"

# --- zerocam's encoder, built as the Pi binary is ------------------------
pi_log "bench/arm: building tools/encode_frames.rs for the Pi Zero (profile pi)"
cargo zigbuild -Zbuild-std=std,panic_abort --target arm-unknown-linux-musleabihf \
    --no-default-features --profile pi --example encode_frames --locked >&2
zc=$root/target/arm-unknown-linux-musleabihf/pi/examples/encode_frames

# --- the same for the Zero 2 W (aarch64, Cortex-A53) ---------------------
# libjpeg-turbo with its NEON code (WITH_SIMD=1; JSIMD_FORCENONE=1 at run
# time gives its scalar C from the same build), and zerocam's tool.
zig_tools a64 aarch64-linux-musl cortex_a53
turbo a64 turbo-a64 aarch64 1
grep -q 'WITH_SIMD:BOOL=1' "$out/turbo-a64/CMakeCache.txt" ||
    { pi_log "bench/arm: libjpeg-turbo for aarch64 was built without SIMD"; exit 1; }
"$out/a64cc" -O3 -static -I"$turbo_src/src" -I"$out/turbo-a64" bench/arm/turbo_frames.c \
    "$out/turbo-a64/libturbojpeg.a" -o "$out/turbo_frames_a64"
pi_log "bench/arm: building tools/encode_frames.rs for the Zero 2 W (profile pi)"
cargo zigbuild -Zbuild-std=std,panic_abort --target aarch64-unknown-linux-musl \
    --no-default-features --profile pi --example encode_frames --locked >&2
zc64=$root/target/aarch64-unknown-linux-musl/pi/examples/encode_frames

for bin in "$zc" "$out/turbo_frames"; do
    arch=$(readelf -A "$bin" | sed -n 's/^ *Tag_CPU_arch: //p')
    [ "$arch" = v6 ] || [ "$arch" = v6KZ ] || { pi_log "bench/arm: $bin has Tag_CPU_arch '$arch', expected v6"; exit 1; }
done
echo "zerocam=$zc"
echo "turbo=$out/turbo_frames"
echo "plugin=$out/insncount.so"
echo "zerocam64=$zc64"
echo "turbo64=$out/turbo_frames_a64"
