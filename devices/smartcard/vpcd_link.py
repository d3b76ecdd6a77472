"""The card side of vsmartcard's vpcd wire, for one slot of the virtual reader.

vpcd (the pcscd driver "Virtual PCD") listens on a TCP port per slot; a virtual card is
"inserted" by connecting to it and "removed" by closing the connection. Every message both
ways is a 2-byte big-endian length and a payload: a 1-byte payload from vpcd is a control
byte (power off, power on, reset, get ATR), anything longer is an APDU. vpcd also asks for
the ATR at each presence poll (about every 0.4 s), which is how it notices a card is gone.

`VpcdLink` keeps that connection while a card engine is inserted: it reconnects with a
short back-off while vpcd is not listening (pcscd stopped or restarting, reader unplugged),
so a card stays "in the slot" across a pcscd restart, as a physical card would.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

VPCD_PORT = 0x8C7B  # 35963: slot 0 of vpcd's first reader; slot n listens on VPCD_PORT + n
VPCD_SLOTS = 2  # vpcd 0.8 (vsmartcard 3.3) always offers two slots per reader

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_GET_ATR = 4

SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"  # what the link answers when the engine itself fails


class CardPulled(Exception):
    """Raised by an engine's `respond()`: the citizen pulled the card right now.

    The link closes the connection at once without answering and the slot becomes empty."""


class SlotOccupied(RuntimeError):
    """A card is already in this slot; remove it first."""


@runtime_checkable
class CardEngine(Protocol):
    """What answers vpcd on the card's behalf (devices/smartcard/card_emulator.py)."""

    atr: bytes

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def respond(self, apdu: bytes) -> bytes:
        """Data + SW1 SW2; may sleep (a slow card) or raise CardPulled."""
        ...


def _quickack(sock: socket.socket) -> None:
    # Linux clears TCP_QUICKACK after a while; without it each APDU waits ~40 ms for the
    # delayed ACK of vpcd's length prefix.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    except OSError:
        pass


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None when the peer closed the connection first."""
    chunks = bytearray()
    while len(chunks) < size:
        _quickack(sock)
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


class _Insertion:
    """One card in the slot: its engine, its connection thread, its current socket."""

    def __init__(self, link: VpcdLink, engine: CardEngine) -> None:
        self.link = link
        self.engine = engine
        self.ended = threading.Event()  # removed, pulled or link closed
        self.pulled = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.connections = 0  # how many times vpcd accepted this card (1 + reconnects)
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"vpcd-card-{link.port}")

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._sock is not None

    def end(self) -> None:
        """Take the card out: the connection closes now, even while the engine is busy."""
        with self._lock:
            self.ended.set()
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _run(self) -> None:
        link = self.link
        delay = link.backoff_min_s
        while not self.ended.is_set():
            try:
                sock = socket.create_connection((link.host, link.port), timeout=link.connect_timeout_s)
            except TimeoutError:
                # vpcd listens with a backlog of 0: while a connection it has not accepted yet
                # waits in the queue (a card removed before vpcd's next poll), our SYN is
                # dropped and the kernel would retry only after 1 s. A fresh SYN every
                # connect_timeout_s gets in right after vpcd's next poll empties the queue.
                log.debug("vpcd %s:%d accept queue full; retrying", link.host, link.port)
                continue
            except OSError as exc:
                log.debug("vpcd %s:%d not listening (%s); retrying in %.2f s",
                          link.host, link.port, exc, delay)
                self.ended.wait(delay)
                delay = min(delay * 2, link.backoff_max_s)
                continue
            delay = link.backoff_min_s
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self.ended.is_set():
                    sock.close()
                    break
                self._sock = sock
            self.connections += 1
            log.info("card connected to vpcd port %d", link.port)
            try:
                self._serve(sock)
                if not self.ended.is_set():
                    log.info("vpcd port %d closed the connection; reconnecting", link.port)
            except CardPulled:
                log.info("card on vpcd port %d pulled mid-APDU", link.port)
                self.pulled = True
                self.ended.set()
            except OSError as exc:
                if not self.ended.is_set():
                    log.info("connection to vpcd port %d lost (%s); reconnecting", link.port, exc)
            finally:
                with self._lock:
                    self._sock = None
                sock.close()
        link._ended(self)

    def _serve(self, sock: socket.socket) -> None:
        """Answer vpcd until it closes the connection (return) or the card is pulled (raise)."""
        while not self.ended.is_set():
            header = _recv_exact(sock, 2)
            if header is None:
                return
            (length,) = struct.unpack(">H", header)
            payload = _recv_exact(sock, length)
            if payload is None:
                return
            reply = self._answer(payload)
            if reply is not None:
                sock.sendall(struct.pack(">H", len(reply)) + reply)

    def _answer(self, payload: bytes) -> bytes | None:
        engine = self.engine
        if len(payload) == 1:
            ctrl = payload[0]
            if ctrl == CTRL_GET_ATR:
                return bytes(engine.atr)
            if ctrl == CTRL_POWER_ON:
                engine.power_on()
            elif ctrl == CTRL_POWER_OFF:
                engine.power_off()
            elif ctrl == CTRL_RESET:
                engine.reset()
            else:
                log.warning("unknown vpcd control byte %#04x ignored", ctrl)
            return None
        if not payload:
            log.warning("empty message from vpcd ignored")
            return None
        try:
            return bytes(engine.respond(payload))
        except CardPulled:
            raise
        except Exception:  # a broken engine answers like a broken card
            log.exception("card engine failed on APDU %s", payload[:5].hex())
            return SW_NO_PRECISE_DIAGNOSIS


class VpcdLink:
    """One slot of vpcd's reader, seen from the card: insert an engine, remove it.

    Thread-safe. `insert` starts a thread that holds the TCP connection to vpcd (reconnecting
    while vpcd is away); `remove` closes it at once."""

    def __init__(self, port: int = VPCD_PORT, host: str = "127.0.0.1", *,
                 backoff_min_s: float = 0.01, backoff_max_s: float = 0.25,
                 connect_timeout_s: float = 0.05) -> None:
        self.host = host
        self.port = port
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._current: _Insertion | None = None
        self.pulled_count = 0  # cards that ended by CardPulled

    def insert(self, engine: CardEngine) -> None:
        """Put a card in the slot; raises SlotOccupied if one is there."""
        with self._lock:
            if self._current is not None and not self._current.ended.is_set():
                raise SlotOccupied(f"a card is already in the slot on vpcd port {self.port}")
            insertion = _Insertion(self, engine)
            self._current = insertion
        log.info("card inserted on vpcd port %d (ATR %s)", self.port, bytes(engine.atr).hex())
        insertion.thread.start()

    def remove(self, wait_s: float = 0.2) -> bool:
        """Take the card out; False if the slot was empty. Waits up to `wait_s` for the
        connection thread (an engine sleeping in respond() may outlast it; its answer is lost)."""
        with self._lock:
            insertion, self._current = self._current, None
        if insertion is None:
            return False
        insertion.end()
        insertion.thread.join(wait_s)
        log.info("card removed from vpcd port %d", self.port)
        return True

    def close(self) -> None:
        self.remove()

    @property
    def engine(self) -> CardEngine | None:
        with self._lock:
            return self._current.engine if self._current is not None else None

    @property
    def inserted(self) -> bool:
        with self._lock:
            return self._current is not None and not self._current.ended.is_set()

    @property
    def connected(self) -> bool:
        """A TCP connection to vpcd is open (vpcd may not have polled it yet)."""
        with self._lock:
            insertion = self._current
        return insertion is not None and insertion.connected

    def _ended(self, insertion: _Insertion) -> None:
        with self._lock:
            if insertion.pulled:
                self.pulled_count += 1
            if self._current is insertion:
                self._current = None
