"""The console served by uvicorn on a background thread: for tests, the bench and demos that need
a real HTTP server (live updates over SSE, a real browser) inside one Python process."""
from __future__ import annotations

import socket
import threading
import time

import uvicorn

from helpdesk.app import create_app
from helpdesk.console import Console


class ConsoleServer:
    """`start()` binds 127.0.0.1 on a free port (or `port`), `url` says where; `stop()` ends it."""

    def __init__(self, console: Console, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.console = console
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.port = int(self._sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(create_app(console), log_config=None, access_log=False,
                                                     lifespan="on", timeout_graceful_shutdown=2))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ConsoleServer:
        self._sock.listen(128)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="helpdesk-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the console's HTTP server did not start within {timeout_s:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.console.hub.close()  # ends the live streams, so shutdown does not wait for them
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
