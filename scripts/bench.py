#!/usr/bin/env python3
"""zerocam's benchmark driver (run through scripts/bench, which builds first).

Prints markdown tables; with --write, also rewrites BENCHMARKS.md. Every
process it starts is stopped by its own pid; every wait has a deadline; the
network namespaces it creates (zcb-cam, zcb-relay) are deleted at the end.
"""

import datetime
import json
import threading
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZEROCAM = os.path.join(ROOT, "target/release/zerocam")
TOOL = os.path.join(ROOT, "bench/target/release/zerocam-bench")
TOKEN = "bench-token-0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

args = sys.argv[1:]
QUICK = "--quick" in args
WRITE = "--write" in args
ONLY = None
if "--only" in args:
    ONLY = set(args[args.index("--only") + 1].split(","))

started = []  # Popen objects we own


def want(part):
    return ONLY is None or part in ONLY


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_s(pid):
    """user+sys seconds of a process (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid):
    """(VmRSS, VmHWM) in MiB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def spawn(cmd, netns=None, **kw):
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = subprocess.Popen(cmd, **kw)
    started.append(p)
    return p


def stop(p, timeout=5):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def child_pid(p, netns):
    """The pid of the real program (under `ip netns exec` it is exec'd in place)."""
    return p.pid


def http_get(host_port, path):
    """An HTTP/1.0 GET on loopback: the whole response, headers included."""
    h, p = host_port.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), 5)
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    return data


def metrics(host_port, netns=None):
    """The relay's /metrics as {name{labels}: value}."""
    req = b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n"
    if netns:
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "python3", "-c",
             "import socket,sys;h,p=sys.argv[1].rsplit(':',1);s=socket.create_connection((h,int(p)),5);"
             "s.sendall(sys.argv[2].encode());d=b''\n"
             "while True:\n c=s.recv(65536)\n if not c: break\n d+=c\nsys.stdout.write(d.decode())",
             host_port, req.decode()],
            capture_output=True, text=True, timeout=10).stdout
    else:
        out = http_get(host_port, "/metrics").decode(errors="replace")
    m = {}
    for line in out.split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                m[k] = float(v)
            except ValueError:
                pass
    return m


def metric(m, name, camera="bench"):
    return sum(v for k, v in m.items()
               if k.startswith(name) and f'camera="{camera}"' in k)


def wait_http(host_port, netns=None, deadline=15):
    end = time.time() + deadline
    while time.time() < end:
        try:
            metrics(host_port, netns)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"relay at {host_port} did not come up within {deadline} s")


def view(urls, kind, n, secs, warmup=2.0, on_window=None, netns=None):
    """Runs the load generator, its viewers spread over `urls`; calls
    on_window('start'|'end') at the window edges. Its JSON result."""
    cmd = [TOOL, "view", "--kind", kind, "--viewers", str(n), "--secs", str(secs),
           "--warmup", str(warmup)]
    for u in urls:
        cmd += ["--url", u]
    p = spawn(cmd, netns=netns, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result, tool_cpu = None, None
    deadline = time.time() + warmup + secs + 60
    t_start = None
    for line in p.stdout:
        line = line.strip()
        if line == "WINDOW START":
            t_start = cpu_s(p.pid)
            if on_window:
                on_window("start")
        elif line == "WINDOW END":
            tool_cpu = cpu_s(p.pid) - (t_start or 0)
            if on_window:
                on_window("end")
        elif line.startswith("{"):
            result = json.loads(line)
        if time.time() > deadline:
            break
    try:
        p.wait(max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        p.kill()
    err = p.stderr.read()
    if result is None:
        raise RuntimeError(f"load generator failed: {err[-2000:]}")
    if err.strip():
        log("load generator: " + err.strip().splitlines()[0])
    result["tool_cpu_s"] = tool_cpu
    return result


class Rig:
    """A relay plus one camera streaming to it (optionally in namespaces)."""

    def __init__(self, source="pattern", size="1280x720", fps=30, relay_ns=None, cam_ns=None,
                 relay_host="127.0.0.1", cam_args=(), stats_interval=5):
        self.port = free_port() if relay_ns is None else 18080
        self.hp = f"{relay_host}:{self.port}"
        self.relay_ns = relay_ns
        listen = f"{relay_host}:{self.port}"
        self.relay_log = open(f"/tmp/zcb-relay-{os.getpid()}.log", "w")
        self.relay = spawn([ZEROCAM, "relay", "--listen", listen, "--token", TOKEN,
                            "--log-level", "warn"], netns=relay_ns,
                           stdout=self.relay_log, stderr=subprocess.STDOUT)
        wait_http(self.hp, relay_ns)
        self.cam_log_path = f"/tmp/zcb-cam-{os.getpid()}-{source}.log"
        self.cam_log = open(self.cam_log_path, "w")
        self.cam = spawn([ZEROCAM, "stream", "--relay", f"ws://{self.hp}/ingest/bench",
                          "--camera", "bench", "--token", TOKEN, "--source", source,
                          "--size", size, "--fps", str(fps), "--stats-interval", str(stats_interval),
                          "--log-level", "info", *cam_args], netns=cam_ns,
                         stdout=self.cam_log, stderr=subprocess.STDOUT)
        end = time.time() + 20
        while metric(metrics(self.hp, relay_ns), "zerocam_camera_connects_total") < 1:
            if time.time() > end or self.cam.poll() is not None:
                raise RuntimeError(f"camera did not connect; see {self.cam_log_path}")
            time.sleep(0.2)

    def view(self, kind, n, secs, warmup=2.0, on_window=None, netns=None):
        """Runs the load generator; calls on_window('start'|'end') at the window edges."""
        return view([f"http://{self.hp}/cameras/bench"], kind, n, secs, warmup, on_window,
                    netns or self.relay_ns)

    def camera_stats(self):
        """Last stats line of the camera's log."""
        self.cam_log.flush()
        last = ""
        with open(self.cam_log_path) as f:
            for line in f:
                if "stats:" in line:
                    last = line.strip()
        return last

    def close(self):
        stop(self.cam)
        stop(self.relay)
        self.cam_log.close()
        self.relay_log.close()


# ------------------------------------------------------------------ parts --

out = []  # markdown blocks


def emit(block):
    print(block, flush=True)
    out.append(block)


def part_encode():
    log("encode bench (cargo bench in bench/)")
    r = subprocess.run(["cargo", "bench", "--quiet", "--bench", "encode", "--"]
                       + (["--quick"] if QUICK else []),
                       cwd=os.path.join(ROOT, "bench"), capture_output=True, text=True,
                       timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    emit(r.stdout.strip() + "\n")


def part_quality():
    log("image quality and size across qualities (zerocam-bench quality)")
    r = subprocess.run([TOOL, "quality", "--size", "640x480"], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    emit("### Picture quality and size: zerocam's encoder, jpeg-encoder, libjpeg-turbo\n\n"
         "The natural-looking 640×480 frame (YUYV, 4:2:0) encoded by each at the same quality "
         "setting. Each JPEG is decoded to YUV by libjpeg-turbo and compared with the source planes "
         "(PSNR of Y, and of Cb and Cr together; no colour conversion in between), and decoded to "
         "RGB by libjpeg-turbo and by jpeg-decoder, two independent decoders, whose largest "
         "per-pixel difference is the last column. Sizes and PSNR are relative to libjpeg-turbo "
         "(the goal for zerocam's encoder: PSNR within 0.1 dB, size within ±3 %).\n\n"
         + r.stdout.strip() + "\n")


def callgrind(what, frames, env=None):
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        TOOL, "instr", "--what", what, "--size", "1280x720",
                        "--frames", str(frames)],
                       capture_output=True, text=True, timeout=1200,
                       env={**os.environ, **(env or {})})
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"callgrind {what}: {r.stderr[-2000:]}")
    return int(m.group(1))


def instr_per_frame(what, env=None):
    a, b = 2, 6
    return (callgrind(what, b, env) - callgrind(what, a, env)) / (b - a)


def part_instructions():
    log("instructions per frame (callgrind)")
    rows = [
        ("zerocam's encoder (scalar)", "zerocam", None),
        ("jpeg-encoder, zerocam's reference (scalar)", "reference", None),
        ("libjpeg-turbo, SIMD", "turbo", None),
        ("libjpeg-turbo, no SIMD", "turbo", {"JSIMD_FORCENONE": "1"}),
        ("zerocam MJPEG pass-through (check + COM insert)", "passthrough", None),
    ]
    res = [(name, instr_per_frame(what, env)) for name, what, env in rows]
    ref = res[0][1]
    lines = ["### Instructions per frame (callgrind), 1280×720, quality 80\n",
             "Counted with `valgrind --tool=callgrind` (`perf stat -e instructions` is not supported "
             "in this VM): each program runs with 2 and with 6 frames and the difference is divided "
             "by 4, so start-up cancels out. Instruction counts do not depend on the machine's load. "
             "Same natural-looking frame as the encode table.\n",
             "| what | instructions/frame | relative to zerocam's encoder |",
             "|---|---:|---:|"]
    for name, n in res:
        lines.append(f"| {name} | {n/1e6:.2f} M | {n/ref:.4f}× |")
    emit("\n".join(lines) + "\n")


# Instructions per clock assumed for the Pi Zero's ARM1176JZF-S when turning
# instruction counts into frames/s: a single-issue, in-order core (IPC ≤ 1)
# whose JPEG loops stall on multiplies (2–3 cycles), load-use hazards,
# mispredicted branches in the Huffman coder and a 16 KB data cache.
ARM_IPC = 0.5
ARM_HZ = 1e9
# The Zero 2 W's Cortex-A53 issues two instructions a clock in order; with
# NEON and Huffman code's dependent chains, 0.8 is a middle assumption.
A53_IPC = 0.8
TURBO_NEON = "libjpeg-turbo 3.1, NEON"


def arm_count(cmd, plugin, frames, qemu=("qemu-arm", "-cpu", "arm1176"), env=None):
    """Guest instructions `cmd ... frames` executes under qemu-arm -cpu arm1176 (or `qemu`)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "count")
        r = subprocess.run(list(qemu) + ["-plugin", f"{plugin},out={out}"]
                           + cmd + [str(frames)], capture_output=True, text=True,
                           env=None if env is None else {**os.environ, **env})
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
        return int(open(out).read())


def part_arm():
    log("ARMv6 instruction counts (bench/arm/build.sh, then qemu-arm -cpu arm1176 with a counting plugin)")
    built = subprocess.run([os.path.join(ROOT, "bench/arm/build.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError("bench/arm/build.sh failed:\n" + built.stderr[-3000:])
    paths = dict(l.split("=", 1) for l in built.stdout.split() if "=" in l)
    zc, turbo, plugin = paths["zerocam"], paths["turbo"], paths["plugin"]
    zc64, turbo64 = paths["zerocam64"], paths["turbo64"]
    a53 = ("qemu-aarch64", "-cpu", "cortex-a53")
    rows64 = []
    rows = []
    stages = {}
    turbo_label = "libjpeg-turbo 3.1, C, no SIMD"
    with tempfile.TemporaryDirectory() as d:
        for w, h in ((640, 480), (1280, 720)):
            frame = os.path.join(d, f"{w}x{h}.yuyv")
            subprocess.run([TOOL, "frame", "--size", f"{w}x{h}", "--out", frame], check=True)
            size = f"{w}x{h}"
            for label, fmt, cmd in (
                    ("zerocam's encoder", "YUYV", [zc, "encode", frame, size]),
                    ("jpeg-encoder (the reference)", "YUYV", [zc, "reference", frame, size]),
                    (turbo_label + " (incl. YUYV → I420 repack)", "YUYV", [turbo, frame, str(w), str(h)]),
                    ("zerocam's encoder", "YU12", [zc, "encode", frame, size, "yu12"]),
                    (turbo_label, "YU12", [turbo, frame, str(w), str(h), "i420"]),
                    ("zerocam: copy into a hardware encoder's buffer", "YUYV", [zc, "copy", frame, size]),
                    ("zerocam MJPEG pass-through (check + COM insert)", "MJPEG", [zc, "passthrough", frame, size])):
                log(f"  {w}x{h}: {label}, {fmt}")
                n = (arm_count(cmd, plugin, 6) - arm_count(cmd, plugin, 2)) / 4
                rows.append((f"{w}×{h}", fmt, label, n))
            scalar = {"JSIMD_FORCENONE": "1"}
            for label, fmt, cmd, env in (
                    ("zerocam's encoder (neon)", "YUYV", [zc64, "encode", frame, size], None),
                    ("jpeg-encoder (the reference)", "YUYV", [zc64, "reference", frame, size], None),
                    (TURBO_NEON + " (incl. YUYV → I420 repack)", "YUYV", [turbo64, frame, str(w), str(h)], None),
                    ("zerocam's encoder (neon)", "YU12", [zc64, "encode", frame, size, "yu12"], None),
                    (TURBO_NEON, "YU12", [turbo64, frame, str(w), str(h), "i420"], None),
                    ("libjpeg-turbo 3.1, C, no SIMD (`JSIMD_FORCENONE=1`)", "YU12",
                     [turbo64, frame, str(w), str(h), "i420"], scalar)):
                log(f"  {w}x{h}: aarch64: {label}, {fmt}")
                n = (arm_count(cmd, plugin, 6, a53, env) - arm_count(cmd, plugin, 2, a53, env)) / 4
                rows64.append((f"{w}×{h}", fmt, label, n))
            for fmt, extra in (("YUYV", []), ("YU12", ["yu12"])):
                log(f"  {w}x{h}: zerocam's encoder per stage, {fmt}")
                for stage in ("fetch", "dct", "quantize", "encode"):
                    cmd = [zc, stage, frame, size] + extra
                    n = (arm_count(cmd, plugin, 6) - arm_count(cmd, plugin, 2)) / 4
                    stages[(f"{w}×{h}", fmt, "ARMv6", stage)] = n
                    cmd = [zc64, stage, frame, size] + extra
                    n = (arm_count(cmd, plugin, 6, a53) - arm_count(cmd, plugin, 2, a53)) / 4
                    stages[(f"{w}×{h}", fmt, "aarch64", stage)] = n
    lines = ["### What a Pi Zero really costs: ARMv6 instructions per frame\n",
             "The encoders built for the Pi Zero's ARM1176JZF-S (ARMv6 + VFPv2, no NEON) and run under "
             "`qemu-arm -cpu arm1176` with a TCG plugin counting executed guest instructions "
             "(`bench/arm/insncount.c`; `bench/arm/build.sh` builds everything): zerocam's "
             "`tools/encode_frames.rs` with the shipped `pi` profile (zerocam's own encoder, "
             "`src/encode/yuvjpeg/`, and `jpeg-encoder`, the reference it is tested against), and "
             "libjpeg-turbo's C code compiled by zig cc with `-mcpu=arm1176jzf_s -O3`, driven through "
             "its TurboJPEG API (`bench/arm/turbo_frames.c`: from YUYV with the same 4:2:0 repack as "
             "the x86 table; from YU12 straight from the planes). Each runs with 2 and with 6 frames; "
             "the difference over 4 is per frame. Same natural-looking frame, quality 80, 4:2:0. "
             "Counts are exact and do not depend on this machine's load.\n",
             f"Predicted frames/s at {ARM_HZ/1e9:.0f} GHz assume {ARM_IPC} instructions per clock "
             "(a single-issue in-order core; see `ARM_IPC` in scripts/bench.py for why); the "
             "prediction scales linearly with it: at IPC 0.7, multiply by 1.4. It is the CPU alone: "
             "capture, the WebSocket and the kernel take their share on top.\n",
             "| size | input | what | instructions/frame | relative to libjpeg-turbo C, same input | predicted frames/s, 1 core at 1 GHz |",
             "|---|---|---|---:|---:|---:|"]
    tj = {(size, fmt): n for size, fmt, label, n in rows if label.startswith(turbo_label)}
    for size, fmt, label, n in rows:
        ref = tj.get((size, fmt), tj[(size, "YUYV")])
        # A copy's time is set by memory bandwidth, which a count cannot see.
        fps = "– (memory-bound)" if "copy" in label else f"{ARM_HZ * ARM_IPC / n:,.1f}"
        lines.append(f"| {size} | {fmt} | {label} | {n/1e6:.2f} M | {n/ref:.3f}× | {fps} |")
    ours = {(size, fmt): n for size, fmt, label, n in rows if label == "zerocam's encoder"}
    ratios = ", ".join(f"{ours[k]/tj[k]:.2f}× at {k[0]} {k[1]}" for k in ours)
    lines.append("")
    lines.append(f"On the Pi Zero, zerocam's encoder executes {ratios} the instructions of "
                 f"libjpeg-turbo's scalar C (the goal: at most 0.5×). An MJPEG camera (pass-through) "
                 f"or the hardware encoder (`source.encoder`) costs a small fraction of either.")
    lines += ["", "Where zerocam's encoder spends them, per stage, on the Pi Zero (ARMv6 assembly) and "
              "the Zero 2 W (aarch64, NEON) (`encode_frames fetch|dct|quantize`: the encoder's own "
              "block loop stopped after that stage; each column is the difference to the one before, "
              "in instructions per frame and share of the whole):\n",
              "| size | input | target | fetch from the buffer | DCT | quantise | Huffman + headers | whole |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for target in ("ARMv6", "aarch64"):
        for (size, fmt) in ours:
            cum = [stages[(size, fmt, target, st)] for st in ("fetch", "dct", "quantize", "encode")]
            whole = cum[-1]
            parts = [cum[0]] + [b - a for a, b in zip(cum, cum[1:])]
            cells = " | ".join(f"{p/1e6:.2f} M ({p/whole*100:.0f} %)" for p in parts)
            lines.append(f"| {size} | {fmt} | {target} | {cells} | {whole/1e6:.2f} M |")
    lines += ["", "### The Zero 2 W: aarch64 instructions per frame\n",
              "The same frames, built for the Zero 2 W's Cortex-A53 (`aarch64-unknown-linux-musl`, "
              "the `pi` profile; libjpeg-turbo by zig cc with `-mcpu=cortex_a53 -O3` and its NEON code, "
              "`WITH_SIMD=1`) and counted under `qemu-aarch64 -cpu cortex-a53` with the same plugin. "
              "zerocam's encoder runs its NEON path there (`src/encode/yuvjpeg/neon.rs`). "
              f"Predicted frames/s at {ARM_HZ/1e9:.0f} GHz assume {A53_IPC} instructions per clock "
              "(a dual-issue in-order core; see `A53_IPC` in scripts/bench.py); with "
              "`--encode-threads 4` the four cores encode four frames at once, so the last column is "
              "four times the first: an upper bound, since capture, the WebSocket and memory "
              "bandwidth share the cores.\n",
              "| size | input | what | instructions/frame | relative to libjpeg-turbo NEON, same input "
              "| predicted frames/s, 1 core | with `--encode-threads 4` |",
              "|---|---|---|---:|---:|---:|---:|"]
    neon = {(size, fmt): n for size, fmt, label, n in rows64 if label.startswith(TURBO_NEON)}
    for size, fmt, label, n in rows64:
        fps = ARM_HZ * A53_IPC / n
        lines.append(f"| {size} | {fmt} | {label} | {n/1e6:.2f} M | {n/neon[(size, fmt)]:.3f}× "
                     f"| {fps:,.1f} | {4 * fps:,.1f} |")
    ours64 = {(size, fmt): n for size, fmt, label, n in rows64 if label.startswith("zerocam")}
    ratios = ", ".join(f"{ours64[k]/neon[k]:.2f}× at {k[0]} {k[1]}" for k in ours64)
    lines += ["", f"On the Zero 2 W, zerocam's encoder executes {ratios} the instructions of "
              f"libjpeg-turbo with its NEON code (the goal: at most 1×)."]
    emit("\n".join(lines) + "\n")


def part_cost():
    secs = 10 if QUICK else 30
    rows = []
    for label, source in (("encode (YUYV in: pattern source)", "pattern"),
                          ("pass-through (MJPEG in: `pattern-mjpeg`)", "pattern-mjpeg")):
        log(f"camera cost: {source}, {secs} s")
        rig = Rig(source=source)
        try:
            marks = {}

            def on_window(edge):
                marks[edge] = (cpu_s(rig.cam.pid), metric(metrics(rig.hp), "zerocam_frames_in_total"),
                               time.time())

            v = rig.view("ws", 1, secs, on_window=on_window)
            rss, hwm = rss_mib(rig.cam.pid)
            (c0, f0, t0), (c1, f1, t1) = marks["start"], marks["end"]
            frames = max(f1 - f0, 1)
            rows.append((label, (c1 - c0) / frames * 1e3, frames / (t1 - t0),
                         (c1 - c0) / (t1 - t0) * 100, rss, hwm, rig.camera_stats()))
        finally:
            rig.close()
    enc, pt = rows
    lines = [f"### Camera cost: `zerocam stream` (release) at 1280×720, 30 fps, to a relay on loopback\n",
             f"CPU is user+sys of the whole camera process (capture, encode, WebSocket) from "
             f"`/proc/<pid>/stat` over a {secs} s window, divided by the frames the relay received in "
             f"that window; one WebSocket viewer keeps the camera unpaused. `pattern-mjpeg` replays "
             f"pre-encoded pattern frames as MJPEG so the real pass-through path runs (there is no "
             f"MJPEG camera here); it leaves out a real device's V4L2 ioctls. The encode row includes "
             f"drawing the test pattern (a 1.8 MB copy plus text per frame), which a camera does not need; "
             f"the pattern's flat bars also encode faster than a real scene.\n",
             "| mode | CPU ms/frame | frames/s | CPU % of one core | RSS MiB (peak) | relative CPU/frame |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.2f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} ({r[5]:.1f}) | "
                     f"{r[1]/pt[1]:.1f}× pass-through |")
    lines.append("")
    lines.append(f"Camera's own stats line (encode): `{enc[6][-200:]}`")
    emit("\n".join(lines) + "\n")


def drops(m0, m1):
    """Relay drop counters gained between two /metrics reads, by reason."""
    parts = []
    for reason in ("camera_seq_gap", "viewer_skipped", "rejected"):
        key = f'zerocam_drops_total{{camera="bench",reason="{reason}"}}'
        parts.append(f"{reason} +{m1.get(key, 0) - m0.get(key, 0):.0f}")
    return "relay: " + ", ".join(parts)


def latency_row(label, v, extra=""):
    return (f"| {label} | {v['fps_mean']:.1f} | {v['lat_p50_ms']:.1f} | {v['lat_p99_ms']:.1f} | "
            f"{v['lat_max_ms']:.1f} | {v['gaps']} | {extra} |")


NS_CAM, NS_RELAY = "zcb-cam", "zcb-relay"


def netns_up(rate):
    netns_down()
    cmds = [
        ["ip", "netns", "add", NS_CAM],
        ["ip", "netns", "add", NS_RELAY],
        ["ip", "link", "add", "zcb-c", "netns", NS_CAM, "type", "veth", "peer", "name", "zcb-r",
         "netns", NS_RELAY],
        ["ip", "-n", NS_CAM, "addr", "add", "10.77.0.1/24", "dev", "zcb-c"],
        ["ip", "-n", NS_RELAY, "addr", "add", "10.77.0.2/24", "dev", "zcb-r"],
        ["ip", "-n", NS_CAM, "link", "set", "lo", "up"],
        ["ip", "-n", NS_RELAY, "link", "set", "lo", "up"],
        ["ip", "-n", NS_CAM, "link", "set", "zcb-c", "up"],
        ["ip", "-n", NS_RELAY, "link", "set", "zcb-r", "up"],
    ]
    for c in cmds:
        subprocess.run(c, check=True, capture_output=True, timeout=10)
    return shape_uplink("add", rate)


def shape_uplink(verb, rate):
    """Camera → relay: a slow uplink like a Pi Zero's Wi-Fi on a bad day
    (`tc qdisc add` or `change`). netem when the kernel has it; else a token
    bucket (tbf) with a deep 1 s queue, so that it is the camera, not the
    qdisc, that bounds latency. Which one, for the tables."""
    tc = ["ip", "netns", "exec", NS_CAM, "tc", "qdisc", verb, "dev", "zcb-c", "root"]
    if subprocess.run(tc + ["netem", "rate", rate, "delay", "10ms", "limit", "1000"],
                      capture_output=True, timeout=10).returncode == 0:
        return f"`tc netem rate {rate} delay 10ms`"
    subprocess.run(tc + ["tbf", "rate", rate, "burst", "16kb", "latency", "1s"],
                   check=True, capture_output=True, timeout=10)
    return f"`tc tbf rate {rate} burst 16kb latency 1s` (this kernel has no netem)"


def netns_down():
    for ns in (NS_CAM, NS_RELAY):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def part_threads():
    secs = 10 if QUICK else 20
    rows = []
    for n in (1, 2, 4):
        log(f"encode threads: {n}, 1280x720, {secs} s")
        rig = Rig(fps=120, cam_args=("--encode-threads", str(n)))
        try:
            v = rig.view("ws", 1, secs)
            cam = rig.camera_stats()
        finally:
            rig.close()
        rows.append((n, v, cam))
    base = rows[0][1]
    lines = ["### Software encode on more than one core: 1280×720 pattern asked for at 120 fps\n",
             f"The camera (`--encode-threads N`) encodes as fast as its encoders allow; frames/s "
             f"and capture → viewer latency at one WebSocket viewer on loopback, {secs} s each. "
             f"This machine has {os.cpu_count()} cores shared with the relay and the viewer, so "
             f"4 threads cannot beat 2 here; on a Zero 2 W (4 cores) they can. Added latency is "
             f"p50 against one thread's (the copy into the encoder's buffer, and waiting for a "
             f"free encoder).\n",
             "| encode threads | frames/s at viewer | × 1 thread | p50 ms | p99 ms | added p50 ms | camera |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for n, v, cam in rows:
        lines.append(f"| {n} | {v['fps_mean']:.1f} | {v['fps_mean']/max(base['fps_mean'], 0.1):.2f} | "
                     f"{v['lat_p50_ms']:.1f} | {v['lat_p99_ms']:.1f} | "
                     f"{v['lat_p50_ms'] - base['lat_p50_ms']:+.1f} | {stats_tail(cam)} |")
    emit("\n".join(lines) + "\n")


def part_latency():
    secs = 10 if QUICK else 30
    log(f"latency on loopback, {secs} s")
    rig = Rig()
    try:
        m0 = metrics(rig.hp)
        v = rig.view("ws", 1, secs)
        m1 = metrics(rig.hp)
        cam = rig.camera_stats()
    finally:
        rig.close()
    lines = ["### Latency: capture (COM `ts`) → viewer receipt, 1280×720 at 30 fps\n",
             "One WebSocket viewer; the camera, relay and viewer share this machine's clock. "
             "`seq gaps` are frames the viewer never saw (dropped by the camera's latest-frame slot "
             "or the relay). Drop counters cover the whole run including the viewer's warm-up; the camera's figures "
             "are its last 5-second stats line.\n",
             "| link | frames/s at viewer | p50 ms | p99 ms | max ms | seq gaps | drops counted |",
             "|---|---:|---:|---:|---:|---:|---|",
             latency_row(f"loopback, {secs} s", v,
                         f"{drops(m0, m1)}; camera: {stats_tail(cam)}")]
    if os.geteuid() != 0:
        lines.append("\n(The throttled-link run needs root for `ip netns`/`tc`; skipped.)")
        emit("\n".join(lines) + "\n")
        return
    tsecs = 15 if QUICK else 60
    rate = "4mbit"
    log(f"latency through a {rate} shaped link, {tsecs} s")
    shaper = netns_up(rate)
    try:
        rig = Rig(relay_ns=NS_RELAY, cam_ns=NS_CAM, relay_host="10.77.0.2")
        try:
            m0 = metrics(rig.hp, NS_RELAY)
            v2 = rig.view("ws", 1, tsecs)
            m1 = metrics(rig.hp, NS_RELAY)
            cam = rig.camera_stats()
        finally:
            rig.close()
    finally:
        netns_down()
    lines.append(latency_row(f"{rate} uplink between two netns, {shaper}, {tsecs} s", v2,
                             f"{drops(m0, m1)}; camera: {stats_tail(cam)}"))
    lines.append("")
    lines.append(f"The throttled link carries {v2['mbyte_s']*8:.2f} Mbit/s of JPEG "
                 f"({v2['fps_mean']:.1f} of 30 frames/s); the camera drops the rest in its "
                 f"latest-frame slot and counts them, so latency stays bounded: p99 "
                 f"{v2['lat_p99_ms']/max(v['lat_p99_ms'],0.1):.0f}× loopback's, max {v2['lat_max_ms']:.0f} ms "
                 f"over {tsecs} s.")
    emit("\n".join(lines) + "\n")


def camera_qualities(path, absolute=False):
    """(seconds since the first, encoding quality) of every stats line in a camera log;
    absolute: seconds since midnight UTC (the log's clock) instead."""
    out, t0 = [], None
    for line in open(path):
        m = re.match(r"(\d+):(\d+):(\d+\.\d+) INFO +stats: .*", line)
        if not m or "paused" in line:
            continue
        t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
        t0 = t if t0 is None else t0
        q = re.search(r", q (\d+)/(\d+)", line)
        out.append((t if absolute else t - t0, int(q.group(1)) if q else None))
    return out


def changes_per_minute(qs, after):
    """Quality changes per minute among stats lines from `after` seconds on."""
    tail = [(t, q or 80) for t, q in qs if t >= after]
    if len(tail) < 2:
        return 0.0
    changes = sum(1 for a, b in zip(tail, tail[1:]) if a[1] != b[1])
    return changes * 60.0 / max(tail[-1][0] - tail[0][0], 1.0)


def settled_after(qs, at, hold=5.0, configured=80):
    """Seconds from `at` until the quality last changed before holding for `hold` s,
    and that quality; None when it never held that long."""
    tail = [(t, q or configured) for t, q in qs if t >= at]
    for i, (t, q) in enumerate(tail):
        later = [p for p in tail[i:] if p[0] <= t + hold]
        if later and later[-1][0] >= t + hold - 1.5 and all(p[1] == q for p in later):
            return t - at, q
    return None


def step_run(quality):
    """One run on a link that steps 8 → 2 → 8 Mbit/s every 20 s; its paragraph."""
    log(f"adapt: 8 → 2 → 8 Mbit/s steps, quality {quality}")
    netns_up("8mbit")
    try:
        rig = Rig(source="pattern:scene", size="640x480", fps=30, relay_ns=NS_RELAY, cam_ns=NS_CAM,
                  relay_host="10.77.0.2", stats_interval=1,
                  cam_args=("--adapt", "quality", "--quality", str(quality)))
        steps = []
        def shape(rate):
            shape_uplink("change", rate)
            steps.append((time.time(), rate))
        def on_window(edge):
            if edge == "start":
                threading.Timer(20, shape, ("2mbit",)).start()
                threading.Timer(40, shape, ("8mbit",)).start()
        try:
            v = rig.view("ws", 1, 60, warmup=5, on_window=on_window)
            qs = [(t, q or quality) for t, q in camera_qualities(rig.cam_log_path)]
            qs_abs = [(t, q or quality)
                      for t, q in camera_qualities(rig.cam_log_path, absolute=True)]
        finally:
            rig.close()
    finally:
        netns_down()
    text = (f"A link stepping 8 → 2 → 8 Mbit/s every 20 s (640×480 at 30, quality {quality}, "
            f"adapt = quality): {v['fps_mean']:.1f} frames/s at the viewer, p99 "
            f"{v['lat_p99_ms']:.0f} ms, the oldest frame a viewer saw {v['lat_max_ms']:.0f} ms old. "
            f"Quality over time (camera stats, one a second): "
            + ", ".join(f"{t:.0f} s: {q}" for t, q in qs[::4]) + ".\n")
    settles = []
    for at, rate in steps:
        st = settled_after(qs_abs, at % 86400, configured=quality)
        settles.append(f"to {rate}: quality {st[1]} held from {st[0]:.0f} s after the step" if st
                       else f"to {rate}: not settled")
    text += "Settling after each step (the quality unchanged for 5 s): " + "; ".join(settles) + "."
    if len(steps) == 2:
        down, up = steps[0][0] % 86400, steps[1][0] % 86400
        before = [q for t, q in qs_abs if t < down]
        if before:
            target = before[-1]
            back = next((t - up for t, q in qs_abs if t >= up and q >= target), None)
            what = "the configured quality" if target == quality else "the quality it held before the drop"
            text += (f" Back to {target} ({what}) "
                     + (f"{back:.0f} s after the link recovered." if back is not None
                        else "not within the run."))
    return text


def part_adapt():
    """relay.adapt = quality against off on shaped links, natural-looking frames."""
    if os.geteuid() != 0:
        emit("### Fitting the link: relay.adapt\n\n(Needs root for `ip netns`/`tc`; skipped.)\n")
        return
    secs = 15 if QUICK else 40
    settle = 8 if QUICK else 15
    lines = ["### Fitting the link: `relay.adapt = \"quality\"` against `\"off\"`\n",
             f"The camera streams `--source pattern:scene` (frames of a real picture's size) from one "
             f"network namespace to a relay in another over a shaped uplink; one WebSocket viewer on "
             f"the relay's side. Each row: {settle} s to settle, then {secs} s measured. Latency is "
             f"capture (COM `ts`) → viewer receipt; quality is the camera's encoding quality at the "
             f"end (its stats line); frame size is bytes over frames at the viewer.\n",
             "| link | camera | adapt | frames/s at viewer | p50 ms | p99 ms | quality | mean frame | quality changes/min |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for size, fps, rate in (("640x480", 30, "4mbit"), ("1280x720", 30, "8mbit")):
        for mode in ("quality", "off"):
            log(f"adapt: {size}@{fps} on {rate}, {mode}")
            shaper = netns_up(rate)
            try:
                rig = Rig(source="pattern:scene", size=size, fps=fps, relay_ns=NS_RELAY,
                          cam_ns=NS_CAM, relay_host="10.77.0.2", cam_args=("--adapt", mode),
                          stats_interval=1)
                try:
                    v = rig.view("ws", 1, secs, warmup=settle)
                    qs = camera_qualities(rig.cam_log_path)
                finally:
                    rig.close()
            finally:
                netns_down()
            q = next((q for _, q in reversed(qs)), None)
            frame_kb = v["mbyte_s"] * 1e3 / max(v["fps_mean"], 0.1)
            lines.append(f"| {rate}, {shaper} | "
                         f"{size.replace('x', '×')} at {fps} | {mode} | {v['fps_mean']:.1f} | "
                         f"{v['lat_p50_ms']:.0f} | {v['lat_p99_ms']:.0f} | {q if q else 80} | "
                         f"{frame_kb:.0f} kB | {changes_per_minute(qs, settle):.1f} |")
    # A link that steps 8 → 2 → 8 Mbit/s every 20 s: at the default quality
    # (more than 8 Mbit/s carries at 640×480 and 30 frames/s) and at one the
    # fast link carries.
    for quality in (80, 70):
        lines.append("")
        lines.append(step_run(quality))
    # Loopback: nothing to adapt to.
    for mode in ("quality", "off"):
        log(f"adapt: loopback, {mode}")
        rig = Rig(source="pattern:scene", size="1280x720", fps=30, cam_args=("--adapt", mode),
                  stats_interval=1)
        try:
            v = rig.view("ws", 1, secs, warmup=5)
            qs = camera_qualities(rig.cam_log_path)
        finally:
            rig.close()
        lines.append("")
        lines.append(f"Loopback, 1280×720 at 30, adapt = {mode}: {v['fps_mean']:.1f} frames/s, p50 "
                     f"{v['lat_p50_ms']:.0f} ms, p99 {v['lat_p99_ms']:.0f} ms; stats lines with the "
                     f"quality below 80: {sum(1 for _, q in qs if q)} of {len(qs)}.")
    emit("\n".join(lines) + "\n")


def stats_tail(line):
    m = re.search(r"stats: (.*)", line)
    return f"`{m.group(1)}`" if m else "(no stats line)"


def part_fanout():
    secs = 5 if QUICK else 15
    counts = [10, 100, 1000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want_fd = 8192
    if soft < want_fd:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want_fd, hard) if hard > 0 else want_fd, hard))
    rows = []
    for kind in ("ws", "mjpeg"):
        for n in counts:
            # A fresh relay and camera per row, so RSS belongs to this row.
            log(f"fan-out: {n} {kind} viewers, {secs} s")
            rig = Rig()
            try:
                marks = {}

                def on_window(edge):
                    marks[edge] = (cpu_s(rig.relay.pid),
                                   metric(metrics(rig.hp), "zerocam_frames_in_total"), time.time())

                v = rig.view(kind, n, secs, warmup=3.0 if n >= 1000 else 2.0,
                             on_window=on_window)
                (c0, f0, t0), (c1, f1, t1) = marks["start"], marks["end"]
                rss, hwm = rss_mib(rig.relay.pid)
                cam_fps = (f1 - f0) / (t1 - t0)
                rows.append((kind, n, v, cam_fps, (c1 - c0) / (t1 - t0) * 100, rss, hwm,
                             v["tool_cpu_s"] / (t1 - t0) * 100 if v["tool_cpu_s"] else 0))
            finally:
                rig.close()
    lines = ["### Fan-out: viewers of one 1280×720 30 fps camera through `zerocam relay`\n",
             f"The load generator (`bench/` `zerocam-bench view`, tokio, 2 worker threads) runs on the "
             f"same {os.cpu_count()} cores as the relay and the camera, so at high counts the three "
             f"compete; its own CPU is shown. Window {secs} s per row; frames/s per viewer is relative "
             f"to the frames/s the relay received from the camera in the same window.\n",
             "| viewers | connected | frames/s per viewer: mean (p10, min) | of camera's fps | total MB/s out | "
             "p50 / p99 latency ms | relay CPU % of a core | relay RSS MiB (peak) | load-gen CPU % |",
             "|---|---:|---|---:|---:|---|---:|---:|---:|"]
    for kind, n, v, cam_fps, cpu, rss, hwm, tool in rows:
        lines.append(f"| {n} {'WebSocket' if kind == 'ws' else 'MJPEG'} | {v['connected']} | "
                     f"{v['fps_mean']:.1f} ({v['fps_p10']:.1f}, {v['fps_min']:.1f}) | "
                     f"{v['fps_mean']/max(cam_fps, 0.1)*100:.0f} % | {v['mbyte_s']:.0f} | "
                     f"{v['lat_p50_ms']:.0f} / {v['lat_p99_ms']:.0f} | {cpu:.0f} | {rss:.1f} ({hwm:.1f}) | {tool:.0f} |")
    for kind, n, v, cam_fps, cpu, rss, hwm, tool in rows:
        if n == 1000:
            lines.append(f"\n**1000 {'WebSocket' if kind == 'ws' else 'MJPEG'} viewers: relay RSS "
                         f"{rss:.1f} MiB (peak {hwm:.1f} MiB)**, {cpu:.0f} % of a core."
                         + (" Viewer sockets read into a 4 KiB buffer (tungstenite zero-fills "
                            "its read buffer on every read; the default 128 KiB made a quarter of "
                            "the relay's CPU memset and its RSS peak near 190 MiB at this count)."
                            if kind == 'ws' else ""))
    lines.append("\nThe machine's other jobs take much of its 2 cores: when relay, camera and load generator "
                 "together stay well below 200 %, the rest went to them. A viewer that cannot keep up gets "
                 "the newest frame when it is ready (counted as `viewer_skipped`), never a queue.")
    emit("\n".join(lines) + "\n")


def raise_fd_limit(want=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard > 0 else want, hard))


def cameras_listed(hp):
    return json.loads(http_get(hp, "/cameras").split(b"\r\n\r\n", 1)[1] or b"[]")


def part_cluster():
    """Fan-out over 1 relay and over 3 relays clustered through NATS."""
    if not shutil.which("nats-server"):
        raise RuntimeError("nats-server is not installed (scripts/bench installs it with apt)")
    secs = 5 if QUICK else 15
    counts = [300, 1000] if QUICK else [300, 1000, 3000]
    raise_fd_limit()
    rows = []
    for n in counts:
        for nodes in (1, 3):
            log(f"cluster fan-out: {n} WebSocket viewers over {nodes} node(s), {secs} s")
            procs, logs, hps = [], [], []
            nats = None
            try:
                if nodes > 1:
                    nport = free_port()
                    conf = f"/tmp/zcb-nats-{os.getpid()}.conf"
                    with open(conf, "w") as f:
                        f.write(f"listen: 127.0.0.1:{nport}\nmax_payload: 8388608\n")
                    nats = spawn(["nats-server", "-c", conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                    procs.append(nats)
                for i in range(nodes):
                    hp = f"127.0.0.1:{free_port()}"
                    args = [ZEROCAM, "relay", "--listen", hp, "--token", TOKEN, "--log-level", "warn"]
                    if nodes > 1:
                        conf = f"/tmp/zcb-relay-{os.getpid()}-{i}.toml"
                        with open(conf, "w") as f:
                            f.write(f'[server.cluster]\nnode = "{"abc"[i]}"\n')
                        args += ["--cluster", f"nats://127.0.0.1:{nport}", "--config", conf]
                    lf = open(f"/tmp/zcb-relay-{os.getpid()}-{i}.log", "w")
                    logs.append(lf)
                    procs.append(spawn(args, stdout=lf, stderr=subprocess.STDOUT))
                    hps.append(hp)
                    wait_http(hp)
                relays = procs[-nodes:]
                cam_log = open(f"/tmp/zcb-cam-{os.getpid()}-cluster.log", "w")
                logs.append(cam_log)
                procs.append(spawn([ZEROCAM, "stream", "--relay", f"ws://{hps[0]}/ingest/bench",
                                    "--camera", "bench", "--token", TOKEN, "--source", "pattern",
                                    "--size", "640x480", "--fps", "15", "--log-level", "warn"],
                                   stdout=cam_log, stderr=subprocess.STDOUT))
                end = time.time() + 30
                while not all(any(c.get("id") == "bench" and c.get("online") for c in cameras_listed(hp))
                              for hp in hps):
                    if time.time() > end:
                        raise RuntimeError("the camera did not show up on every node")
                    time.sleep(0.2)
                marks = {}

                def on_window(edge):
                    marks[edge] = ([cpu_s(p.pid) for p in relays],
                                   cpu_s(nats.pid) if nats else 0.0, time.time())

                v = view([f"http://{hp}/cameras/bench" for hp in hps], "ws", n, secs,
                         warmup=4.0 if n >= 1000 else 2.0, on_window=on_window)
                (c0, n0, t0), (c1, n1, t1) = marks["start"], marks["end"]
                dt = t1 - t0
                per_node = []
                for i in range(nodes):
                    frames = v["per_url"][i]["frames"]
                    cpu = c1[i] - c0[i]
                    per_node.append(("abc"[i], cpu / dt * 100, cpu * 1e3 / max(frames, 1),
                                     v["per_url"][i]))
                rows.append((n, nodes, v, per_node, (n1 - n0) / dt * 100,
                             v["tool_cpu_s"] / dt * 100 if v["tool_cpu_s"] else 0))
            finally:
                for p in reversed(procs):
                    stop(p)
                for lf in logs:
                    lf.close()
    single = {n: per_node[0][2] for n, nodes, v, per_node, _, _ in rows if nodes == 1}
    lines = ["### Cluster: WebSocket viewers of one 640×480 15 fps camera over 1 relay and over 3 relays clustered through NATS\n",
             f"Everything runs on this machine's {os.cpu_count()} shared cores: three relays, `nats-server`, the "
             f"camera and the load generator (which spreads its viewers evenly over the nodes) compete for "
             f"them, so 3 nodes here cannot go faster than one; what the rows show is what the hop costs. "
             f"The camera is connected to node a; nodes b and c get its frames through NATS. CPU per "
             f"delivered frame is the node's CPU in the {secs} s window over the frames its own viewers "
             f"received; the ratio is against the single relay at the same viewer count.\n",
             "| viewers | nodes | node | its viewers' fps (mean, p10) | p50 / p99 latency ms | node CPU % of a core "
             "| CPU ms per delivered frame | vs 1 node | NATS CPU % | load-gen CPU % |",
             "|---:|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for n, nodes, v, per_node, nats_cpu, tool in rows:
        for name, cpu, ms, u in per_node:
            ratio = ms / single[n] if single.get(n) else 0
            lines.append(f"| {n} | {nodes} | {name if nodes > 1 else 'alone'} | {u['fps_mean']:.1f}, "
                         f"{u['fps_p10']:.1f} | {u['lat_p50_ms']:.0f} / {u['lat_p99_ms']:.0f} | {cpu:.0f} | "
                         f"{ms:.3f} | {ratio:.2f}× | {nats_cpu:.0f} | {tool:.0f} |")
    hops = []
    for n, nodes, v, per_node, _, _ in rows:
        if nodes == 3:
            direct = per_node[0][3]
            via = [per_node[1][3], per_node[2][3]]
            hops.append(f"{n} viewers: p50 +{sum(x['lat_p50_ms'] for x in via) / 2 - direct['lat_p50_ms']:.1f} ms, "
                        f"p99 +{sum(x['lat_p99_ms'] for x in via) / 2 - direct['lat_p99_ms']:.1f} ms")
    lines.append("\nLatency added by the hop through NATS (viewers on b and c against viewers on a, same run): "
                 + "; ".join(hops) + ".")
    emit("\n".join(lines) + "\n")


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = open("/proc/loadavg").read().split()[:3]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} × {model}, Linux {platform.release()}, {rustc}; "
            f"load average at start {' '.join(load)}")


def main():
    cmd = "scripts/bench " + " ".join(a for a in args if a != "--write")
    header = [f"Command: `{cmd.strip()}`  ",
              f"Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}  ",
              f"Machine: {machine()}\n"]
    emit("\n".join(header))
    try:
        for name, fn in (("encode", part_encode), ("quality", part_quality),
                         ("instr", part_instructions),
                         ("arm", part_arm), ("cost", part_cost), ("threads", part_threads),
                         ("latency", part_latency), ("adapt", part_adapt),
                         ("fanout", part_fanout), ("cluster", part_cluster)):
            if want(name):
                t = time.time()
                fn()
                log(f"{name} done in {time.time()-t:.0f} s")
    finally:
        for p in started:
            stop(p)
        if os.geteuid() == 0:
            netns_down()
    if WRITE:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        if ONLY is not None and os.path.exists(path):
            merge_parts(path, cmd)
        else:
            # The soak's section (scripts/soak --write) is kept as it was.
            soak = ""
            if os.path.exists(path):
                m = re.search(r"<!-- soak:begin -->.*?<!-- soak:end -->\n", open(path).read(), re.S)
                soak = "\n" + m.group(0) if m else ""
            with open(path, "w") as f:
                f.write(BENCH_HEAD + "\n" + "\n".join(out) + "\n" + soak + BENCH_TAIL)
        log(f"wrote {path}")


def merge_parts(path, cmd):
    """--only with --write: each table this run made replaces the section of
    the same title (or goes in before the soak), marked with its own date;
    the rest of the file stays."""
    text = open(path).read()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # A part may emit several tables: each replaces its own section.
    blocks = [b if i == 0 else "### " + b
              for chunk in out[1:]  # out[0] is the run's header
              for i, b in enumerate(chunk.split("\n### "))]
    for block in blocks:
        title = block.splitlines()[0]
        if not title.startswith("### "):
            continue
        block = block.rstrip("\n") + f"\n\n_Refreshed alone by `{cmd.strip()}` on {date}._\n"
        start = text.find(title + "\n")
        if start >= 0:
            ends = [i for i in (text.find("\n### ", start + 1), text.find("\n<!-- soak:begin", start),
                                text.find("\n## ", start + 1)) if i >= 0]
            end = min(ends) if ends else len(text)
            text = text[:start] + block + text[end:]
        else:
            at = text.find("<!-- soak:begin")
            at = at if at >= 0 else text.find("## Reading the numbers")
            text = text[:at] + block + "\n" + text[at:]
    with open(path, "w") as f:
        f.write(text)


BENCH_HEAD = """# Benchmarks

Produced by `scripts/bench` (see the command line below; `--write` rewrites
this file; with `--only`, it replaces just the tables that run made, each
then marked with its own date). The machine is a shared, noisy VM, so the figures that matter
are the ratios, each measured against a reference in the same run; absolute
times move from run to run, ratios much less. Instruction counts
(callgrind) do not depend on load at all.
"""

BENCH_TAIL = """
## Reading the numbers

- zerocam's encoder (`src/encode/yuvjpeg/`) is portable Rust on x86,
  ARMv6 assembly for its inner loops on 32-bit ARM (`armv6.rs`: fetch, DCT
  and quantisation with the ARM1176's SIMD-in-a-register and DSP
  instructions) and NEON on aarch64 (`neon.rs`); the tests hold each to
  the portable code's bytes. `jpeg-encoder`
  (its reference) is built without its `simd` feature. On x86-64 the
  compiler still uses SSE2 for both (the baseline). The Pi Zero (ARMv6, no
  NEON) has no vector unit for any of them: there, the instruction ratio
  against scalar libjpeg-turbo is the better predictor.
- On the Pi Zero, the ARMv6 table is the one to read: each encoder runs
  there the code the device would, and the instruction counts are exact;
  only the IPC behind the frames/s column is assumed.
- The camera-cost encode row uses the test pattern, which is cheaper to
  encode than the natural-looking frame of the encode table, and adds the
  pattern's own drawing; pass-through's peak RSS includes pre-encoding its
  30-frame loop at start-up.
- Latency is measured from the capture timestamp in each JPEG's COM
  segment, so it includes encoding, the camera's send, the relay and the
  viewer's receive. On the shaped link the camera holds at most one frame in
  flight (the relay acks each frame); newer frames replace unsent ones in its
  slot and are counted as dropped, by the camera and, as seq gaps, by the relay.
- Fan-out: the relay, the camera and the load generator share the same two
  cores with other jobs, so the 1000-viewer rows move a lot from run to run;
  frames/s per viewer is relative to the camera's delivered rate in the same window.

Reproduce: `scripts/bench` (about 8 minutes here) or `scripts/bench --quick`
(about 4), plus about 6 the first time for the ARMv6 builds;
`--only encode,instr,arm,cost,threads,latency,fanout,cluster` runs parts;
`cd bench && cargo bench` runs the encode tables alone.
"""

if __name__ == "__main__":
    main()
