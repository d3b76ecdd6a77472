"""An ID-card reader emulator that speaks GA/T 467 SAM frames on a pseudo-terminal or TCP.

The real driver opens the slave side of the pty (or a stable symlink to it) exactly as
it opens /dev/ttyUSB0, or ``socket://127.0.0.1:PORT`` exactly as it opens a reader
behind a serial-device server, so every byte of the driver's framing, retry and
reconnect code runs in tests. Behaviour follows the protocol notes:

- find (20 01) answers 9F once per placement, then 80 for the already-found card until
  it is removed and placed again, as real readers do;
- select (20 02) needs a found card on the reader and answers 90 for as long as it stays;
- read (30 01, 30 10) needs a selected card; 30 03 answers 91 when the card has no
  appended address;
- damaged commands get 10 (checksum) or 11 (length), unknown ones 21.

One protocol brain (`SamEmulator`: frames in, answers, faults, line pacing) serves
whichever transport it is plugged into; a transport only opens, waits, reads, writes
and closes:

- pty (default): the driver opens the slave tty or the optional `link` symlink;
- TCP (`tcp_port`, 0 = any free port): a listener on 127.0.0.1 only, one client at a
  time (a newer connection replaces the older one, as a device server does when the
  host reconnects before it noticed the old link die).

Scripting: place_card/remove_card, and faults: fail_next_read, send_garbage,
corrupt_next_checksum, set_delay, babble, unplug/replug. unplug closes the pty master
(or the TCP connection and listener, so connecting is refused), and the driver's next
I/O fails like a pulled cable; replug creates a new pty and re-points `link`, or
listens again on the same TCP port, so a driver keeps its configured port.

With `pace_baud` the emulator keeps the timing of a real 8N1 line both ways: a command
counts as received only when its last byte would have arrived, and each reply byte is
delivered no earlier than it would have been on the wire.

Photos use the emulator's own test encoding (devices.idcard.emulator_photo), never WLT.

Standalone::

    python -m devices.idcard.emulator --link /tmp/kiosk/idcard --card resident
    python -m devices.idcard.emulator --tcp 0 --card resident     # prints socket://127.0.0.1:PORT
"""
from __future__ import annotations

import abc
import argparse
import collections
import copy
import datetime as _dt
import errno
import functools
import hashlib
import logging
import os
import random
import select
import signal
import socket
import sys
import threading
import time
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from devices.idcard import protocol as p
from devices.idcard.emulator_photo import encode_emulator_photo, portrait_from_photo, synthetic_portrait
from devices.idcard.identity import LONG_TERM, IdentityCard, encode_appended_address, encode_text_block
from devices.pty_emulator import ServedEmulator, open_raw_pty, point_link, remove_link

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).with_name("cards")
# test face photos fetched by scripts/setup.sh (never committed)
FACES_DIR = Path(__file__).resolve().parents[2] / "var" / "testdata" / "faces"
DEFAULT_SAM_ID = "05.01-20240101-0000012345-0000067890"
GARBAGE = b"\x00\xFF\x13\xAA\xAA\x96\x55\xAA\xAA\xAA\x96"  # contains partial preambles on purpose
LOOPBACK = "127.0.0.1"  # the TCP transport never listens beyond this machine

_CARD_KEYS = {f.name for f in fields(IdentityCard)} - {
    "gender", "nation", "photo_wlt", "photo_bmp", "photo_note", "fingerprint",
}
_DATE_KEYS = ("birth_date", "valid_from", "valid_to")


def _as_date(value: Any, key: str, path: Path) -> _dt.date | str:
    """A date key's value as the card holds it: a date, or 长期 for a valid_to that never ends."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date) or (key == "valid_to" and value == LONG_TERM):
        return value
    if isinstance(value, str):
        try:
            return _dt.datetime.strptime(value, "%Y%m%d").date()
        except ValueError:
            pass
    also = ", YYYYMMDD or 长期" if key == "valid_to" else " or YYYYMMDD"
    raise ValueError(f"{path.name}: {key} must be a TOML date{also}, not {value!r}")


def _card_values(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The card file's values, checked: dates for date keys, text for the rest (a number where
    text belongs would otherwise fail deep in the text-block encoder, naming no file)."""
    unknown = set(data) - _CARD_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DATE_KEYS:
            values[key] = _as_date(value, key, path)
        elif isinstance(value, str):
            values[key] = value
        else:
            raise ValueError(f"{path.name}: {key} must be text (in quotes), not {value!r}")
    return values


def synthetic_fingerprint(seed: str) -> bytes:
    """A 1024-byte stand-in for the fingerprint block, clearly marked as emulated."""
    out = bytearray(b"EMUF")
    block = seed.encode("utf-8")
    while len(out) < p.FINGERPRINT_LEN:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[: p.FINGERPRINT_LEN])


def load_card(path: Path, faces_dir: Path | None = None) -> IdentityCard:
    """One card from a TOML file; its id is the file name without .toml.

    `[emulator] photo = "obama.jpg"` gives the card a real face (a test photo from
    `faces_dir`, see scripts/setup.sh) instead of the drawn test pattern, so face
    verification can be exercised; without the file the pattern is used and a warning says why."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    emulator = data.pop("emulator", {})
    if not isinstance(emulator, dict):
        raise ValueError(f"{path.name}: emulator must be a table ([emulator]), not {emulator!r}")
    values = _card_values(data, path)
    try:
        card = IdentityCard(**values)
    except (TypeError, ValueError) as exc:  # card_type missing or unknown
        raise ValueError(f"{path.name}: {exc}") from None
    card.photo_wlt = encode_emulator_photo(synthetic_portrait(path.stem))
    if emulator.get("photo"):
        photo = (faces_dir or FACES_DIR) / str(emulator["photo"])
        try:
            card.photo_wlt = _portrait(photo)
        except (OSError, ValueError) as exc:
            log.warning("card %s: face photo %s not usable (%s); the drawn test pattern is used "
                        "(run scripts/setup.sh to fetch the test photos)", path.stem, photo, exc)
    if emulator.get("fingerprint"):
        card.fingerprint = synthetic_fingerprint(path.stem)
    try:
        encode_text_block(card)  # fails early when a field does not fit its bytes
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    return card


@functools.lru_cache(maxsize=16)
def _portrait(photo: Path) -> bytes:
    if not photo.is_file():
        raise FileNotFoundError(f"{photo} does not exist")
    return portrait_from_photo(photo)


def load_cards(cards_dir: Path, faces_dir: Path | None = None) -> dict[str, IdentityCard]:
    cards = {path.stem: load_card(path, faces_dir) for path in sorted(cards_dir.glob("*.toml"))}
    if not cards:
        raise ValueError(f"no card files (*.toml) in {cards_dir}")
    return cards



# -- transports: where the emulator is plugged in -------------------------------------------------
class _Channel(abc.ABC):
    """One open line to the driver, with its own receive state (a new connection starts clean)."""

    def __init__(self) -> None:
        self.frames = p.FrameReader()
        self.rx_done = 0.0  # pacing: when the bytes received so far would have finished arriving
        self.closed = False

    @abc.abstractmethod
    def fileno(self) -> int: ...

    @abc.abstractmethod
    def read(self) -> bytes | None:
        """Bytes waiting now; b"" when the far end has gone; None when nothing came after all."""

    @abc.abstractmethod
    def write(self, data: bytes) -> int:
        """Write part of `data` without blocking; BlockingIOError when the line is full,
        ConnectionError when the far end has gone."""

    @abc.abstractmethod
    def close(self) -> None: ...


class _PtyChannel(_Channel):
    def __init__(self, master: int) -> None:
        super().__init__()
        self.master = master

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes | None:
        try:
            return os.read(self.master, 4096) or None  # a pty has no "far end gone": the slave is ours too
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open at this instant; wait for one
                time.sleep(0.05)
                return None
            raise

    def write(self, data: bytes) -> int:
        return os.write(self.master, data)

    def close(self) -> None:
        self.closed = True
        try:
            os.close(self.master)
        except OSError:
            pass


class _SocketChannel(_Channel):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> bytes | None:
        try:
            return self.sock.recv(4096)
        except BlockingIOError:
            return None
        except OSError:  # reset by the peer
            return b""

    def write(self, data: bytes) -> int:
        return self.sock.send(data)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class _Transport(abc.ABC):
    """Opens, waits, hands over channels with input, closes. Knows nothing of the SAM protocol."""

    port: str | None = None  # what the driver opens (tty path or socket:// URL) while plugged in

    @abc.abstractmethod
    def plug(self) -> str:
        """Open the line; return what the driver should open."""

    @abc.abstractmethod
    def unplug(self) -> None:
        """Close everything, as a pulled cable would. Safe to call twice."""

    @abc.abstractmethod
    def waitables(self) -> list[Any]:
        """Objects (with fileno) whose readiness the serving loop waits for."""

    @abc.abstractmethod
    def channel_for(self, ready: Any) -> _Channel | None:
        """The channel with input behind a ready waitable (None when there is nothing to read,
        e.g. a connection was just accepted)."""

    @abc.abstractmethod
    def channels(self) -> list[_Channel]:
        """The open channels (for idle())."""

    def drop(self, channel: _Channel) -> None:
        """The far end of `channel` has gone."""


class _PtyTransport(_Transport):
    """A pseudo-terminal; the driver opens its slave side, or `link` pointing at it."""

    def __init__(self, link: str | None) -> None:
        self.link = link
        self._channel: _PtyChannel | None = None
        self._slave: int | None = None

    def plug(self) -> str:
        master, slave = open_raw_pty()
        self._channel, self._slave = _PtyChannel(master), slave
        self.port = os.ttyname(slave)
        if self.link:
            point_link(self.link, self.port)
        return self.link or self.port

    def unplug(self) -> None:
        channel, slave = self._channel, self._slave
        self._channel = self._slave = None
        if channel is not None:
            channel.close()
        if slave is not None:
            try:
                os.close(slave)
            except OSError:
                pass
        remove_link(self.link)

    def waitables(self) -> list[Any]:
        return [self._channel] if self._channel is not None else []

    def channel_for(self, ready: Any) -> _Channel | None:
        return ready if isinstance(ready, _Channel) else None

    def channels(self) -> list[_Channel]:
        return [self._channel] if self._channel is not None else []


class _TcpTransport(_Transport):
    """A TCP listener on 127.0.0.1, like a serial-device server; one client at a time.

    The port chosen at the first plug (0 = any free one) is kept across replugs, so a
    driver configured with the URL reconnects as it would to a power-cycled device server.
    """

    def __init__(self, port: int) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"TCP port {port} outside 0..65535")
        self.requested = port
        self.bound: int | None = None
        self._listener: socket.socket | None = None
        self._conn: _SocketChannel | None = None

    def plug(self) -> str:
        port = self.bound if self.bound is not None else self.requested
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # our own closed connections linger in TIME_WAIT; they must not block a replug
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, port))
            listener.listen(1)
        except OSError as exc:
            listener.close()
            raise OSError(exc.errno, f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}") from None
        listener.setblocking(False)
        self._listener = listener
        self.bound = listener.getsockname()[1]
        self.port = f"socket://{LOOPBACK}:{self.bound}"
        return self.port

    def unplug(self) -> None:
        conn, listener = self._conn, self._listener
        self._conn = self._listener = None
        if conn is not None:
            conn.close()
        if listener is not None:
            listener.close()  # from now on connecting is refused, like a dead device server

    def waitables(self) -> list[Any]:
        return [w for w in (self._listener, self._conn) if w is not None]

    def channel_for(self, ready: Any) -> _Channel | None:
        if ready is not self._listener:
            return ready if isinstance(ready, _Channel) else None
        try:
            sock, peer = ready.accept()
        except OSError:  # the client gave up between select and accept
            return None
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paced 16-byte chunks go out at once
        if self._conn is not None:
            log.info("SAM emulator: a new connection replaces the old one")
            self._conn.close()
        self._conn = _SocketChannel(sock)
        log.info("SAM emulator: driver connected from %s:%d", peer[0], peer[1])
        return None

    def channels(self) -> list[_Channel]:
        return [self._conn] if self._conn is not None else []

    def drop(self, channel: _Channel) -> None:
        channel.close()
        if channel is self._conn:
            self._conn = None
            log.info("SAM emulator: driver disconnected")


# -- the emulated SAM ------------------------------------------------------------------------------
class SamEmulator(ServedEmulator):
    """A SAM module and its RF field, served on a pty or a loopback TCP port in its own thread.

    Not a PtyEmulator: the line is a `_Transport` (pty or TCP), so only the lifecycle is shared."""

    NAME = "SAM emulator"
    THREAD_NAME = "sam-emulator"

    # what the driver needs to read this emulator's cards fully: its photo test encoding
    DRIVER_DEFAULTS = {"photo_decoder": "emulator"}

    def __init__(
        self,
        cards_dir: str | None = None,
        pace_baud: int | None = None,
        link: str | None = None,
        sam_id: str = DEFAULT_SAM_ID,
        tcp_port: int | None = None,
        faces_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.cards_dir = Path(cards_dir) if cards_dir else CARDS_DIR
        self._cards = load_cards(self.cards_dir, Path(faces_dir) if faces_dir else None)
        if pace_baud is not None and pace_baud <= 0:
            raise ValueError(f"pace_baud must be positive, not {pace_baud}")
        self.pace_baud = pace_baud
        if tcp_port is not None and link:
            raise ValueError("link is for the pty transport; a TCP emulator is reached at its socket:// URL")
        self.link = link
        self.sam_id = sam_id
        self._transport: _Transport = _TcpTransport(tcp_port) if tcp_port is not None else _PtyTransport(link)
        self._lock = threading.Lock()
        self._placed: str | None = None
        self._found = False
        self._selected = False
        self._fail_next_read = False
        self._garbage_next = b""
        self._corrupt_next = 0
        self._delay = 0.0
        self._babble = False
        self._noise = random.Random()
        self._busy = False
        self._received: collections.deque[tuple[int, int]] = collections.deque(maxlen=10000)

    # -- lifecycle ------------------------------------------------------------------------------
    # unplug closes the pty, or the TCP connection and listener (connecting is refused until
    # replug); replug makes a new pty (new `.port`, link re-pointed) or listens on the same port
    def _on_replug(self) -> None:
        with self._lock:  # a power-cycled reader forgets which card it had found
            self._found = self._selected = False

    @property
    def tcp_port(self) -> int | None:
        """The TCP port listened on (known after start; kept across replugs); None on a pty."""
        return self._transport.bound if isinstance(self._transport, _TcpTransport) else None

    def _open(self) -> str:
        target = self._transport.plug()
        self.port = self._transport.port  # the slave tty or the socket:// URL
        return target

    def _close(self) -> None:
        self._transport.unplug()

    # -- scripting ------------------------------------------------------------------------------
    def cards(self) -> list[str]:
        """Ids of the cards that can be placed (file names without .toml)."""
        return sorted(self._cards)

    def card(self, card_id: str) -> IdentityCard:
        """A copy of a card's data, for tests to compare what the driver read."""
        return copy.deepcopy(self._card(card_id))

    def _card(self, card_id: str) -> IdentityCard:
        try:
            return self._cards[card_id]
        except KeyError:
            raise KeyError(f"no card {card_id!r}; known: {', '.join(self.cards())}") from None

    def place_card(self, card_id: str) -> None:
        """Put a card on the reader (replacing any card there)."""
        self._card(card_id)
        with self._lock:
            self._placed = card_id
            self._found = self._selected = False

    def remove_card(self) -> None:
        with self._lock:
            self._placed = None
            self._found = self._selected = False

    @property
    def placed(self) -> str | None:
        return self._placed

    def fail_next_read(self) -> None:
        """The next 30 01/30 10 answers 41 (read failed), as when a card is slid away mid-read."""
        with self._lock:
            self._fail_next_read = True

    def send_garbage(self, data: bytes = GARBAGE) -> None:
        """Prefix the next reply with line noise (partial preambles included by default)."""
        with self._lock:
            self._garbage_next += data

    def corrupt_next_checksum(self, times: int = 1) -> None:
        """Send the next `times` replies with a wrong CHK byte."""
        with self._lock:
            self._corrupt_next += times

    def set_delay(self, seconds: float) -> None:
        """Wait this long before every reply (0 to answer promptly again)."""
        with self._lock:
            self._delay = max(0.0, float(seconds))

    def babble(self, on: bool = True) -> None:
        """Answer every command with random bytes and never a frame, as a line at the wrong
        baud rate or another device on the port does (the noise never holds 0xAA, so it
        cannot contain a preamble)."""
        with self._lock:
            self._babble = bool(on)

    def idle(self) -> bool:
        """True when no command is being answered or waiting unread (e.g. after a slow reply)."""
        if self._busy:
            return False
        channels = self._transport.channels() if self._thread is not None else []
        if not channels:
            return True
        try:
            ready, _, _ = select.select(channels, [], [], 0)
        except (OSError, ValueError):
            return True
        return not ready

    def count(self, key: tuple[int, int]) -> int:
        """How many intact commands with this (CMD, PARA) were received since start."""
        with self._lock:
            return sum(1 for k in self._received if k == key)

    # -- serving (the same for every transport) ----------------------------------------------------
    def _serve(self) -> None:
        transport, wake = self._transport, self._wake_r
        assert wake is not None
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([wake, *transport.waitables()], [], [], 0.5)
                if wake in ready or self._stop.is_set():
                    return
                for item in ready:
                    channel = transport.channel_for(item)
                    if channel is None or channel.closed:
                        continue
                    data = channel.read()
                    if data is None:
                        continue
                    if data:
                        self._handle(channel, data)
                    if not data or channel.closed:
                        transport.drop(channel)
                    if self._stop.is_set():
                        return
        except Exception:  # the emulator must say why it stopped answering
            log.exception("SAM emulator stopped")
        finally:
            self._busy = False

    @property
    def _byte_time(self) -> float:
        return 10.0 / self.pace_baud if self.pace_baud else 0.0  # 8N1: 10 bits a byte

    def _handle(self, channel: _Channel, data: bytes) -> None:
        """The protocol brain: bytes from the line in, one answer per frame out."""
        if self.pace_baud:  # the last of these bytes would still be on the wire for a while
            channel.rx_done = max(channel.rx_done, time.monotonic()) + len(data) * self._byte_time
        channel.frames.feed(data)
        self._busy = True
        try:
            for item in channel.frames.frames():
                if isinstance(item, p.ChecksumError):
                    reply = p.build_response(p.SW3_BAD_CHECKSUM)
                elif isinstance(item, p.FrameError):
                    reply = p.build_response(p.SW3_BAD_LENGTH)
                else:
                    try:
                        reply = self._answer(item.as_command())
                    except p.MalformedResponse:
                        reply = p.build_response(p.SW3_BAD_LENGTH)
                self._reply(channel, reply)
                if self._stop.is_set() or channel.closed:
                    return
        finally:
            self._busy = False

    def _answer(self, command: p.Command) -> bytes:
        key = command.key
        with self._lock:
            self._received.append(key)
            card = self._cards[self._placed] if self._placed else None
            if key == p.RESET:
                self._found = self._selected = False
                return p.build_response(p.SW3_SUCCESS)
            if key == p.SAM_STATUS or key == p.SET_RF_FRAME_SIZE:
                return p.build_response(p.SW3_SUCCESS)
            if key == p.SAM_ID:
                return p.build_response(p.SW3_SUCCESS, p.encode_sam_id(self.sam_id))
            if key == p.FIND_CARD:
                if card is not None and not self._found:
                    self._found = True
                    return p.build_response(p.SW3_CARD_FOUND, bytes(4))
                return p.build_response(p.SW3_NO_CARD)
            if key == p.SELECT_CARD:
                if card is not None and self._found:
                    self._selected = True
                    return p.build_response(p.SW3_SUCCESS, bytes(8))
                return p.build_response(p.SW3_SELECT_FAILED)
            if key in (p.READ_TEXT_PHOTO, p.READ_TEXT_PHOTO_FINGERPRINT):
                if card is None or not self._selected:
                    return p.build_response(p.SW3_READ_FAILED)
                if self._fail_next_read:
                    self._fail_next_read = False
                    return p.build_response(p.SW3_READ_FAILED)
                fingerprint = card.fingerprint if key == p.READ_TEXT_PHOTO_FINGERPRINT else None
                blocks = p.build_card_blocks(encode_text_block(card), card.photo_wlt, fingerprint)
                return p.build_response(p.SW3_SUCCESS, blocks)
            if key == p.READ_APPENDED_ADDRESS:
                if card is None or not self._selected:
                    return p.build_response(p.SW3_READ_FAILED)
                if not card.appended_address:
                    return p.build_response(p.SW3_NO_SUCH_ITEM)
                return p.build_response(p.SW3_SUCCESS, encode_appended_address(card.appended_address))
            return p.build_response(p.SW3_BAD_COMMAND)

    def _reply(self, channel: _Channel, frame: bytes) -> None:
        with self._lock:
            garbage, self._garbage_next = self._garbage_next, b""
            corrupt = self._corrupt_next > 0
            self._corrupt_next = max(0, self._corrupt_next - 1)
            delay = self._delay
            babble = self._babble
        received = channel.rx_done - time.monotonic()  # paced: the command is not all here yet
        if received > 0 and self._stop.wait(received):
            return
        if delay and self._stop.wait(delay):
            return
        if corrupt:
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        if babble:
            noise = self._noise.randbytes(len(garbage) + len(frame))
            frame, garbage = noise.replace(b"\xAA", b"\x55"), b""
        self._write(channel, garbage + frame)

    def _write(self, channel: _Channel, data: bytes) -> None:
        """Write to the line; paced like a real one when pace_baud is set (a byte goes out
        when its last bit would have arrived, never earlier)."""
        chunk = 16 if self.pace_baud else len(data)
        seconds_per_byte = self._byte_time
        start = time.monotonic()
        sent = 0
        give_up = start + 5.0 + len(data) * seconds_per_byte
        while sent < len(data) and not self._stop.is_set():
            piece = data[sent : sent + chunk]
            if seconds_per_byte:
                wait = start + (sent + len(piece)) * seconds_per_byte - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            try:
                sent += channel.write(piece)
            except BlockingIOError:
                if time.monotonic() > give_up:
                    log.warning("SAM emulator: nobody reads the port; reply dropped")
                    return
                select.select([], [channel], [], 0.1)
            except ConnectionError as exc:  # the driver hung up mid-reply
                log.info("SAM emulator: reply not delivered (%s)", exc)
                channel.closed = True
                return


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.idcard.emulator",
        description="Serve an emulated ID-card reader (SAM, GA/T 467) on a pseudo-terminal, "
        "or on a loopback TCP port like a reader behind a serial-device server.",
        epilog="examples:\n"
        "  python -m devices.idcard.emulator --link /tmp/kiosk/idcard --card resident\n"
        "  python -m devices.idcard.emulator --tcp 0 --card resident   # prints port socket://127.0.0.1:PORT",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--link", help="keep a symlink to the pty here (configure the driver's port with it)")
    transport.add_argument("--tcp", type=int, metavar="PORT",
                           help="serve on TCP 127.0.0.1:PORT instead of a pty (0 = any free port)")
    parser.add_argument("--card", help="card id to place at start")
    parser.add_argument("--cards-dir", help=f"directory of card TOML files (default {CARDS_DIR})")
    parser.add_argument("--pace-baud", type=int, help="emulate the timing of a serial line at this baud rate")
    args = parser.parse_args(argv)
    if args.tcp is not None and not 0 <= args.tcp <= 65535:
        parser.error(f"--tcp {args.tcp}: a TCP port is 0..65535 (0 = any free port)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    # Ctrl-C and a plain kill both end in the `finally` below, which removes the link;
    # a shell's background job starts with SIGINT ignored, so install the handlers explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    emulator = SamEmulator(args.cards_dir, pace_baud=args.pace_baud, link=args.link, tcp_port=args.tcp)
    if args.card:
        emulator.place_card(args.card)
    try:
        path = emulator.start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"port {emulator.port}" + (f" link {args.link}" if args.link else ""), flush=True)
    print(f"cards: {', '.join(emulator.cards())}", flush=True)
    print("commands: place ID | remove | unplug | replug | garbage | corrupt | fail | delay S | "
          "babble [off] | list | quit", flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            verb, rest = words[0], words[1:]
            try:
                if verb == "place" and rest:
                    emulator.place_card(rest[0])
                elif verb == "remove":
                    emulator.remove_card()
                elif verb == "unplug":
                    emulator.unplug()
                elif verb == "replug":
                    path = emulator.replug()
                    print(f"port {emulator.port}", flush=True)
                elif verb == "garbage":
                    emulator.send_garbage()
                elif verb == "corrupt":
                    emulator.corrupt_next_checksum()
                elif verb == "fail":
                    emulator.fail_next_read()
                elif verb == "delay" and rest:
                    emulator.set_delay(float(rest[0]))
                elif verb == "babble":
                    emulator.babble(not rest or rest[0] != "off")
                elif verb == "list":
                    print(", ".join(emulator.cards()), flush=True)
                elif verb == "quit":
                    break
                else:
                    print(f"unknown command: {line.strip()}", flush=True)
                    continue
                print("ok", flush=True)
            except (KeyError, ValueError, RuntimeError, OSError) as exc:
                print(f"error: {exc}", flush=True)
        else:
            # stdin closed (e.g. started in the background): serve until interrupted
            print(f"serving {path}; Ctrl-C to stop", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
