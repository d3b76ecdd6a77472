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


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, poll_s: float = 0.02,
               step: Callable[[], None] | None = None) -> Any:
    """Poll `condition` (running `step` first each time, e.g. the driver's poll) until it
    gives something true (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if step is not None:
            step()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(poll_s)
