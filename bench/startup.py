"""Cold start and memory of the touchscreen app, under its own Xvfb. Prints; never asserts.

    .venv/bin/python bench/startup.py            # 5 runs
    .venv/bin/python bench/startup.py -n 10 --settle 5

Each run launches `main.py --window 1280x800 --emulated` (the whole terminal, with the
ID-card reader on its emulator) exactly as a kiosk starts. Measured from the parent:

- first frame: process launch -> the app's `KIOSK_BENCH first_frame` line (printed
  when the first attract frame has been drawn, just before the buffer swap);
- RSS / peak RSS: VmRSS and VmHWM from /proc/<pid>/status, `--settle` seconds after
  the first frame;
- stop: SIGTERM -> process gone.

Needs Xvfb and Mesa (Debian: xvfb libgl1-mesa-dri). The figures depend on the machine
and on the page cache: the first run may be slower than the rest.
"""
from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 800)


# -- the parent: Xvfb, launches, figures ----------------------------------------------------
def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                             f"{SIZE[0]}x{SIZE[1]}x24", "-nolisten", "tcp", "-noreset"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    number = b""
    deadline = time.monotonic() + 15
    while not number.endswith(b"\n"):
        if not select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            proc.kill()
            raise SystemExit("Xvfb did not report a display within 15 s")
        chunk = os.read(read_fd, 16)
        if not chunk:
            raise SystemExit("Xvfb exited at start")
        number += chunk
    os.close(read_fd)
    return proc, f":{number.decode().strip()}"


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def one_run(display: str, kivy_home: str, settle: float, timeout: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "KIVY_", "SDL_"))}
    env.update({
        "DISPLAY": display, "KIVY_NO_ARGS": "1", "KIVY_HOME": kivy_home,
        "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1", "SDL_AUDIODRIVER": "dummy",
        "SDL_VIDEO_X11_WMCLASS": "Kiosk", "KIOSK_BENCH": "1",
        "KIOSK__VOICE__ENABLED": "false", "KIOSK__TERMINAL__DATA_DIR": kivy_home,
        "KIOSK__PLATFORM__URL": "",
        "PYTHONUNBUFFERED": "1",
    })
    launched = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--window", f"{SIZE[0]}x{SIZE[1]}", "--emulated"], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    result: dict[str, float] = {}
    buffer = b""
    try:
        while "first_frame_s" not in result:
            left = timeout - (time.monotonic() - launched)
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                raise RuntimeError(f"no first frame within {timeout} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the app exited (code {proc.wait()}) before its first frame")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                now = time.monotonic() - launched
                if line.startswith(b"KIOSK_BENCH first_frame"):
                    result["first_frame_s"] = now
        time.sleep(settle)
        status = proc_status(proc.pid)
        result["rss_mb"] = status.get("VmRSS", 0) / 1024
        result["peak_rss_mb"] = status.get("VmHWM", 0) / 1024
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        result["stop_s"] = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after the first frame before memory is read (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    xvfb, display = start_xvfb()
    results: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as kivy_home:
            print(f"startup bench: {args.runs} runs, Xvfb {display} {SIZE[0]}x{SIZE[1]}, "
                  f"memory read {args.settle:g} s after the first frame")
            for n in range(1, args.runs + 1):
                try:
                    r = one_run(display, kivy_home, args.settle, args.timeout)
                except Exception as exc:
                    print(f"  run {n}: FAILED: {exc}")
                    continue
                results.append(r)
                print(f"  run {n}: first frame {r['first_frame_s']:.3f} s "
                      f"RSS {r['rss_mb']:.1f} MB (peak {r['peak_rss_mb']:.1f} MB), "
                      f"stop {r['stop_s']:.2f} s")
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(timeout=5)
        except subprocess.TimeoutExpired:
            xvfb.kill()
    if not results:
        print("no successful run")
        return 1
    print(f"{'figure':<28}{'median':>10}{'min':>10}{'max':>10}")
    for key, label in (("first_frame_s", "launch -> first frame (s)"),
                       ("rss_mb", "RSS after settle (MB)"),
                       ("peak_rss_mb", "peak RSS (MB)"),
                       ("stop_s", "SIGTERM -> exit (s)")):
        values = [r[key] for r in results if key in r]
        if values:
            print(f"{label:<28}{statistics.median(values):>10.3f}{min(values):>10.3f}{max(values):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
