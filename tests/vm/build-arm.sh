#!/usr/bin/env bash
# The ARMv6 binaries for the scripts/vm-test ARM guest, copied to
# .vm-cache/arm-bin/ (later builds in target/ may overwrite the originals):
# - zerocam: the Pi Zero camera binary exactly as `scripts/build-pi zero`
#   builds it (relay feature left out), the binary under test;
# - zerocam-relay and vm_guest: the same crate for the same target with the
#   relay feature, because the guest has no network and needs its own relay
#   and viewer.
# Prints the three paths, one per line, as the last lines of stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/pi-toolchain.sh
out=$PWD/.vm-cache/arm-bin
mkdir -p "$out"
cam=$(scripts/build-pi zero | tail -1)
cp "$cam" "$out/zerocam"
target=$(pi_target zero)
pi_log "building the ARMv6 relay and viewer for the VM test"
# Helpers, not the binary under test: built with scripts/test-arm's
# profile, so std and the shared dependencies that stage built are reused.
cargo zigbuild -Zbuild-std=std,panic_abort --target "$target" --profile arm-test \
  --bin zerocam --example vm_guest --locked >&2
cp "target/$target/arm-test/zerocam" "$out/zerocam-relay"
cp "target/$target/arm-test/examples/vm_guest" "$out/vm_guest"
echo "$out/zerocam"
echo "$out/zerocam-relay"
echo "$out/vm_guest"
