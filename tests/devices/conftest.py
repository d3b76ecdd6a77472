"""Fixtures of the device tests (helpers to import live in camera_harness.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from devices.camera.emulator import CameraEmulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[CameraEmulator]:
    """One emulated camera per test module, stopped at its end."""
    emu = CameraEmulator()
    emu.start()
    yield emu
    emu.stop()
