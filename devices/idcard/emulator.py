"""An ID-card reader emulator that speaks GA/T 467 SAM frames on a pseudo-terminal.

The real driver opens the slave side of the pty (or a stable symlink to it) exactly as
it opens /dev/ttyUSB0, so every byte of the driver's framing, retry and reconnect code
runs in tests. Behaviour follows the protocol notes:

- find (20 01) answers 9F once per placement, then 80 for the already-found card until
  it is removed and placed again, as real readers do;
- select (20 02) needs a found card on the reader and answers 90 for as long as it stays;
- read (30 01, 30 10) needs a selected card; 30 03 answers 91 when the card has no
  appended address;
- damaged commands get 10 (checksum) or 11 (length), unknown ones 21.

Scripting: place_card/remove_card, and faults: fail_next_read, send_garbage,
corrupt_next_checksum, set_delay, unplug/replug. unplug closes the pty master, so the
driver's next I/O fails like a pulled USB cable; replug creates a new pty and re-points
the optional `link` symlink, so a driver configured with the link path reconnects.

Photos use the emulator's own test encoding (devices.idcard.emulator_photo), never WLT.

Standalone: ``python -m devices.idcard.emulator --link /tmp/kiosk/idcard --card resident``
"""
from __future__ import annotations

import argparse
import collections
import copy
import datetime as _dt
import errno
import hashlib
import logging
import os
import select
import signal
import sys
import threading
import time
import tomllib
import tty
from dataclasses import fields
from pathlib import Path
from typing import Any

from devices.idcard import protocol as p
from devices.idcard.emulator_photo import encode_emulator_photo, synthetic_portrait
from devices.idcard.identity import IdentityCard, encode_appended_address, encode_text_block

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).with_name("cards")
DEFAULT_SAM_ID = "05.01-20240101-0000012345-0000067890"
GARBAGE = b"\x00\xFF\x13\xAA\xAA\x96\x55\xAA\xAA\xAA\x96"  # contains partial preambles on purpose

_CARD_KEYS = {f.name for f in fields(IdentityCard)} - {
    "gender", "nation", "photo_wlt", "photo_bmp", "photo_note", "fingerprint",
}
_DATE_KEYS = ("birth_date", "valid_from", "valid_to")


def _as_date(value: Any, key: str, path: Path) -> Any:
    if isinstance(value, str) and value != "长期":
        try:
            return _dt.datetime.strptime(value, "%Y%m%d").date()
        except ValueError:
            raise ValueError(f"{path.name}: {key} must be a TOML date, YYYYMMDD or 长期, not {value!r}") from None
    return value


def synthetic_fingerprint(seed: str) -> bytes:
    """A 1024-byte stand-in for the fingerprint block, clearly marked as emulated."""
    out = bytearray(b"EMUF")
    block = seed.encode("utf-8")
    while len(out) < p.FINGERPRINT_LEN:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[: p.FINGERPRINT_LEN])


def load_card(path: Path) -> IdentityCard:
    """One card from a TOML file; its id is the file name without .toml."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    emulator = data.pop("emulator", {})
    unknown = set(data) - _CARD_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {', '.join(sorted(unknown))}")
    for key in _DATE_KEYS:
        if key in data:
            data[key] = _as_date(data[key], key, path)
    card = IdentityCard(**data)
    card.photo_wlt = encode_emulator_photo(synthetic_portrait(path.stem))
    if emulator.get("fingerprint"):
        card.fingerprint = synthetic_fingerprint(path.stem)
    try:
        encode_text_block(card)  # fails early when a field does not fit its bytes
    except ValueError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    return card


def load_cards(cards_dir: Path) -> dict[str, IdentityCard]:
    cards = {path.stem: load_card(path) for path in sorted(cards_dir.glob("*.toml"))}
    if not cards:
        raise ValueError(f"no card files (*.toml) in {cards_dir}")
    return cards


class SamEmulator:
    """A SAM module and its RF field, served on the master side of a pty in its own thread."""

    def __init__(
        self,
        cards_dir: str | None = None,
        pace_baud: int | None = None,
        link: str | None = None,
        sam_id: str = DEFAULT_SAM_ID,
    ) -> None:
        self.cards_dir = Path(cards_dir) if cards_dir else CARDS_DIR
        self._cards = load_cards(self.cards_dir)
        self.pace_baud = pace_baud
        self.link = link
        self.sam_id = sam_id
        self.port: str | None = None  # the slave tty of the current pty (changes on replug)
        self._lock = threading.Lock()
        self._placed: str | None = None
        self._found = False
        self._selected = False
        self._fail_next_read = False
        self._garbage_next = b""
        self._corrupt_next = 0
        self._delay = 0.0
        self._busy = False
        self._received: collections.deque[tuple[int, int]] = collections.deque(maxlen=10000)
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Create the pty, serve it, and return the path the driver should open."""
        if self._thread is not None:
            raise RuntimeError("emulator already running")
        self._plug()
        return self.link or self.port or ""

    def stop(self) -> None:
        """Stop serving, close the pty and remove the link. Safe to call twice."""
        self._unplug()
        self._remove_link()

    def unplug(self) -> None:
        """Like pulling the cable: stop answering, close the pty, remove the link."""
        self._unplug()
        self._remove_link()

    def replug(self) -> str:
        """Like plugging the cable back: a new pty (new `.port`) and the link re-pointed."""
        if self._thread is not None:
            raise RuntimeError("emulator is plugged in")
        with self._lock:  # a power-cycled reader forgets which card it had found
            self._found = self._selected = False
        self._plug()
        return self.link or self.port or ""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._wake_r, self._wake_w = os.pipe()
        self.port = os.ttyname(slave)
        if self.link:
            self._point_link(self.port)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="sam-emulator", daemon=True)
        self._thread.start()
        log.info("SAM emulator serving on %s%s", self.port, f" (link {self.link})" if self.link else "")

    def _unplug(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        if self._wake_w is not None:
            os.write(self._wake_w, b"x")
        thread.join(timeout=5)
        self._thread = None
        # the serving thread has exited, so no one is blocked on these descriptors
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._wake_r = self._wake_w = None

    def _point_link(self, target: str) -> None:
        assert self.link is not None
        Path(self.link).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{self.link}.tmp{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.link)  # atomic: the driver never sees a missing link while plugged

    def _remove_link(self) -> None:
        if self.link and os.path.islink(self.link):
            os.unlink(self.link)

    def __enter__(self) -> "SamEmulator":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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

    def idle(self) -> bool:
        """True when no command is being answered or waiting unread (e.g. after a slow reply)."""
        master = self._master
        if self._busy or master is None:
            return not self._busy
        try:
            ready, _, _ = select.select([master], [], [], 0)
        except (OSError, ValueError):
            return True
        return not ready

    def count(self, key: tuple[int, int]) -> int:
        """How many intact commands with this (CMD, PARA) were received since start."""
        with self._lock:
            return sum(1 for k in self._received if k == key)

    # -- serving --------------------------------------------------------------------------------
    def _serve(self) -> None:
        reader = p.FrameReader()
        master, wake = self._master, self._wake_r
        assert master is not None and wake is not None
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([master, wake], [], [], 0.5)
                if wake in ready or self._stop.is_set():
                    return
                if master not in ready:
                    continue
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:  # no slave open at this instant; wait for one
                        time.sleep(0.05)
                        continue
                    raise
                reader.feed(data)
                self._busy = True
                for item in reader.frames():
                    if isinstance(item, p.ChecksumError):
                        self._reply(p.build_response(p.SW3_BAD_CHECKSUM))
                    elif isinstance(item, p.FrameError):
                        self._reply(p.build_response(p.SW3_BAD_LENGTH))
                    else:
                        try:
                            command = item.as_command()
                        except p.MalformedResponse:
                            self._reply(p.build_response(p.SW3_BAD_LENGTH))
                            continue
                        self._reply(self._answer(command))
                    if self._stop.is_set():
                        return
                self._busy = False
        except Exception:  # the emulator must say why it stopped answering
            log.exception("SAM emulator stopped")
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

    def _reply(self, frame: bytes) -> None:
        with self._lock:
            garbage, self._garbage_next = self._garbage_next, b""
            corrupt = self._corrupt_next > 0
            self._corrupt_next = max(0, self._corrupt_next - 1)
            delay = self._delay
        if delay and self._stop.wait(delay):
            return
        if corrupt:
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        self._write(garbage + frame)

    def _write(self, data: bytes) -> None:
        """Write to the master, paced like a real line when pace_baud is set."""
        master = self._master
        assert master is not None
        chunk = 16 if self.pace_baud else len(data)
        seconds_per_byte = 10.0 / self.pace_baud if self.pace_baud else 0.0  # 8N1: 10 bits a byte
        start = time.monotonic()
        sent = 0
        give_up = start + 5.0 + len(data) * seconds_per_byte
        while sent < len(data) and not self._stop.is_set():
            if seconds_per_byte:
                wait = start + sent * seconds_per_byte - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
            try:
                sent += os.write(master, data[sent : sent + chunk])
            except BlockingIOError:
                if time.monotonic() > give_up:
                    log.warning("SAM emulator: nobody reads the port; reply dropped")
                    return
                select.select([], [master], [], 0.1)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.idcard.emulator",
        description="Serve an emulated ID-card reader (SAM, GA/T 467) on a pseudo-terminal.",
    )
    parser.add_argument("--link", help="keep a symlink to the pty here (configure the driver's port with it)")
    parser.add_argument("--card", help="card id to place at start")
    parser.add_argument("--cards-dir", help=f"directory of card TOML files (default {CARDS_DIR})")
    parser.add_argument("--pace-baud", type=int, help="emulate the timing of a serial line at this baud rate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    # Ctrl-C and a plain kill both end in the `finally` below, which removes the link;
    # a shell's background job starts with SIGINT ignored, so install the handlers explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    emulator = SamEmulator(args.cards_dir, pace_baud=args.pace_baud, link=args.link)
    if args.card:
        emulator.place_card(args.card)
    path = emulator.start()
    print(f"port {emulator.port}" + (f" link {args.link}" if args.link else ""), flush=True)
    print(f"cards: {', '.join(emulator.cards())}", flush=True)
    print("commands: place ID | remove | unplug | replug | garbage | corrupt | fail | delay S | list | quit",
          flush=True)
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
                elif verb == "list":
                    print(", ".join(emulator.cards()), flush=True)
                elif verb == "quit":
                    break
                else:
                    print(f"unknown command: {line.strip()}", flush=True)
                    continue
                print("ok", flush=True)
            except (KeyError, ValueError, RuntimeError) as exc:
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
