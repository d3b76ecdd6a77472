"""Real X input for the UI tests: xdotool on the test's own Xvfb display, and the kiosk's window
found by its class (SDL_VIDEO_X11_WMCLASS)."""
from __future__ import annotations

import os
import subprocess
import time


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
