"""A loopback HTTP proxy that breaks the network on purpose, between a kiosk and the platform.

One request per connection (the proxy asks the platform to close after its answer, and
closes the kiosk's side too; `requests` simply reconnects). The mode decides what happens
to each request:

    pass           relay it
    down           nothing listens on the port: connections are refused, as when the platform is gone
    error_503      answer 503 itself; the platform never sees the request
    slow           wait `delay_s`, then relay (the kiosk's read timeout fires first)
    cut_request    read the request, then close: cut before the platform saw it
    cut_response   relay it, the platform answers, then close without passing the answer on:
                   the platform did the work and the kiosk never heard
    hold           relay it, then keep the answer until `release()`: the kiosk waits, and a
                   test can kill it at exactly that moment
"""
from __future__ import annotations

import socket
import threading
from collections import Counter
from dataclasses import dataclass, field

MODES = ("pass", "down", "error_503", "slow", "cut_request", "cut_response", "hold")


@dataclass
class FaultProxy:
    upstream_port: int
    mode: str = "pass"
    delay_s: float = 10.0
    seen: Counter[str] = field(default_factory=Counter)  # "<METHOD> <path> <mode>" -> count
    _listener: socket.socket | None = None
    _port: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closing: bool = False

    def start(self) -> str:
        self._listen()
        return f"http://127.0.0.1:{self._port}"

    def _listen(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self._port))  # SO_REUSEADDR: same port again
        self._port = self._listener.getsockname()[1]
        thread = threading.Thread(target=self._accept, args=(self._listener,), name="fault-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)

    def set(self, mode: str, delay_s: float | None = None) -> None:
        assert mode in MODES, mode
        if mode == "down" and self._listener is not None:
            _close(self._listener)
            self._listener = None
        elif mode != "down" and self._listener is None:
            self._listen()
        self.mode = mode
        if delay_s is not None:
            self.delay_s = delay_s
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_for(self, key: str, count: int = 1, timeout: float = 30.0) -> bool:
        """Wait until `count` requests whose "<METHOD> <path> <mode>" starts with `key` arrived."""
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(n for k, n in self.seen.items() if k.startswith(key)) >= count, timeout)

    def stop(self) -> None:
        self._closing = True
        self._released.set()
        if self._listener is not None:
            _close(self._listener)

    # -- the relay ---------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while not self._closing:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: "down", or the end
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        mode = self.mode
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            line = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            key = f"{line[0]} {line[1].split('?')[0]} {mode}"
            if mode == "cut_request":
                self._count(key)
                return
            if mode == "error_503":
                body = b'{"error":"unavailable","message":"the fault proxy answers 503"}'
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                self._count(key)
                return
            if mode == "slow":
                self._released.wait(self.delay_s)
            answer = _relay(request, self.upstream_port)
            self._count(key)
            if mode == "cut_response":
                return
            if mode == "hold":
                self._released.wait()
                if self._closing:
                    return
            try:
                conn.sendall(answer)
            except OSError:
                pass  # the kiosk gave up (timeout) or was killed

    def _count(self, key: str) -> None:
        with self._changed:
            self.seen[key] += 1
            self._changed.notify_all()


def _close(listener: socket.socket) -> None:
    """Stop listening now: shutdown() wakes the thread blocked in accept(); close() alone would not."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for header in head.split(b"\r\n")[1:]:
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
    return b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body


def _relay(request: bytes, port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as up:
        up.sendall(request)
        chunks = []
        while chunk := up.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
