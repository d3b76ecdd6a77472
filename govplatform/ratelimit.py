"""A per-client token bucket for the public pages (/verify, /progress).

Why limit at all: those pages need no signature and no token, and receipt numbers are
sequential ("SQ" + date + sequence), so anyone could walk through a day's numbers. The
pages show no personal data, but how many applications of which kind were made is still
nobody's business in bulk. Verification codes are 80 random bits and cannot be walked;
the limit there only keeps a scanner from hammering the database.

In memory, per process, keyed by the client address as the server sees it: behind a
reverse proxy put the limit in the proxy instead (or set the setting to 0).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`per_minute` requests per client as a burst, refilled evenly over a minute; 0 = no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.max_clients = max_clients  # oldest clients are forgotten first: memory stays bounded
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 when the request may go ahead (and is counted); else the seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - at) * rate)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0.0
            else:
                wait = (1.0 - tokens) / rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait
