"""What the fuzz properties in tests/fuzz share: their hypothesis settings, and fakes that
stop a parser that never stops.

CI runs each property with a fixed seed (derandomize) and a small example count, so the
folder is quick and never fails at random. `FUZZ_EXAMPLES=N` (every property runs N
examples) or `FUZZ_SCALE=K` (K times its CI count) turn that into a real search with a
fresh random seed each run: bench/fuzz_long.py sets them. Imported by name: pytest puts
tests/fuzz on sys.path (no __init__.py here).

The properties take no pytest fixtures, so bench/fuzz_long.py can call them directly;
what they share (a platform link, a signing key) is built once per process by the
`shared_*` helpers in each module.
"""
from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

FIXED = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
SCALE = float(os.environ.get("FUZZ_SCALE", "1") or 1)
LONG = FIXED > 0 or SCALE != 1.0


def fuzz(examples: int, **extra: Any) -> settings:
    """Settings of one fuzz property: `examples` in CI, more for a long run."""
    count = FIXED or max(1, int(examples * SCALE))
    return settings(
        max_examples=count,
        deadline=None,  # timing is the bench's business; a hang is caught by the fakes' budgets
        database=None,  # nothing written under the repository
        derandomize=not LONG,
        print_blob=True,  # a failure prints @reproduce_failure to replay it exactly
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        **extra,
    )


class Hung(AssertionError):
    """A parser kept asking for more (a loop that would never end on a real line)."""


class Budget:
    """Counts the calls a fake device answers; past `limit` the parser is taken to hang."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.used = 0

    def spend(self) -> None:
        self.used += 1
        if self.used > self.limit:
            raise Hung(f"{self.what}: more than {self.limit} calls for one operation; it would never end")


class FakeClock:
    """A monotonic clock that moves only when a fake port waits (one read slice per empty read),
    so a driver's deadlines pass at once instead of in real seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def time(self) -> float:
        return self.now
