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
