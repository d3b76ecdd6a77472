"""SAM serial driver for second-generation ID-card readers (GA/T 467 frames over pyserial).

Transport rules (see STACK.md "Serial devices" and STYLE.md on pyserial):

- Ports are opened with ``serial.serial_for_url`` so ``socket://``, ``loop://`` and
  ``spy://`` work; modem lines are never touched (a pty refuses those ioctls).
- Every command has its own deadline (`timeout_s`) for a complete answer; reads are
  short slices inside it, so a dead line cannot hang the caller.
- The receiver resynchronises on the preamble after garbage. A damaged answer (bad
  CHK or LEN), or the SAM saying our command arrived damaged (SW3 10/11), makes the
  driver resend the command up to `retries` times, then DeviceProtocolError.
- Any OS or pyserial error closes the port and raises DeviceDisconnected naming the
  port, so the supervisor marks the reader offline and reopens it with back-off.

Card presence (`poll`): the supervisor calls poll every ~0.2 s. Real readers answer
"card found" (9F) to *find* only once per placement: after that an already-found card
answers "no card" (80) to find until it leaves the field. So presence is "find says
9F, or select says 90": while a card is known to be present, a poll whose find gives
80 tries *select*; 90 means the card is still there. The card counts as removed only
after `removal_polls` consecutive polls in which neither find nor select saw it,
which also absorbs a single missed RF exchange. A select that succeeds while no card
is known (e.g. read_card() consumed the 9F) is treated as a new placement. That select
succeeds repeatedly on an already-read card is an assumption from the protocol notes,
implemented the same way by the emulator; verify it on each reader model.

Privacy: nothing personal is logged; ID numbers appear masked only.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from typing import Any, Callable

import serial
from pydantic import BaseModel, ConfigDict, Field

from devices.base import (
    DeviceDisconnected,
    DeviceError,
    DeviceProtocolError,
    DeviceState,
    DeviceTimeout,
    MediaState,
    SelfTestResult,
)
from devices.idcard import protocol as p
from devices.idcard.identity import (
    VALIDITY_PROBLEMS,
    CardDataError,
    IdentityCard,
    decode_appended_address,
    decode_text_block,
)
from devices.idcard.interface import CARD_PLACED, CARD_REMOVED, IdCardReader
from devices.idcard.photo import (
    PhotoDecodeError,
    PhotoDecoder,
    PhotoDecoderUnavailable,
    load_photo_decoder,
)
from devices.serial_link import LINK_ERRORS, SerialPortOwner

log = logging.getLogger(__name__)

_READ_SLICE_S = 0.05  # one blocking read; the command deadline is checked between slices


class SamSerialReader(SerialPortOwner, IdCardReader):
    """An ID-card reader whose SAM module speaks GA/T 467 frames on a serial line."""

    WHAT = "ID-card reader"  # how faults name it

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the sam_serial driver."""

        model_config = ConfigDict(extra="forbid")

        port: str = Field(
            description="Serial port or pyserial URL of the reader, e.g. /dev/ttyUSB0, "
            "/dev/serial/by-id/..., socket://host:port, or the emulator's link path",
            min_length=1,
        )
        baudrate: int = Field(default=115200, gt=0, description="Line speed; SAM modules use 115200 baud 8N1")
        timeout_s: float = Field(
            default=1.0, gt=0, le=30, description="Deadline in seconds for one command's complete answer"
        )
        retries: int = Field(
            default=2, ge=0, le=10, description="How many times a command is resent after a damaged answer"
        )
        photo_decoder: str = Field(
            default="",
            description="Photo (WLT) decoder: empty for none (photo reported unavailable), "
            "'emulator' for the emulator's test encoding, or the path of the vendor's WLT library",
        )
        photo_decoder_symbol: str = Field(
            default="unpack", description="Name of the unpack function in the vendor's WLT library"
        )
        removal_polls: int = Field(
            default=2, ge=1, le=50, description="Consecutive polls without the card before it counts as removed"
        )

    def __init__(
        self,
        name: str,
        *,
        port: str,
        baudrate: int = 115200,
        timeout_s: float = 1.0,
        retries: int = 2,
        photo_decoder: str = "",
        photo_decoder_symbol: str = "unpack",
        removal_polls: int = 2,
        today: Callable[[], _dt.date] | None = None,
    ) -> None:
        super().__init__(name)
        self.params = self.Params(
            port=port,
            baudrate=baudrate,
            timeout_s=timeout_s,
            retries=retries,
            photo_decoder=photo_decoder,
            photo_decoder_symbol=photo_decoder_symbol,
            removal_polls=removal_polls,
        )
        self._today = today or _dt.date.today
        self._io_lock = threading.RLock()
        self._port: Any = None  # a serial.SerialBase once open
        self._frames = p.FrameReader()
        self._card_present = False
        self._missed_polls = 0
        self._decoder: PhotoDecoder | None = None
        self._decoder_problem = ""
        self.sam_id: str = ""

    # -- helpers -----------------------------------------------------------------------------
    def _forget_line(self) -> None:
        self._frames.clear()

    def _lost(self, exc: BaseException, after: list[Callable[[], None]]) -> DeviceDisconnected:
        """Close on a link error; queue the status/events; return the error to raise."""
        self._close_port()
        args = exc.args
        reason = f"[Errno {args[0]}] {args[1]}" if len(args) == 2 and isinstance(args[0], int) else str(exc)
        if self._networked:
            message = (
                f"{self._where()} lost ({reason}); check that the serial-device server is powered "
                "and reachable, and its cable to the reader"
            )
        else:
            message = (
                f"{self._where()} lost ({reason}); check the reader's USB/serial cable and power, "
                f"and that {self.port_name} exists"
            )
        self._forget_card(after, reason="closed")
        after.append(lambda: self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, message))
        return DeviceDisconnected(message)

    def _forget_card(self, after: list[Callable[[], None]], reason: str) -> None:
        if self._card_present:
            self._card_present = False
            after.append(lambda: self.emit(CARD_REMOVED, reason=reason))
        self._missed_polls = 0

    @staticmethod
    def _run(after: list[Callable[[], None]]) -> None:
        """Status changes and events are published outside the I/O lock, in order."""
        for action in after:
            action()

    # -- one command --------------------------------------------------------------------------
    def _exchange(self, key: tuple[int, int], data: bytes, after: list[Callable[[], None]]) -> p.Response:
        """Send a command and return its answer; resend after damaged frames (see module notes)."""
        port = self._require_port()
        name = p.COMMAND_NAMES.get(key, f"command {key[0]:02X} {key[1]:02X}")
        frame = p.build_command(key[0], key[1], data)
        attempts = self.params.retries + 1
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                port.reset_input_buffer()
                self._frames.clear()
                port.write(frame)
                response = self._read_response(port, name)
            except (p.FrameError, p.MalformedResponse) as exc:  # damaged on the line: ask again
                last = exc
                log.warning("%s: damaged answer to %s (%s), attempt %d/%d", self._where(), name, exc, attempt, attempts)
                continue
            except serial.SerialTimeoutException as exc:
                raise DeviceTimeout(f"{self._where()}: writing {name} timed out ({exc})") from None
            except LINK_ERRORS as exc:
                raise self._lost(exc, after) from None
            if response.sw3 in (p.SW3_BAD_CHECKSUM, p.SW3_BAD_LENGTH) and attempt < attempts:
                last = p.error_for_sw3(response.sw3, name)
                log.warning("%s: SAM got %s damaged (%s), attempt %d/%d", self._where(), name, last, attempt, attempts)
                continue
            return response
        raise DeviceProtocolError(
            f"{self._where()}: no intact answer to {name} after {attempts} attempts ({last}); "
            f"check the cable and that the line runs at {self.params.baudrate} baud"
        )

    def _read_response(self, port: Any, name: str) -> p.Response:
        """Read one answer frame before the command's deadline.

        Reads exactly what the frame still lacks: the 7 header bytes, then the LEN bytes
        the header announces. One blocking read per slice instead of one per byte matters
        on socket://, where pyserial's `in_waiting` says only "something" (0 or 1), and
        costs no latency: a read returns as soon as its bytes are in.
        """
        deadline = time.monotonic() + self.params.timeout_s
        noise_before = self._frames.discarded
        total = 0  # size of the frame being received, known once its header is in
        recent = b""  # the last two bytes fed: LEN, at the moment the header completes
        while True:
            frame = self._frames.next_frame()  # FrameError propagates to the retry loop
            if frame is not None:
                return frame.as_response()
            if time.monotonic() >= deadline:
                raise self._no_answer(name, self._frames.discarded - noise_before)
            # The reader keeps a suffix of what was fed; after next_frame() it is empty, a
            # partial preamble, or a preamble + valid LEN of an incomplete frame. Header
            # bytes are read exactly, so it first holds 7 bytes right after such a read.
            pending = self._frames.pending
            if pending < p.HEADER_LEN:
                total = 0
                want = p.HEADER_LEN - pending
            else:
                if not total:
                    total = p.HEADER_LEN + int.from_bytes(recent[-2:], "big")
                want = max(1, total - pending)
            chunk = port.read(want)
            if chunk:
                self._frames.feed(chunk)
                recent = (recent + chunk)[-2:]

    def _no_answer(self, name: str, noise: int) -> DeviceError:
        """The error for a command whose deadline passed without an intact answer."""
        partial = self._frames.pending
        self._frames.clear()
        if noise:  # bytes came, but never a frame: wrong speed, or not a SAM at all
            return DeviceProtocolError(
                f"{self._where()}: no SAM frame in answer to {name} within {self.params.timeout_s:g} s, "
                f"only {noise} bytes of line noise; check that the line runs at {self.params.baudrate} baud "
                "and that the port is the ID-card reader"
            )
        detail = f" (only {partial} bytes of a frame arrived)" if partial else ""
        return DeviceTimeout(
            f"{self._where()}: no answer to {name} within {self.params.timeout_s:g} s{detail}; "
            "check that the reader is powered and the port and baud rate are right"
        )

    def _command(
        self,
        key: tuple[int, int],
        after: list[Callable[[], None]],
        data: bytes = b"",
        ok: tuple[int, ...] = (p.SW3_SUCCESS,),
    ) -> p.Response:
        name = p.COMMAND_NAMES.get(key, "command")
        return self._exchange(key, data, after).check(ok, context=name)

    # -- lifecycle ----------------------------------------------------------------------------
    def _open(self) -> None:
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                self._close_port()
                try:
                    self._port = serial.serial_for_url(
                        self.port_name,
                        baudrate=self.params.baudrate,
                        timeout=_READ_SLICE_S,
                        write_timeout=self.params.timeout_s,
                    )
                except (ValueError,) + LINK_ERRORS as exc:
                    where = "the device server's address and power" if self._networked else "the cable/USB adapter"
                    raise DeviceDisconnected(
                        f"cannot open {self._where()}: {exc}; check {where} and the port in [devices.{self.name}]"
                    ) from None
                try:
                    self._command(p.SAM_STATUS, after)
                    try:  # the SAM ID is for the technician; a SAM that refuses it still reads cards
                        self.sam_id = self._read_sam_id(after)
                    except (p.SamStatusError, p.MalformedResponse) as exc:
                        self.sam_id = ""
                        log.warning("%s: SAM ID not read: %s", self._where(), exc)
                except DeviceError:
                    self._close_port()
                    raise
                self._card_present = False
                self._missed_polls = 0
                self._load_decoder()
        finally:
            self._run(after)
        log.info("%s online (SAM %s)", self._where(), self.sam_id or "ID unknown")
        self.set_status(DeviceState.ONLINE, MediaState.ABSENT, "")

    def _read_sam_id(self, after: list[Callable[[], None]]) -> str:
        response = self._command(p.SAM_ID, after)
        return p.format_sam_id(response.data)

    def _load_decoder(self) -> None:
        try:
            self._decoder = load_photo_decoder(self.params.photo_decoder, self.params.photo_decoder_symbol)
            self._decoder_problem = ""
        except PhotoDecoderUnavailable as exc:
            # the reader still reads text; photos are reported unavailable and self_test fails
            self._decoder = None
            self._decoder_problem = str(exc)
            log.warning("%s: %s", self._where(), exc)

    def _close(self) -> None:
        after: list[Callable[[], None]] = []
        with self._io_lock:
            self._close_port()
            self._forget_card(after, reason="closed")
        after.append(lambda: self.set_status(DeviceState.OFFLINE, MediaState.UNKNOWN, "closed"))
        self._run(after)

    # -- verbs --------------------------------------------------------------------------------
    def read_card(self, with_fingerprint: bool = False) -> IdentityCard:
        """Find, select and read the card now (see IdCardReader.read_card)."""
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                found = self._exchange(p.FIND_CARD, b"", after)
                if found.sw3 == p.SW3_NO_CARD:
                    # an already-found card answers 80 to find: select tells if it is still there
                    selected = self._exchange(p.SELECT_CARD, b"", after)
                    if selected.sw3 == p.SW3_SELECT_FAILED:
                        raise p.NoCardError(p.SW3_NO_CARD, "find card")
                    selected.check(context="select card")
                else:
                    found.check((p.SW3_CARD_FOUND,), context="find card")
                    self._command(p.SELECT_CARD, after)
                return self._read_selected(after, with_fingerprint)
        finally:
            self._run(after)

    def _read_selected(self, after: list[Callable[[], None]], with_fingerprint: bool = False) -> IdentityCard:
        key = p.READ_TEXT_PHOTO_FINGERPRINT if with_fingerprint else p.READ_TEXT_PHOTO
        response = self._command(key, after)
        blocks = p.parse_card_blocks(response.data, with_fingerprint)
        identity = decode_text_block(blocks.text)
        identity.photo_wlt = blocks.photo
        identity.fingerprint = blocks.fingerprint
        extra = self._exchange(p.READ_APPENDED_ADDRESS, b"", after)
        if extra.sw3 == p.SW3_SUCCESS:
            identity.appended_address = decode_appended_address(extra.data)
        elif extra.sw3 != p.SW3_NO_SUCH_ITEM:
            log.info("%s: appended address not read (%s)", self._where(), p.describe_sw3(extra.sw3))
        self._decode_photo(identity)
        log.info("%s: read %s card %s", self._where(), identity.card_type, identity.masked_id)
        return identity

    def _decode_photo(self, identity: IdentityCard) -> None:
        identity.photo_bmp = None
        if self._decoder is None:
            identity.photo_note = "unavailable"
            return
        try:
            identity.photo_bmp = self._decoder.decode(identity.photo_wlt)
            identity.photo_note = "decoded"
        except PhotoDecodeError as exc:
            identity.photo_note = f"decode failed: {exc}"
            log.warning("%s: photo not decoded: %s", self._where(), exc)

    # -- supervision ----------------------------------------------------------------------------
    def poll(self) -> None:
        """Detect placement and removal; read each placed card once (see module notes)."""
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                self._poll_locked(after)
        finally:
            self._run(after)

    def _poll_locked(self, after: list[Callable[[], None]]) -> None:
        found = self._exchange(p.FIND_CARD, b"", after)
        if found.sw3 == p.SW3_CARD_FOUND:
            if self._card_present:  # a card found anew while one was known: it was swapped
                self._forget_card(after, reason="removed")
                after.append(lambda: self.set_status(DeviceState.ONLINE, MediaState.ABSENT, ""))
            selected = self._exchange(p.SELECT_CARD, b"", after)
            if selected.sw3 == p.SW3_SUCCESS:
                self._card_arrived(after)
            elif selected.sw3 != p.SW3_SELECT_FAILED:  # 81: the card left again at once
                selected.check(context="select card")
            return
        found.check((p.SW3_NO_CARD,), context="find card")
        selected = self._exchange(p.SELECT_CARD, b"", after)
        if selected.sw3 == p.SW3_SUCCESS:
            self._missed_polls = 0
            if not self._card_present:
                self._card_arrived(after)
            return
        selected.check((p.SW3_SELECT_FAILED,), context="select card")
        if self._card_present:
            self._missed_polls += 1
            if self._missed_polls >= self.params.removal_polls:
                self._card_present = False
                self._missed_polls = 0
                after.append(lambda: self.set_status(DeviceState.ONLINE, MediaState.ABSENT, ""))
                after.append(lambda: self.emit(CARD_REMOVED, reason="removed"))
                log.info("%s: card removed", self._where())

    def _card_arrived(self, after: list[Callable[[], None]]) -> None:
        """A selected card newly on the reader: read it once and queue card_placed.

        The card counts as present only once card_placed is queued, so a transport
        failure mid-read never leaves a card_removed without its card_placed.
        """
        self._missed_polls = 0
        event: dict[str, Any]
        try:
            identity = self._read_selected(after)
        except (p.SamStatusError, CardDataError, p.MalformedResponse) as exc:
            log.warning("%s: card placed but not read: %s", self._where(), exc)
            event = {"error": str(exc), "code": exc.code}
        else:
            event = {"identity": identity, "card_type": identity.card_type}
            problem = identity.validity_problem(self._today())
            if problem is not None:
                # the identity goes along so the visit can say why (e.g. expired) and wipe it
                log.info("%s: %s card %s not valid: %s", self._where(), identity.card_type,
                         identity.masked_id, problem)
                event.update(error=VALIDITY_PROBLEMS[problem], code=problem)
        self._card_present = True
        after.append(lambda: self.set_status(DeviceState.ONLINE, MediaState.PRESENT, ""))
        after.append(lambda: self.emit(CARD_PLACED, **event))

    # -- self-test --------------------------------------------------------------------------------
    def self_test(self) -> list[SelfTestResult]:
        """Port, SAM status, SAM ID and photo decoder, each in words a technician acts on."""
        results: list[SelfTestResult] = []
        opened_here = False
        if self._port is None:
            try:
                self.open()
                opened_here = True
            except DeviceError as exc:
                results.append(SelfTestResult("port opens", False, str(exc)))
                return results
        after: list[Callable[[], None]] = []
        try:
            with self._io_lock:
                results.append(
                    SelfTestResult("port opens", True, f"{self.port_name} open at {self.params.baudrate} baud")
                )
                try:
                    self._command(p.SAM_STATUS, after)
                    results.append(SelfTestResult("SAM status", True, "SAM answers status 90 (操作成功 / success)"))
                except DeviceError as exc:
                    results.append(SelfTestResult("SAM status", False, str(exc)))
                try:
                    self.sam_id = self._read_sam_id(after)
                    results.append(SelfTestResult("SAM ID", True, f"SAM ID {self.sam_id}"))
                except DeviceError as exc:
                    results.append(SelfTestResult("SAM ID", False, str(exc)))
                if self._decoder_problem:
                    results.append(SelfTestResult("photo decoder", False, self._decoder_problem))
                elif self._decoder is None:
                    results.append(
                        SelfTestResult(
                            "photo decoder", True, "none configured: card photos are reported unavailable"
                        )
                    )
                else:
                    results.append(
                        SelfTestResult("photo decoder", True, f"loaded {self.params.photo_decoder}")
                    )
        finally:
            self._run(after)
            if opened_here:
                self.close()
        return results
