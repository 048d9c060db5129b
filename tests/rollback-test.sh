#!/usr/bin/env bash
# deploy/zerocam-rollback on a directory tree, with a stand-in systemctl:
# the start count, the roll back on the 4th start, the --running case (only
# once the new binary has started, only after ZEROCAM_ROLLBACK_AFTER
# seconds up), and nothing at all without the mark. The boot test runs it on
# the emulated Pi; this covers the decisions in a second.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
script=$here/deploy/zerocam-rollback
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0
ok() { echo "  ok   $1"; }
bad() { echo "  FAIL $1"; fails=$((fails + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# systemctl: `show -P ActiveState|ActiveEnterTimestampMonotonic` from files;
# anything else is logged.
mkdir -p "$t/bin"
cat >"$t/bin/systemctl" <<'SH'
#!/bin/sh
case "$1 $2 $3" in
    "show -P ActiveState") cat "$FAKE/state" ;;
    "show -P ActiveEnterTimestampMonotonic") cat "$FAKE/since_us" ;;
    *) echo "$*" >>"$FAKE/calls" ;;
esac
SH
chmod 755 "$t/bin/systemctl"

# A tree with an update pending: the new binary, the previous one, the mark.
fresh() {
    rm -rf "$t/root" "$t/fake"; mkdir -p "$t/root/usr/local/bin" "$t/root/var/lib/zerocam" "$t/fake"
    echo new >"$t/root/usr/local/bin/zerocam"; echo old >"$t/root/usr/local/bin/zerocam.previous"
    chmod 755 "$t/root/usr/local/bin/zerocam" "$t/root/usr/local/bin/zerocam.previous"
    echo 0 >"$t/root/var/lib/zerocam/update-pending"
    echo active >"$t/fake/state"
    : >"$t/fake/calls"
    up_for 1000
}
# The service entered active SECONDS ago (monotonic, as /proc/uptime counts).
up_for() { echo $(( ($(cut -d. -f1 /proc/uptime) - $1) * 1000000 )) >"$t/fake/since_us"; }
run() { ZEROCAM_ROOT=$t/root FAKE=$t/fake PATH=$t/bin:$PATH ZEROCAM_ROLLBACK_AFTER=${after:-300} sh "$script" "$@" 2>"$t/err"; }
bin_is() { [ "$(cat "$t/root/usr/local/bin/zerocam")" = "$1" ]; }
mark_is() { [ "$(cat "$t/root/var/lib/zerocam/update-pending" 2>/dev/null)" = "$1" ]; }
no_mark() { [ ! -e "$t/root/var/lib/zerocam/update-pending" ]; }

echo "== starts"
fresh
run; run; run
check "3 starts counted, the new binary kept" eval 'mark_is 3 && bin_is new'
run
check "the 4th start puts the previous binary back" eval 'bin_is old && no_mark'
check "and says so" grep -q 'did not reach its relay in 3 starts; rolled back to the previous binary' "$t/err"
check "the previous binary is not kept twice" test ! -e "$t/root/usr/local/bin/zerocam.previous"
fresh; echo 'x1y' >"$t/root/var/lib/zerocam/update-pending"
run
check "a garbled mark counts on from its digits" eval 'mark_is 2 && bin_is new'
fresh; rm "$t/root/usr/local/bin/zerocam.previous"; echo 3 >"$t/root/var/lib/zerocam/update-pending"
run
check "no previous binary: nothing to roll back to" eval 'bin_is new && mark_is 4'

echo "== running"
fresh
after=300 run --running
check "not started since deploy (mark 0): the old process is not judged" eval 'bin_is new && mark_is 0 && [ ! -s "$t/fake/calls" ]'
echo 1 >"$t/root/var/lib/zerocam/update-pending"; up_for 100
after=300 run --running
check "up 100 s of 300: kept" eval 'bin_is new && mark_is 1'
echo activating >"$t/fake/state"; up_for 1000
after=300 run --running
check "not active (still starting): kept" eval 'bin_is new && mark_is 1'
echo active >"$t/fake/state"
after=300 run --running
check "up 1000 s of 300: rolled back" eval 'bin_is old && no_mark'
check "and restarted" grep -qx 'restart --no-block zerocam.service' "$t/fake/calls"
check "and says so" grep -Eq 'the update ran (999|1000|1001) s without reaching its relay; rolled back' "$t/err"

echo "== no update pending"
fresh; rm "$t/root/var/lib/zerocam/update-pending"
run; after=0 run --running
check "nothing changes, nothing restarted" eval 'bin_is new && no_mark && [ ! -s "$t/fake/calls" ]'

[ $fails -eq 0 ] && echo "rollback tests: all passed" || echo "rollback tests: $fails failed"
[ $fails -eq 0 ]
