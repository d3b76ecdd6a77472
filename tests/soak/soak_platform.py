"""The reference platform as the soak needs it (kiosk.soak.PlatformSide): `python -m govplatform
serve` on a free loopback port, the fault proxy in front of it, its database read directly.

Built on the platform tests' harness (tests/platform/govplatform_harness.py, faultproxy.py),
shared by tests/soak/test_soak.py and bench/soak.py. Imported by name: tests/soak is on
sys.path (pytest puts it there; bench/soak.py too).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLATFORM_TESTS = Path(__file__).resolve().parent.parent / "platform"
if str(PLATFORM_TESTS) not in sys.path:
    sys.path.insert(0, str(PLATFORM_TESTS))

from faultproxy import FaultProxy
from govplatform_harness import Server, start_server


@dataclass
class SoakPlatform:
    server: Server
    proxy: FaultProxy
    url: str  # the proxy: what the terminal calls

    def network(self, mode: str, delay_s: float | None = None) -> None:
        self.proxy.set(mode, delay_s)

    def enrolment_code(self, terminal_id: str) -> str:
        return self.server.enrolment_code(terminal_id)

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        """Read the platform's database (read only), and let go of it at once: an engine kept
        open would hold descriptors in the soak's process, which the soak counts."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.server.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def applications(self, terminal_id: str) -> list[tuple[str, str, str]]:
        return [(str(r[0]), str(r[1]), str(r[2])) for r in self._rows(
            "SELECT receipt_number, visit_id, item_id FROM applications WHERE terminal_id = :t", t=terminal_id)]

    def ratings(self, terminal_id: str) -> int:
        return int(self._rows("SELECT count(*) FROM ratings WHERE terminal_id = :t", t=terminal_id)[0][0])


@contextmanager
def reference_platform(data_dir: Path) -> Iterator[SoakPlatform]:
    """The platform process and its proxy, for as long as the block runs; both stopped after."""
    servers = start_server(data_dir)
    server = next(servers)
    proxy = FaultProxy(int(server.url.rsplit(":", 1)[1]))
    platform = SoakPlatform(server, proxy, proxy.start())
    try:
        yield platform
    finally:
        proxy.stop()
        servers.close()  # the harness's finally: SIGTERM to exactly that process
