"""The emulated smart-card reader of an emulated terminal: virtual cards behind the real pcscd.

`PcscCardEmulator.start()` starts a PcscdRig (pcscd + vsmartcard's vpcd in a private
network and mount namespace, see devices.smartcard.pcscd_rig) and returns pcscd's
socket, which the terminal gives the real PcscReader as `pcsc_socket`. Cards are the
files in devices/smartcard/cards, inserted into the first virtual reader; behaviours
(blocked, slow, pull_after, ...) are those of devices.smartcard.card_emulator.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from devices.smartcard.card_emulator import CARDS_DIR, card_path, load_card
from devices.smartcard.pcscd_rig import PcscdRig, reader_names

log = logging.getLogger(__name__)

FACTORY = "devices.smartcard.card_emulator:load_card"

_shared_lock = threading.Lock()
_shared: PcscdRig | None = None
_users = 0


def process_rig_dir() -> Path:
    """The one place this process's private pcscd lives. libpcsclite reads its socket path
    (PCSCLITE_CSOCK_NAME) once per process, so every rig this process starts must put its
    socket at the same path."""
    return Path(tempfile.gettempdir()) / f"kiosk-pcsc-{os.getpid()}"


def _remove_dirs_of_dead_processes() -> None:
    """The benches of processes that were killed (their rig and pcscd died with them) leave
    their folder behind: remove those, never one whose process still runs."""
    for path in Path(tempfile.gettempdir()).glob("kiosk-pcsc-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def acquire_rig() -> PcscdRig:
    """This process's virtual-reader bench, started on first use; `release_rig()` when done."""
    global _shared, _users
    with _shared_lock:
        if _shared is None:
            _remove_dirs_of_dead_processes()
            rig = PcscdRig(process_rig_dir())
            rig.start()
            _shared = rig
        _users += 1
        return _shared


def release_rig() -> None:
    """One user less; the last one stops pcscd and the bench (only what this process started)."""
    global _shared, _users
    with _shared_lock:
        _users = max(0, _users - 1)
        if _users == 0 and _shared is not None:
            rig, _shared = _shared, None
            rig.stop()
            shutil.rmtree(process_rig_dir(), ignore_errors=True)

CONSOLE_HELP = """smartcard commands (the emulated social security card reader):
  cards                  the virtual cards (devices/smartcard/cards)
  insert CARD [KEY=VALUE ...]
                         insert a card, e.g. insert zhang-san, insert zhang-san slow=0.3,
                         insert zhang-san blocked=1, insert zhang-san wrong_application=1
  pull                   insert zhang-san and pull it out in the middle of the read
  remove                 take the card out
  unplug | replug        the reader's USB cable out / in again
  restart                restart pcscd (the PC/SC service)
  status                 what the reader and pcscd are doing"""


def _value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


class PcscCardEmulator:
    """The first virtual reader of a private pcscd, for one terminal."""

    ADDRESS_PARAM = "pcsc_socket"
    DRIVER_DEFAULTS = {"reader": reader_names()[0]}

    def __init__(self, card: str = "") -> None:
        self.slot = 0
        self.first_card = card
        self._rig: PcscdRig | None = None
        self.inserted: str | None = None

    @property
    def rig(self) -> PcscdRig:
        if self._rig is None:
            raise RuntimeError("the emulated smart-card reader is not started")
        return self._rig

    def start(self) -> str:
        self._rig = acquire_rig()
        if not self.rig.status().get("pcscd_running"):
            self.rig.plug()  # a previous user left it unplugged or stopped
        self.rig.remove(self.slot)
        if self.first_card:
            self.insert(self.first_card)
        return self.rig.socket_path

    def stop(self) -> None:
        if self._rig is not None:
            self._rig = None
            release_rig()

    # -- scripting ----------------------------------------------------------------------------------
    @staticmethod
    def cards() -> list[str]:
        return sorted(p.stem for p in CARDS_DIR.glob("*.toml"))

    def insert(self, card: str = "zhang-san", **behaviour: Any) -> None:
        """Insert a card (taking out the one in the slot first)."""
        load_card(card, **behaviour)  # a bad name or behaviour is refused here, with its reason
        if self.inserted is not None:
            self.remove()
        self.rig.insert(self.slot, FACTORY, card=str(card_path(card)), **behaviour)
        self.inserted = card

    def remove(self) -> None:
        self.rig.remove(self.slot)
        self.inserted = None

    # the names the scenario runner uses for every card reader's emulator
    place_card = insert
    remove_card = remove

    def unplug(self) -> None:
        self.rig.unplug()

    def replug(self) -> None:
        self.rig.plug()

    def restart_service(self) -> None:
        self.rig.restart_pcscd()

    def status_text(self) -> str:
        status = self.rig.status()
        return (f"pcscd {'running' if status.get('pcscd_running') else 'stopped'}, reader "
                f"{'plugged in' if status.get('plugged', True) else 'unplugged'}, card "
                f"{self.inserted or 'none'} (socket {self.rig.socket_path})")

    def command(self, line: str) -> str:
        """One console command (CONSOLE_HELP); bad input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, rest = words[0].lower(), words[1:]
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "cards":
                return "  ".join(self.cards())
            if verb == "insert" and rest:
                behaviour = dict(w.split("=", 1) for w in rest[1:])
                self.insert(rest[0], **{k: _value(v) for k, v in behaviour.items()})
                return f"card {rest[0]} inserted"
            if verb == "pull" and not rest:
                self.insert("zhang-san", pull_after=3)
                return "card inserted; it will be pulled out during the read"
            if verb == "remove" and not rest:
                self.remove()
                return "card taken out"
            if verb == "unplug" and not rest:
                self.unplug()
                return "reader unplugged"
            if verb == "replug" and not rest:
                self.replug()
                return "reader plugged in again"
            if verb == "restart" and not rest:
                self.restart_service()
                return "pcscd restarted"
            if verb == "status" and not rest:
                return self.status_text()
        except (ValueError, RuntimeError, OSError, LookupError) as exc:
            return f"error: {exc}"
        return f"unknown smartcard command {line.strip()!r}; type smartcard help"


