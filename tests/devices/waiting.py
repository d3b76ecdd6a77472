"""Waiting for a device to get somewhere, in tests: the deadline is reached, never asserted."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


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
