"""Shared test set-up: every test starts with no personal data registered for masking."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Kivy reads these at import time; set before any test module imports it.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")


@pytest.fixture(autouse=True)
def _no_leftover_secrets():
    from kiosk import privacy

    privacy.clear_secrets()
    yield
    privacy.clear_secrets()


@pytest.fixture(scope="module")
def pcsc_rig():  # type: ignore[no-untyped-def]
    """This process's virtual smart-card bench (the real pcscd with vpcd, in a private network
    namespace), with PC/SC pointed at it. One socket path per process: libpcsclite reads it
    once, so every module shares devices.smartcard.emulator's process rig."""
    from devices.smartcard.emulator import acquire_rig, release_rig
    from devices.smartcard.pcsc_driver import use_pcsc_socket

    rig = acquire_rig()  # a RigError here says which package or setting is missing
    use_pcsc_socket(rig.socket_path)
    yield rig
    release_rig()


def pcsc_reader_empty(name: str) -> bool:
    """Whether pcscd sees no card in `name` now (a fresh context, as another program would)."""
    from smartcard import scard

    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return False
    try:
        hr, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        return hr == scard.SCARD_S_SUCCESS and bool(states[0][1] & scard.SCARD_STATE_EMPTY)
    finally:
        scard.SCardReleaseContext(context)


@pytest.fixture
def pcsc_bench(pcsc_rig):  # type: ignore[no-untyped-def]
    """The bench plugged in, pcscd running and every slot empty (as pcscd sees it), before and after."""
    import time

    def tidy() -> None:
        state = pcsc_rig.status()
        if not state["plugged"]:
            pcsc_rig.plug()
        elif not state["pcscd_running"]:
            pcsc_rig.start_pcscd()
        for slot in pcsc_rig.status()["slots"]:
            if slot["inserted"]:
                pcsc_rig.remove(slot["slot"])
        deadline = time.monotonic() + 10  # pcscd notices a removal at its next presence poll (0.4 s)
        while not pcsc_reader_empty(pcsc_rig.reader_names()[0]):
            assert time.monotonic() < deadline, "pcscd still sees a card in the virtual reader after 10 s"
            time.sleep(0.05)

    tidy()
    yield pcsc_rig
    tidy()
