#!/usr/bin/env bash
# Tests scripts/monitor-serial on a pseudo-terminal standing in for the USB
# serial adapter: zerocam's ERROR/WARN lines come out coloured, others as is.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec timeout 60 python3 - "$here/scripts/monitor-serial" <<'PY'
import os, pty, select, signal, subprocess, sys, time
m, s = pty.openpty()
# Its own process group, so that its reader goes with it at the end.
p = subprocess.Popen([sys.argv[1], os.ttyname(s)], stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
want = ["\x1b[31;1m00:01:02.345 ERROR stream: boom\x1b[0m",
        "\x1b[33;1m00:01:02.346 WARN  device: hmm\x1b[0m",
        "\x1b[1m00:01:02.347 INFO  device: fine\x1b[0m",
        "[    1.000] kernel line"]
# The monitor may still be starting (stty, its reader): the "device" says
# its lines again every half second until they come out, or 30 s pass.
out, deadline, next_write = b"", time.time() + 30, 0.0
while time.time() < deadline:
    if time.time() >= next_write:
        os.write(m, b"00:01:02.345 ERROR stream: boom\r\n00:01:02.346 WARN  device: hmm\r\n"
                    b"00:01:02.347 INFO  device: fine\r\n[    1.000] kernel line\r\n")
        next_write = time.time() + 0.5
    if select.select([p.stdout], [], [], 0.1)[0]:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    if all(w in out.decode(errors="replace").splitlines() for w in want):
        break
os.killpg(p.pid, signal.SIGKILL)
p.wait()
lines = out.decode(errors="replace").splitlines()
missing = [w for w in want if w not in lines]
if missing:
    sys.exit(f"monitor-serial test FAILED: missing {missing!r} in {out!r}")
print("monitor-serial test: ok")
PY
