"""Waiting for a condition with a deadline: tests wait for what they expect, never a fixed time,
and say what did not happen (a loaded 2-core machine may be slow; it is never asserted)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_S = 20.0


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """The condition's first true value; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.05)
