"""UI tests under a real X server: our own Xvfb, the app in a subprocess, real X clicks.

- `xvfb` (session): starts `Xvfb -displayfd` so the server picks a free display (no
  hard-coded :99), and at the end stops that one process only.
- `kiosk_app`: a factory that starts tests/ui/drive_app.py on that display with
  devices off, short idle timings and a screenshot folder
  artifacts/screenshots/<test name>/, waits for its first frame, and stops it after
  the test. The returned KioskProcess follows the app's JSON lines and clicks with
  xdotool.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from x11 import find_window, next_event, own_xvfb, stop_app, xdotool  # tests/ui/x11.py: pytest puts this folder on sys.path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
DRIVER = Path(__file__).with_name("drive_app.py")
SCREEN = (1280, 800)

# short timings so idle handling is seen within seconds
DEFAULT_ENV = {
    "KIOSK__VISIT__IDLE_TIMEOUT_S": "3",
    "KIOSK__VISIT__IDLE_WARNING_S": "2",
    "KIOSK__VISIT__IDENTIFY_TIMEOUT_S": "3",
}


@pytest.fixture(scope="session")
def xvfb(tmp_path_factory: pytest.TempPathFactory) -> Any:
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/setup.sh (Debian: apt-get install xvfb xauth xdotool)")
    with own_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log", SCREEN) as display:
        yield display


class KioskProcess:
    """One running app: its JSON lines, its window, clicks and keys through xdotool."""

    def __init__(self, display: str, env: dict[str, str], stderr_path: Path) -> None:
        self.display = display
        self.stderr_path = stderr_path
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(DRIVER)], env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, encoding="utf-8", bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._window: str | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self._queue.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self._queue.put(None)

    # -- following the app -------------------------------------------------------------
    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                 timeout: float = 15.0) -> dict[str, Any]:
        event = next_event(self._queue, predicate, timeout, self.events.append)
        if event is None:
            raise AssertionError(f"timed out waiting for {what}; app alive: {self.alive}\n"
                                 f"events seen:\n{self._history()}\n"
                                 f"app stderr (tail):\n{self._stderr_tail()}")
        return event

    def wait_view(self, timeout: float = 15.0, **expected: Any) -> dict[str, Any]:
        def matches(e: dict[str, Any]) -> bool:
            return e.get("event") == "view" and all(e.get(k) == v for k, v in expected.items())
        return self.wait_for(matches, f"a view with {expected}", timeout)

    def wait_shot(self, name: str, timeout: float = 10.0) -> Path:
        event = self.wait_for(lambda e: e.get("event") == "screenshot" and e.get("name") == name,
                              f"screenshot {name!r}", timeout)
        return Path(event["path"])

    def _history(self) -> str:
        return "\n".join(json.dumps({k: v for k, v in e.items() if k not in ("targets", "regions")},
                                    ensure_ascii=False) for e in self.events[-20:])

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()

    def ask(self, event: str, timeout: float = 30.0, **command: Any) -> dict[str, Any]:
        """Send a command and wait for the event it answers with (stats, weakrefs, texts, ...)."""
        self.send(**command)
        return self.wait_for(lambda e: e.get("event") == event, f"a {event!r} event", timeout)

    def look(self) -> dict[str, Any]:
        """A view line now (for layers that open without a view change: keyboard, choice list)."""
        self.send(do="targets")
        return self.wait_view(reason="targets", timeout=10)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    # -- X -------------------------------------------------------------------------------
    def xdotool(self, *args: str) -> str:
        return xdotool(self.display, *args)

    def window(self) -> str:
        if self._window is None:
            self._window = find_window(self.display, "Kiosk")
        return self._window

    def window_visible(self) -> bool:
        return self.window() in self.xdotool("search", "--onlyvisible", "--class", "Kiosk").split()

    def click(self, x: int, y: int) -> None:
        self.xdotool("mousemove", "--window", self.window(), str(x), str(y), "click", "1")

    def click_target(self, event: dict[str, Any], action: str) -> None:
        targets = event["targets"]
        assert action in targets, f"no button {action!r} on screen; there are {sorted(targets)}"
        assert action not in event.get("clipped", ()), f"button {action!r} is scrolled out of sight"
        self.click(*targets[action])

    def drag(self, x: int, y: int, dx: int, dy: int, steps: int = 10) -> None:
        """A finger drawn across the screen from (x, y) by (dx, dy) at a finger's pace: scrolls a
        list. (Moves sent all at once reach Kivy within one frame and are taken for a tap.)"""
        window = self.window()
        args = ["mousemove", "--window", window, str(x), str(y), "mousedown", "1"]
        for n in range(1, steps + 1):
            args += ["sleep", "0.03", "mousemove", "--window", window, str(x + dx * n // steps), str(y + dy * n // steps)]
        self.xdotool(*args, "sleep", "0.1", "mouseup", "1")

    def reveal(self, event: dict[str, Any], action: str, tries: int = 12) -> dict[str, Any]:
        """Scroll by dragging the list that hides the button `action` (as a citizen would)
        until the button is in sight; the view line that shows it. (A long form in English
        takes 8 drags of half the list from the first field to the last.)"""
        for drags in range(tries + 1):  # the look after the last drag counts too
            if action not in event["targets"]:
                raise AssertionError(f"no button {action!r} on screen; there are {sorted(event['targets'])}")
            hidden = event.get("clipped", {})
            if action not in hidden:
                return event
            if drags == tries:
                break
            box = hidden[action]
            assert box is not None, f"button {action!r} is outside the window"
            x, y, w, h = box
            tx, ty = event["targets"][action]
            cx, cy = x + w // 2, y + h // 2
            if tx < x or tx > x + w:  # a row scrolled sideways
                self.drag(cx, cy, -min(w // 2, 300) if tx > x + w else min(w // 2, 300), 0)
            else:
                self.drag(cx, cy, 0, -min(h // 2, 250) if ty > y + h else min(h // 2, 250))
            time.sleep(0.8)  # the list glides a little after the finger leaves
            event = self.look()
        self.send(do="shot", name="reveal-failed")
        shot = self.wait_shot("reveal-failed")
        raise AssertionError(f"button {action!r} stayed out of sight after {tries} drags (the screen: {shot}; "
                             f"its hidden targets: {event.get('clipped')})")

    def key(self, name: str) -> None:
        window = self.window()
        self.xdotool("mousemove", "--window", window, str(SCREEN[0] // 2), str(SCREEN[1] // 2))
        self.xdotool("windowfocus", window)
        self.xdotool("key", name)

    # -- the end ---------------------------------------------------------------------------
    def stop(self) -> int:
        code = stop_app(self.proc)
        self._stderr.close()
        return code


@pytest.fixture
def kiosk_app(xvfb: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Start the app: `kiosk_app(**env)` -> KioskProcess, after its first frame ("ready")."""
    started: list[KioskProcess] = []
    shots = SHOTS / request.node.name
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()

    def start(**env_overrides: str) -> KioskProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KIOSK_", "KIVY_", "SDL_")) and k != "DISPLAY"}
        kivy_home = tmp_path / f"kivy{len(started)}"
        kivy_home.mkdir()
        env.update({
            "DISPLAY": xvfb,
            "KIVY_NO_ARGS": "1", "KIVY_HOME": str(kivy_home),
            "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1",
            "SDL_AUDIODRIVER": "dummy", "SDL_VIDEO_X11_WMCLASS": "Kiosk",
            "KIOSK__DEVICES__IDCARD__ENABLED": "false",
            "KIOSK__DEVICES__CAMERA__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
            # no printers or scanners: their notices (tested on their own) would move the buttons
            "KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED": "false", "KIOSK__DEVICES__A4_PRINTER__ENABLED": "false",
            "KIOSK__DEVICES__SCANNER__ENABLED": "false", "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false",
            "KIOSK__UI__FULLSCREEN": "false",
            "KIOSK__UI__WIDTH": str(SCREEN[0]), "KIOSK__UI__HEIGHT": str(SCREEN[1]),
            "KIOSK__VOICE__ENABLED": "false", "KIOSK__PLATFORM__URL": "",
            "KIOSK_SCREENSHOT_DIR": str(shots),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(DEFAULT_ENV)
        env.update(env_overrides)
        app = KioskProcess(xvfb, env, tmp_path / f"app{len(started)}.stderr")
        started.append(app)
        app.ready = app.wait_for(lambda e: e.get("event") == "ready", "the first frame", 30)
        return app

    yield start
    for app in started:
        app.stop()
