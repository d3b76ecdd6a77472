"""Whole citizen visits on the touchscreen app, under its own Xvfb. Prints; never asserts.

    .venv/bin/python bench/journey.py                 # 100 visits
    .venv/bin/python bench/journey.py --visits 20

The app runs as the UI tests run it: tests/ui/drive_app.py in a subprocess (devices off,
the platform's seeded catalogue, a submitter that accepts), on an Xvfb of its own that picks a
free display. The visits are played inside the app's process by the driver's `journey`
command (drive_app.Journey): every touch is a press on the visible button, and each step waits
for the first frame drawn (Window on_flip) with the expected view on screen. Figures:

- transition time per kind, p50 / p95 / max: from the press (or the device event) to the frame
  that shows its result; `render` stops when the app has put the view into the widgets, before
  layout and drawing. Visit 1 (every pooled row and button built for the first time) is shown
  apart from visits 2..N;
- after visits 1, 10, 50 and 100 (those <= N, and N): VmRSS, live widgets (gc), the kiosk's
  widgets and Kivy textures (weakref sets filled from gc; see drive_app.weakrefs);
- a cross-check from outside the app: a few `press` commands sent over the pipe, timed from
  the send to the view event's `shown_at` (the app's render time, same clock).

Needs Xvfb and Mesa (Debian: xvfb libgl1-mesa-dri). Frame time on Mesa's software GL
dominates: the figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from startup import start_xvfb  # the same Xvfb as the start-up bench (run from bench/)

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "ui" / "drive_app.py"
SIZE = (1280, 800)
CHECKPOINTS = (1, 10, 50, 100)





class Driver:
    """The app in a subprocess: JSON commands in, JSON events out (see tests/ui/drive_app.py)."""

    def __init__(self, display: str, kivy_home: str, stderr_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KIOSK_", "KIVY_", "SDL_"))}
        env.update({
            "DISPLAY": display, "KIVY_NO_ARGS": "1", "KIVY_HOME": kivy_home,
            "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1", "SDL_AUDIODRIVER": "dummy",
            "SDL_VIDEO_X11_WMCLASS": "Kiosk", "KIOSK__UI__FULLSCREEN": "false",
            "KIOSK__UI__WIDTH": str(SIZE[0]), "KIOSK__UI__HEIGHT": str(SIZE[1]),
            "KIOSK__VOICE__ENABLED": "false", "KIOSK__PLATFORM__URL": "",
            "KIOSK__TERMINAL__DATA_DIR": kivy_home,
            "KIOSK__VISIT__IDLE_TIMEOUT_S": "3600", "KIOSK__VISIT__IDENTIFY_TIMEOUT_S": "3600",
            "PYTHONUNBUFFERED": "1",
        })  # the driver turns every device off itself (drive_app.DEFAULT_ENV)
        self._stderr = open(stderr_path, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen([sys.executable, str(DRIVER)], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
                                     bufsize=1)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.events.put(None)

    def send(self, **command: Any) -> float:
        assert self.proc.stdin is not None
        sent = time.time()
        self.proc.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        return sent

    def wait(self, what: str, timeout: float, **expected: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                event = None
            if event is None:
                raise SystemExit(f"no {what} within {timeout} s (app alive: {self.proc.poll() is None})")
            if event.get("event") == what and all(event.get(k) == v for k, v in expected.items()):
                return event

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(do="quit")
                self.proc.wait(timeout=15)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def table(result: dict[str, Any], title: str) -> None:
    print(f"\n{title}")
    print(f"  {'transition':22} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   {'render p50':>10} {'p95':>6}")
    for kind, t in result["timings"].items():
        r = result["render"].get(kind)
        render = f"{r['p50_ms']:>10.1f} {r['p95_ms']:>6.1f}" if r else f"{'-':>10} {'-':>6}"
        print(f"  {kind:22} {t['n']:>5} {t['p50_ms']:>8.1f} {t['p95_ms']:>8.1f} {t['max_ms']:>8.1f}   {render}")


def outside_check(driver: Driver) -> list[tuple[str, float]]:
    """A few touches sent over the pipe: send -> the app's render (`shown_at` of the view event)."""
    steps = [("start", "identify"), ("cancel", "attract")] * 3
    found = []
    for action, step in steps:
        sent = driver.send(do="press", action=action)
        event = driver.wait("view", 15, step=step, reason=action)
        found.append((f"{action} -> {step}", (event["shown_at"] - sent) * 1000))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=100, help="whole visits to play (default 100)")
    args = parser.parse_args()
    visits = max(1, args.visits)
    marks = sorted({n for n in CHECKPOINTS if n <= visits} | {visits})

    xvfb, display = start_xvfb()
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-journey-") as tmp:
        driver = Driver(display, tmp, Path(tmp) / "app.stderr")
        try:
            started = time.monotonic()
            driver.wait("ready", 60)
            print(f"app ready (first frame) {time.monotonic() - started:.1f} s after launch; display {display}")
            driver.send(do="platform_catalogue")
            driver.send(do="targets")
            driver.wait("view", 30, reason="targets")
            driver.send(do="journey", visits=1, first=1, report_at=[1])
            checkpoints = [driver.wait("checkpoint", 120)]
            cold = driver.wait("journey", 120)
            if cold["error"]:
                raise SystemExit(f"visit 1 failed: {cold['error']}")
            warm = None
            if visits > 1:
                driver.send(do="journey", visits=visits - 1, first=2, report_at=[n for n in marks if n > 1])
                while True:
                    event = _next_of(driver, ("checkpoint", "journey"), 60 + 5 * visits)
                    if event["event"] == "checkpoint":
                        checkpoints.append(event)
                        continue
                    warm = event
                    break
                if warm["error"]:
                    raise SystemExit(f"visits 2..{visits} failed: {warm['error']}")
            outside = outside_check(driver)
        finally:
            driver.stop()
            xvfb.terminate()
            xvfb.wait(timeout=10)

    print(f"\n{visits} whole visits (newborn and social-security-card by turns, English on every third); "
          f"visit 1 {cold['elapsed_s']:.1f} s" + (f", visits 2..{visits} {warm['elapsed_s']:.1f} s "
                                                  f"({warm['elapsed_s'] / (visits - 1):.2f} s per visit)" if warm else ""))
    table(cold, "visit 1 (cold: rows, buttons and textures made for the first time)")
    if warm:
        table(warm, f"visits 2..{visits}: press -> the frame that shows it (render: -> widgets updated)")
    print("\nafter visit   RSS MB   widgets(gc)   kiosk widgets   Label   WrapLabel   textures   texture MB")
    for c in checkpoints:
        w = c["weakrefs"]
        kiosk = sum(v["alive"] for k, v in w["classes"].items()
                    if k not in ("Label", "Widget", "Texture", "KioskScreen"))
        print(f"  {c['visit']:>9}   {c['rss_kb'] / 1024:6.1f}   {c['widgets']:>11}   {kiosk:>13}   "
              f"{w['classes']['Label']['alive']:>5}   {w['classes']['WrapLabel']['alive']:>9}   "
              f"{w['textures']:>8}   {w['texture_kb'] / 1024:10.1f}")
    print("\nfrom outside the app (press sent over the pipe -> the app's render, shown_at):")
    for name, ms in outside:
        print(f"  {name:22} {ms:7.1f} ms")
    return 0


def _next_of(driver: Driver, kinds: tuple[str, ...], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = driver.events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            event = None
        if event is None:
            raise SystemExit(f"no {' or '.join(kinds)} within {timeout} s")
        if event.get("event") in kinds:
            return event


if __name__ == "__main__":
    sys.exit(main())
