"""For the UI tests' app drivers: the test's own Xvfb, real X input (xdotool on its display,
the window found by its class, SDL_VIDEO_X11_WMCLASS) and the app's JSON event lines."""
from __future__ import annotations

import os
import queue
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable


@contextmanager
def own_xvfb(log_path: Path, size: tuple[int, int]) -> Iterator[str]:
    """An Xvfb of `size` started with -displayfd, so the server picks a free display (no
    hard-coded :99); yields that display (":N") and stops this one process at the end. Its
    output goes to `log_path`."""
    read_fd, write_fd = os.pipe()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{size[0]}x{size[1]}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(write_fd)
    try:
        number = b""
        deadline = time.monotonic() + 15
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                raise RuntimeError(f"Xvfb did not report a display; see {log_path}")
            chunk = os.read(read_fd, 16)
            if not chunk:
                raise RuntimeError(f"Xvfb exited: {log_path.read_text(errors='replace')}")
            number += chunk
        yield f":{number.decode().strip()}"
    finally:
        os.close(read_fd)
        terminate(proc)


def terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 5 s if it is still there; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def xdotool(display: str, *args: str) -> str:
    env = dict(os.environ, DISPLAY=display)
    done = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10)
    if done.returncode != 0 and args[0] != "search":
        raise AssertionError(f"xdotool {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def find_window(display: str, wm_class: str, timeout: float = 10.0) -> str:
    """The newest window of `wm_class`; fails with the class named when none appears in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = xdotool(display, "search", "--class", wm_class).split()
        if ids:
            return ids[-1]
        time.sleep(0.1)
    raise AssertionError(f"no window of class {wm_class} (SDL_VIDEO_X11_WMCLASS) found")


def next_event(events: queue.Queue[dict[str, Any] | None], predicate: Callable[[dict[str, Any]], bool],
               timeout: float, seen: Callable[[dict[str, Any]], None] = lambda _e: None) -> dict[str, Any] | None:
    """The next event from an app's JSON lines that `predicate` accepts, or None when the time is
    up or the app's output ended (the caller says what it waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            event = events.get(timeout=max(0.01, left)) if left > 0 else None
        except queue.Empty:
            event = None
        if event is None:
            return None
        seen(event)
        if predicate(event):
            return event


def stop_app(proc: subprocess.Popen[str], quit_line: str = '{"do": "quit"}\n') -> int:
    """Ask the app to quit, then terminate and kill if it does not; close its pipes. Only the
    test's own process is touched."""
    if proc.poll() is None:
        try:
            assert proc.stdin is not None
            proc.stdin.write(quit_line)
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            terminate(proc)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    return proc.returncode


class AppProcess:
    """A Kivy app host run as its own process (`script`, which speaks JSON lines: commands on
    stdin, events on stdout), its X window found by WM class, and real X clicks on it."""

    def __init__(self, script: str, display: str, env: dict[str, str], stderr_path: Path, wm_class: str) -> None:
        import json
        import sys
        import threading

        self._json = json
        self.display = display
        self.wm_class = wm_class
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []  # every event seen, for the failure message
        self.proc = subprocess.Popen([sys.executable, script], env=env, cwd=Path(script).resolve().parents[2],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, encoding="utf-8", bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self._window: str | None = None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                try:
                    self._queue.put(self._json.loads(line))
                except ValueError:
                    pass
        self._queue.put(None)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(self._json.dumps(command, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                 timeout: float = 20.0) -> dict[str, Any]:
        event = next_event(self._queue, predicate, timeout, self.events.append)
        if event is None:
            self._stderr.flush()
            history = "\n".join(self._json.dumps({k: v for k, v in e.items() if k not in ("targets", "layout", "keys")},
                                                 ensure_ascii=False) for e in self.events[-12:])
            raise AssertionError(f"timed out waiting for {what}; app alive: {self.proc.poll() is None}\n"
                                 f"events seen:\n{history}\n"
                                 f"app stderr (tail):\n{self.stderr_path.read_text(errors='replace')[-3000:]}")
        return event

    def window(self) -> str:
        if self._window is None:
            self._window = find_window(self.display, self.wm_class)
        return self._window

    def click_at(self, x: int, y: int) -> None:
        """A real click at window pixels from the top-left."""
        xdotool(self.display, "mousemove", "--window", self.window(), str(x), str(y), "click", "1")

    def stop(self) -> None:
        stop_app(self.proc)
        self._stderr.close()
