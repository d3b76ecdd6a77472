"""A smart-card reader through PC/SC (pcscd) with pyscard, reading cards by profile.

One monitor thread per reader waits on SCardGetStatusChange (half a second at a time,
so closing is prompt) and reads each inserted card once with the reader's profiles,
in order: a profile whose application or records the card lacks gives way to the next.
When pcscd goes away (stopped, restarted, crashed) or the reader leaves the reader list
(unplugged), the thread records the fault in words and ends; `poll()` then raises
DeviceDisconnected, so the supervisor marks the reader offline and reopens it with
back-off: a new PC/SC context finds the service and the reader again by themselves.

`pcsc_socket` points libpcsclite at a pcscd other than the system one (it sets
PCSCLITE_CSOCK_NAME, which libpcsclite reads once per process: one PC/SC service per
process). The emulated terminal and the tests use it to reach their private pcscd.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.base import (DeviceDisconnected, DeviceError, DeviceProtocolError, DeviceState, MediaState,
                          SelfTestResult)
from devices.idcard.identity import VALIDITY_PROBLEMS
from devices.smartcard.apdu import CardDataError, CardStatusError
from devices.smartcard.holder import CARD_TYPE, SocialSecurityCard, holder_from_values
from devices.smartcard.interface import CARD_PLACED, CARD_REMOVED, NoCardError, SmartCardReader
from devices.smartcard.profile import Profile, ProfileMismatch, load_profile, read_card_data

log = logging.getLogger(__name__)

DEFAULT_PROFILES = ("social_security_3", "social_security_2", "social_security_1")
PULLED_SETTLE_S = 0.8  # two of pcscd's presence polls (0.4 s): after a card left mid-read
_socket_lock = threading.Lock()
_socket_in_use: str | None = None


class CardPulled(DeviceError):
    """The card left the reader while it was being read."""

    code = "card_pulled"


def _scard() -> Any:
    try:
        from smartcard import scard
    except ImportError as exc:  # pyscard missing, or libpcsclite not installed
        raise DeviceDisconnected(f"pyscard cannot load ({exc}): install the Debian package libpcsclite1 "
                                 "and run scripts/setup.sh") from None
    return scard


def use_pcsc_socket(path: str) -> None:
    """Point this process's PC/SC client at `path` (before its first PC/SC call)."""
    global _socket_in_use
    with _socket_lock:
        if not path:
            return
        if _socket_in_use not in (None, path):
            log.warning("PC/SC socket %s asked for, but this process already uses %s (libpcsclite reads "
                        "it once per process)", path, _socket_in_use)
            return
        os.environ["PCSCLITE_CSOCK_NAME"] = path
        _socket_in_use = path


def _hex(code: int) -> str:
    return f"0x{code & 0xFFFFFFFF:08X}"


class PcscReader(SmartCardReader):
    """One PC/SC reader (by name or name prefix; empty = the first reader) with card profiles."""

    class Params(BaseModel):
        """The `[devices.<name>]` parameters of the pcsc smartcard driver."""

        model_config = ConfigDict(extra="forbid")

        reader: str = Field(default="", description="The reader's PC/SC name or its beginning, as "
                            "`python -m provisioning detect` or `pcsc_scan` lists it; empty: the first reader")
        profiles: list[str] = Field(default=list(DEFAULT_PROFILES), min_length=1,
                                    description="Card profiles (devices/smartcard/profiles) tried in order")
        pcsc_socket: str = Field(default="", description="pcscd's socket when it is not the system one")
        read_photo: bool = Field(default=True, description="Read the card's photo for the face check")

        @field_validator("profiles")
        @classmethod
        def _known(cls, value: list[str]) -> list[str]:
            from devices.smartcard.profile import known_profiles

            unknown = [p for p in value if p not in known_profiles()]
            if unknown:
                raise ValueError(f"unknown card profile(s) {', '.join(unknown)}; known: {', '.join(known_profiles())}")
            return value

    def __init__(self, name: str, reader: str = "", profiles: Sequence[str] = DEFAULT_PROFILES,
                 pcsc_socket: str = "", read_photo: bool = True, monitor: bool = True,
                 today: Callable[[], Any] | None = None) -> None:
        super().__init__(name)
        self.reader_hint = reader
        self.profiles: list[Profile] = [load_profile(p) for p in profiles]
        self.read_photo = read_photo
        self.monitor = monitor
        self.pcsc_socket = pcsc_socket
        self._today = today
        self._context: int | None = None
        self._reader: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fault: str | None = None
        self._card_present = False
        self._event_count: int | None = None
        self._lock = threading.RLock()  # one card conversation at a time

    # -- lifecycle ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.name} ({self._reader or self.reader_hint or 'first PC/SC reader'})"

    def _open(self) -> None:
        scard = _scard()
        use_pcsc_socket(self.pcsc_socket)
        hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise DeviceDisconnected(self._service_fault(hr))
        self._context = context
        try:
            self._reader = self._find_reader()
        except DeviceError:
            self._release()
            raise
        self._fault = None
        self._card_present = False
        self._event_count = None
        self.set_status(DeviceState.ONLINE, MediaState.UNKNOWN, "")
        log.info("%s: PC/SC reader open", self._where())
        if self.monitor:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name=f"{self.name}-pcsc", daemon=True)
            self._thread.start()
        else:
            self.set_status(DeviceState.ONLINE, MediaState.PRESENT if self._card_in() else MediaState.ABSENT, "")

    def _service_fault(self, hr: int) -> str:
        scard = _scard()
        where = self.pcsc_socket or os.environ.get("PCSCLITE_CSOCK_NAME") or "the system socket /run/pcscd/pcscd.comm"
        if hr in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
            return (f"the PC/SC service (pcscd) is not running or not reachable at {where}: start it "
                    "(systemctl start pcscd.socket, or pcscd -f) and check that package pcscd is installed")
        return f"PC/SC context failed: {scard.SCardGetErrorMessage(hr)} ({_hex(hr)})"

    def _find_reader(self) -> str:
        scard = _scard()
        hr, readers = scard.SCardListReaders(self._context, [])
        if hr == scard.SCARD_E_NO_READERS_AVAILABLE or (hr == scard.SCARD_S_SUCCESS and not readers):
            raise DeviceDisconnected(f"no smart-card reader is connected (pcscd lists none): plug in the reader "
                                     f"{self.reader_hint!r} and check its USB cable" if self.reader_hint else
                                     "no smart-card reader is connected (pcscd lists none)")
        if hr != scard.SCARD_S_SUCCESS:
            raise DeviceDisconnected(self._service_fault(hr))
        if not self.reader_hint:
            return readers[0]
        for candidate in readers:
            if candidate == self.reader_hint or candidate.startswith(self.reader_hint):
                return candidate
        raise DeviceDisconnected(f"the smart-card reader {self.reader_hint!r} is not connected; pcscd lists: "
                                 f"{', '.join(readers)} (set devices.<name>.reader to one of them)")

    def _release(self) -> None:
        if self._context is not None:
            scard = _scard()
            scard.SCardReleaseContext(self._context)
            self._context = None

    def _close(self) -> None:
        self._stop.set()
        if self._context is not None:
            try:
                _scard().SCardCancel(self._context)
            except Exception:  # the service may be gone already
                pass
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            self._release()
        if self._card_present:
            self._card_present = False
            self.emit(CARD_REMOVED, reason="closed")

    def poll(self) -> None:
        if self._fault is not None:
            raise DeviceDisconnected(self._fault)

    # -- watching the reader ------------------------------------------------------------------------
    def _lost(self, hr: int) -> bool:
        """Whether an error code means the service or the reader is gone (the thread ends)."""
        scard = _scard()
        if hr in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_F_COMM_ERROR,
                  scard.SCARD_E_INVALID_HANDLE, scard.SCARD_E_NO_READERS_AVAILABLE):
            self._fault = self._service_fault(hr) if hr in (scard.SCARD_E_NO_SERVICE,
                                                            scard.SCARD_E_SERVICE_STOPPED) else \
                f"the PC/SC service went away ({scard.SCardGetErrorMessage(hr)}, {_hex(hr)}): pcscd restarted or stopped"
            return True
        if hr in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
            self._fault = (f"the smart-card reader {self._reader!r} was unplugged or stopped answering "
                           f"({_hex(hr)}): check its USB cable")
            return True
        return False

    def _watch(self) -> None:
        scard = _scard()
        state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            hr, states = scard.SCardGetStatusChange(self._context, 500, [(self._reader, state)])
            if self._stop.is_set():
                return
            if hr in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hr != scard.SCARD_S_SUCCESS:
                if self._lost(hr):
                    log.warning("%s: %s", self._where(), self._fault)
                    return
                log.warning("%s: waiting for a card failed: %s (%s)", self._where(),
                            scard.SCardGetErrorMessage(hr), _hex(hr))
                self._stop.wait(0.5)
                continue
            _, event, atr = states[0]
            state = event & ~scard.SCARD_STATE_CHANGED
            if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                self._lost(scard.SCARD_E_READER_UNAVAILABLE)
                log.warning("%s: %s", self._where(), self._fault)
                return
            present = bool(event & scard.SCARD_STATE_PRESENT) and not event & scard.SCARD_STATE_MUTE
            swapped = present and self._card_present and (event >> 16) != (self._event_count or event >> 16)
            self._event_count = event >> 16  # pcsc-lite counts insertions and removals in the high word
            if swapped or (not present and self._card_present):
                self._card_gone("removed")  # a card swapped between two of pcscd's polls counts too
            if present and not self._card_present:
                if not self._card_arrived(bytes(atr)):
                    # pulled mid-read: pcscd may not have seen it go yet, or another card may be in
                    # already; look again once its presence poll has run, from a clean slate
                    self._stop.wait(PULLED_SETTLE_S)
                    state = scard.SCARD_STATE_UNAWARE
            elif not present and self.status().media is MediaState.UNKNOWN:
                self.set_status(DeviceState.ONLINE, MediaState.ABSENT, "")

    def _card_gone(self, reason: str) -> None:
        self._card_present = False
        self.set_status(DeviceState.ONLINE, MediaState.ABSENT, "")
        self.emit(CARD_REMOVED, reason=reason)
        log.info("%s: card %s", self._where(), reason)

    def _card_arrived(self, atr: bytes) -> bool:
        """A card newly in the reader: read it once, then report it (always one card_placed).
        False when the card left during the read: then its card_removed is sent at once."""
        event: dict[str, Any]
        started = time.monotonic()
        try:
            identity = self.read_card()
        except CardPulled as exc:
            log.info("%s: %s", self._where(), exc)
            event = {"error": str(exc), "code": "card_pulled"}
        except NoCardError as exc:  # gone before we could even connect
            log.info("%s: card gone before reading: %s", self._where(), exc)
            event = {"error": str(exc), "code": "card_pulled"}
        except DeviceDisconnected as exc:
            self._fault = str(exc)
            log.warning("%s: %s", self._where(), exc)
            return True
        except ProfileMismatch as exc:
            event = {"error": f"not a card this reader knows (tried {', '.join(p.id for p in self.profiles)}): {exc}",
                     "code": "not_social_security"}
        except CardStatusError as exc:
            event = {"error": str(exc), "code": "card_blocked" if exc.blocked else "read_failed"}
        except CardDataError as exc:
            event = {"error": str(exc), "code": exc.code, "card_type": CARD_TYPE}
        except DeviceProtocolError as exc:
            event = {"error": str(exc), "code": "malformed_reply"}
        else:
            event = {"identity": identity, "card_type": identity.card_type}
            log.info("%s: card %s read with %s in %.0f ms", self._where(), identity, identity.profile,
                     (time.monotonic() - started) * 1000)
            problem = identity.validity_problem(self._today() if self._today else None)
            if problem is not None:
                log.info("%s: card %s not valid: %s", self._where(), identity, problem)
                event.update(error=VALIDITY_PROBLEMS[problem], code=problem)
        if "identity" not in event:
            log.warning("%s: card inserted but not read (ATR %s): %s", self._where(), atr.hex().upper(),
                        event["error"])
        self._card_present = True
        self.set_status(DeviceState.ONLINE, MediaState.PRESENT, "")
        self.emit(CARD_PLACED, **event)
        if event.get("code") == "card_pulled":
            self._card_gone("pulled")
            return False
        return True

    # -- talking to the card ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _caller_context(self) -> Iterator[int]:
        """The monitor thread's context for the monitor; a context of its own for any other
        caller, since the monitor's is blocked waiting for a card most of the time."""
        if self._context is None or self._reader is None:
            raise DeviceDisconnected(f"{self.name} is not open")
        if threading.current_thread() is self._thread or not self.monitor:
            yield self._context
            return
        scard = _scard()
        hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != scard.SCARD_S_SUCCESS:
            raise DeviceDisconnected(self._service_fault(hr))
        try:
            yield context
        finally:
            scard.SCardReleaseContext(context)

    def _card_in(self) -> bool:
        scard = _scard()
        with self._caller_context() as context:
            hr, states = scard.SCardGetStatusChange(context, 0, [(self._reader, scard.SCARD_STATE_UNAWARE)])
        if hr != scard.SCARD_S_SUCCESS:
            if self._lost(hr):
                raise DeviceDisconnected(self._fault or "PC/SC service lost")
            return False
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)

    def read_card(self) -> SocialSecurityCard:
        scard = _scard()
        with self._lock, self._caller_context() as context:
            hr, card, protocol = scard.SCardConnect(context, self._reader, scard.SCARD_SHARE_SHARED,
                                                    scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            if hr in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD):
                raise NoCardError(f"no card in {self._reader}")
            if hr != scard.SCARD_S_SUCCESS:
                if self._lost(hr):
                    raise DeviceDisconnected(self._fault or "PC/SC service lost")
                raise DeviceProtocolError(f"connecting to the card failed: {scard.SCardGetErrorMessage(hr)} "
                                          f"({_hex(hr)}); the card may be inserted the wrong way round")
            pci = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1

            def transmit(command: bytes) -> bytes:
                result, response = scard.SCardTransmit(card, pci, list(command))
                if result != scard.SCARD_S_SUCCESS:
                    if result in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD,
                                  scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_W_RESET_CARD,
                                  scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_W_UNRESPONSIVE_CARD,
                                  scard.SCARD_E_COMM_DATA_LOST, scard.SCARD_E_PROTO_MISMATCH):
                        raise CardPulled(f"the card left {self._reader} during the read "
                                         f"({scard.SCardGetErrorMessage(result)}, {_hex(result)})")
                    if self._lost(result):
                        raise DeviceDisconnected(self._fault or "PC/SC service lost")
                    raise DeviceProtocolError(f"sending a command failed: {scard.SCardGetErrorMessage(result)} "
                                              f"({_hex(result)})")
                if not response:  # vpcd (and some readers) pass on silence from a card pulled mid-command
                    raise CardPulled(f"the card in {self._reader} stopped answering during the read (no bytes "
                                     "came back): it was most likely pulled out")
                return bytes(response)

            try:
                return self._read_with_profiles(transmit)
            finally:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _read_with_profiles(self, transmit: Callable[[bytes], bytes]) -> SocialSecurityCard:
        mismatch: ProfileMismatch | None = None
        for profile in self.profiles:
            spec = profile if self.read_photo else Profile(profile.id, profile.title, profile.application,
                                                           profile.fields, None, profile.card_type)
            try:
                values = read_card_data(transmit, spec)
            except ProfileMismatch as exc:
                log.debug("%s: profile %s does not fit: %s", self._where(), profile.id, exc)
                mismatch = exc
                continue
            return holder_from_values(values, profile.id)
        assert mismatch is not None, "a reader has at least one profile"
        raise mismatch

    # -- for technicians --------------------------------------------------------------------------
    def readers(self) -> list[str]:
        """Every reader pcscd lists now (for detect and the self-test)."""
        scard = _scard()
        try:
            with self._caller_context() as context:
                hr, readers = scard.SCardListReaders(context, [])
        except DeviceDisconnected:
            return []
        return list(readers) if hr == scard.SCARD_S_SUCCESS else []

    def self_test(self) -> list[SelfTestResult]:
        results = [SelfTestResult("pcsc_service", self._context is not None,
                                  "pcscd answers" if self._context is not None else
                                  (self.status().fault or "not opened"))]
        if self._context is None:
            return results
        results.append(SelfTestResult("reader", self._reader is not None,
                                      f"reader {self._reader!r} found among {', '.join(self.readers()) or 'none'}"))
        try:
            present = self._card_in()
        except DeviceError as exc:
            results.append(SelfTestResult("card", False, str(exc)))
            return results
        if not present:
            results.append(SelfTestResult("card", True, "no card inserted (insert a card to test reading)"))
            return results
        try:
            identity = self.read_card()
        except DeviceError as exc:
            results.append(SelfTestResult("card", False, f"a card is inserted but cannot be read: {exc}"))
        else:
            results.append(SelfTestResult("card", True, f"card read with profile {identity.profile}: "
                                                        f"{identity.masked()['card_number']}"))
            identity.wipe()
        return results
