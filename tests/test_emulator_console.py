"""The console that drives emulated devices while the kiosk runs (scripts/start.sh)."""
from __future__ import annotations

import io

from devices.idcard.emulator import SamEmulator
from kiosk.emulator_console import handle


def test_console_commands_drive_the_emulator() -> None:
    emulator = SamEmulator()
    emulator.start()
    try:
        out = io.StringIO()
        handle("cards", {"idcard": emulator}, out)
        assert "resident" in out.getvalue()
        handle("place resident", {"idcard": emulator}, out)
        assert "card resident placed" in out.getvalue()
        handle("place nobody", {"idcard": emulator}, out)
        assert "type cards" in out.getvalue()
        handle("remove", {"idcard": emulator}, out)
        handle("dance", {"idcard": emulator}, out)
        assert "unknown command 'dance'" in out.getvalue()
        handle("place resident", {}, out)
        assert "no emulated ID-card reader" in out.getvalue()
    finally:
        emulator.stop()


def test_camera_commands_reach_the_emulated_camera() -> None:
    from devices.camera.emulator import CameraEmulator

    camera = CameraEmulator()
    camera.start()
    try:
        out = io.StringIO()
        handle("camera photo", {"camera": camera}, out)
        handle("camera help", {"camera": camera}, out)
        handle("camera", {}, out)
        text = out.getvalue()
        assert "pose" in text and "no emulated camera" in text
    finally:
        camera.stop()


def test_smartcard_commands_reach_the_virtual_reader() -> None:
    from devices.smartcard.emulator import PcscCardEmulator

    reader = PcscCardEmulator()
    reader.start()
    try:
        out = io.StringIO()
        devices = {"smartcard": reader}
        for line in ("smartcard cards", "smartcard insert zhang-san slow=0.01", "smartcard status",
                     "smartcard insert nobody", "smartcard insert zhang-san explode=1", "smartcard remove",
                     "smartcard fly"):
            handle(line, devices, out)
        text = out.getvalue()
        assert "li-si-gen2" in text and "card zhang-san inserted" in text and "pcscd running" in text
        assert "error: no card file 'nobody'" in text and "unknown behaviour(s) explode" in text
        assert "card taken out" in text and "unknown smartcard command 'fly'" in text
        assert reader.rig.status()["slots"][0]["inserted"] is False
    finally:
        reader.stop()
