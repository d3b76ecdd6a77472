"""Live updates for the pages: events from the MQTT thread to every open Server-Sent-Events stream.

Each stream subscribes to scopes: "fleet" (terminals, alerts, the queue: every logged-in
staff member) and "call:<terminal>/<call id>" (one call's screen mirror and replies: only
the staff member on that call and supervisors). A slow browser whose queue fills up is
dropped (its page reconnects and reloads the snapshot), never allowed to hold up the fleet.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 500
FLEET = "fleet"


def call_scope(terminal: str, call_id: str) -> str:
    return f"call:{terminal}/{call_id}"


@dataclass(eq=False)
class Subscriber:
    scopes: frozenset[str]
    queue: asyncio.Queue[tuple[str, str] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class EventHub:
    """Thread-safe publish; subscribers live on the server's event loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.published = 0
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The server's loop, set at start-up; events before it are only counted."""
        self._loop = loop
        self.closed = False

    def subscribe(self, scopes: set[str]) -> Subscriber:
        sub = Subscriber(frozenset(scopes))
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, scope: str, kind: str, data: dict[str, Any]) -> None:
        """From any thread."""
        self.published += 1
        loop = self._loop
        if loop is None or loop.is_closed() or self.closed:
            return
        text = json.dumps({"id": next(self._ids), "kind": kind, "data": data}, ensure_ascii=False,
                          separators=(",", ":"), default=str)
        try:
            loop.call_soon_threadsafe(self._deliver, scope, kind, text)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _deliver(self, scope: str, kind: str, text: str) -> None:
        with self._lock:
            targets = [s for s in self._subs if scope in s.scopes]
        for sub in targets:
            try:
                sub.queue.put_nowait((kind, text))
            except asyncio.QueueFull:
                log.warning("a console page did not keep up with live updates; it will reconnect")
                sub.dropped = True
                self.unsubscribe(sub)
                self._end(sub)

    @staticmethod
    def _end(sub: Subscriber) -> None:
        while True:
            try:
                sub.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                sub.queue.get_nowait()

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        loop = self._loop
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
        if loop is None or loop.is_closed():
            return
        for sub in subs:
            try:
                loop.call_soon_threadsafe(self._end, sub)
            except RuntimeError:
                pass
