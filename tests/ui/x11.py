"""For the UI tests' app drivers: real X input (xdotool on the test's own Xvfb display, the
window found by its class, SDL_VIDEO_X11_WMCLASS) and the app's JSON event lines."""
from __future__ import annotations

import os
import queue
import subprocess
import time
from typing import Any, Callable


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
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    return proc.returncode
