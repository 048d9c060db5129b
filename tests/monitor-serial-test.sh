#!/usr/bin/env bash
# Tests scripts/monitor-serial on a pseudo-terminal standing in for the USB
# serial adapter: zerocam's ERROR/WARN lines come out coloured, others as is.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec timeout 30 python3 - "$here/scripts/monitor-serial" <<'PY'
import os, pty, subprocess, sys, time
m, s = pty.openpty()
p = subprocess.Popen(["timeout", "5", sys.argv[1], os.ttyname(s)], stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
time.sleep(2)
os.write(m, b"00:01:02.345 ERROR stream: boom\r\n00:01:02.346 WARN  device: hmm\r\n"
            b"00:01:02.347 INFO  device: fine\r\n[    1.000] kernel line\r\n")
out = p.communicate()[0].decode()
want = ["\x1b[31;1m00:01:02.345 ERROR stream: boom\x1b[0m",
        "\x1b[33;1m00:01:02.346 WARN  device: hmm\x1b[0m",
        "\x1b[1m00:01:02.347 INFO  device: fine\x1b[0m",
        "[    1.000] kernel line"]
lines = out.splitlines()
missing = [w for w in want if w not in lines]
if missing:
    sys.exit(f"monitor-serial test FAILED: missing {missing!r} in {out!r}")
print("monitor-serial test: ok")
PY
