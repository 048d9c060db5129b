# shellcheck shell=bash
# Sourced by scripts/build-pi and scripts/test-arm: installs and sets up the
# cross toolchain from README.md "On the Pi" (zig + cargo-zigbuild from PyPI, rust-src
# for -Zbuild-std, libclang for v4l's bindgen, qemu-user for running tests).
# Everything comes from apt, PyPI, rustup's rust-src and crates.io.

# Versions proven on a stock Debian 12 machine.
ZIGLANG_VERSION=${ZIGLANG_VERSION:-0.17.1}
CARGO_ZIGBUILD_VERSION=${CARGO_ZIGBUILD_VERSION:-0.24.0}

# -Zbuild-std is unstable; cargo reads this from the environment only.
export RUSTC_BOOTSTRAP=1

pi_log() { printf '%s\n' "$*" >&2; }

# Runs as root directly, through sudo otherwise.
pi_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

pi_apt_install() {
    pi_log "installing with apt: $*"
    pi_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive pi_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >&2
}

# pi_setup [qemu]: makes sure everything the ARM build (and, with "qemu",
# the emulated test run) needs is installed.
pi_setup() {
    local py
    py=$(command -v python3 || command -v python || true)
    [ -n "$py" ] || pi_apt_install python3 python3-pip
    py=$(command -v python3 || command -v python)
    if ! command -v zig >/dev/null 2>&1 && ! "$py" -c 'import ziglang' 2>/dev/null; then
        pi_log "installing ziglang $ZIGLANG_VERSION from PyPI"
        "$py" -m pip install -q "ziglang==$ZIGLANG_VERSION" >&2
    fi
    if ! command -v cargo-zigbuild >/dev/null 2>&1; then
        pi_log "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION from PyPI"
        "$py" -m pip install -q "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" >&2
        hash -r
    fi
    command -v cargo-zigbuild >/dev/null 2>&1 || {
        pi_log "cargo-zigbuild installed but not on PATH (pip's script directory?)"
        return 1
    }
    if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
        pi_log "adding rust-src (std is built from source for the Pi targets)"
        rustup component add rust-src >&2
    fi
    # v4l's bindgen loads libclang at build time.
    # (libclang-cpp, which other packages bring, is not the one it loads.)
    if ! ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
        pi_apt_install libclang-dev
    fi
    if [ "${1:-}" = qemu ] && ! command -v qemu-arm >/dev/null 2>&1; then
        pi_apt_install qemu-user
    fi
}

# pi_target zero|zero2: the Rust target triple for a board.
pi_target() {
    case "$1" in
        zero) echo arm-unknown-linux-musleabihf ;;
        zero2) echo aarch64-unknown-linux-musl ;;
        *)
            pi_log "unknown board '$1': expected zero (Pi Zero / Zero W, ARMv6) or zero2 (Pi Zero 2 W, aarch64)"
            return 2
            ;;
    esac
}
