"""The real CameraQrScanner (OpenCvCamera + zxing-cpp) against the QR camera emulator's
MJPEG stream on 127.0.0.1.

No wall-clock assertions: events are awaited with generous deadlines; "nothing is read"
is shown over a number of frames actually decoded.
"""
from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np
import pytest

from devices.base import DeviceDisconnected, DeviceEvent, DeviceState, MediaState
from devices.qr_scanner.camera_driver import CameraQrScanner, decode_qr, symbology_name
from devices.qr_scanner.camera_emulator import (
    PhoneQrScene,
    QrCameraEmulator,
    qr_modules,
)
from devices.qr_scanner.interface import CODE_SCANNED
from waiting import wait_until

URL = "https://zwfw.example.gov.cn/dzzz/v1/licence?id=1.2.156.3005.2.11100000000013338W.001"
CHINESE = "电子证照 营业执照 DZZZ:44030019900101123X 深圳市南山区"


class Events:
    def __init__(self, device: CameraQrScanner) -> None:
        self.items: list[DeviceEvent] = []
        self.unsubscribe = device.subscribe(self.items.append)

    def texts(self) -> list[str]:
        return [e.data["text"] for e in self.items if e.kind == CODE_SCANNED]

    def wait_text(self, text: str, timeout: float = 10.0) -> DeviceEvent:
        return wait_until(lambda: next((e for e in self.items if e.kind == CODE_SCANNED
                                        and e.data["text"] == text), None), timeout)


@pytest.fixture(scope="module")
def qr_camera() -> Iterator[QrCameraEmulator]:
    emu = QrCameraEmulator(fps=15)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def scanner(qr_camera: QrCameraEmulator) -> Iterator[CameraQrScanner]:
    """Mirrored frames (the default, as for a preview): decoding must flip them back."""
    s = CameraQrScanner("qr_camera", source=qr_camera.url, decode_interval_s=0.05)
    s.open()
    yield s
    s.close()


@pytest.fixture
def events(scanner: CameraQrScanner, qr_camera: QrCameraEmulator) -> Iterator[Events]:
    qr_camera.blur(0)
    qr_camera.glare(0)
    scanner.disarm()
    e = Events(scanner)
    yield e
    e.unsubscribe()
    scanner.disarm()


def frames_pass(scanner: CameraQrScanner, count: int) -> None:
    """Wait until `count` new frames have reached the scanner's camera."""
    frame = scanner.camera.latest_frame(timeout_s=5)
    assert frame is not None
    target = frame.seq + count
    wait_until(lambda: (f := scanner.camera.latest_frame(timeout_s=1)) is not None and f.seq >= target)


def decodes_pass(scanner: CameraQrScanner, count: int) -> None:
    start = scanner.decoded_frames
    wait_until(lambda: scanner.decoded_frames >= start + count)


# -- reading codes -----------------------------------------------------------------------------------
def test_shown_code_is_read_exactly(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events) -> None:
    qr_camera.show(URL)
    scanner.arm()
    event = events.wait_text(URL)
    assert event.data["symbology"] == "qr_code" and event.data["raw"] == URL.encode("ascii")
    assert scanner.status().device == DeviceState.ONLINE
    assert scanner.status().media == MediaState.NOT_SUPPORTED


def test_chinese_content(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events) -> None:
    qr_camera.show(CHINESE)
    scanner.arm()
    event = events.wait_text(CHINESE)
    assert event.data["raw"] == CHINESE.encode("utf-8")


@pytest.mark.parametrize("pose", [
    {"angle": 30}, {"angle": -75}, {"angle": 180}, {"tilt": 40}, {"angle": 20, "tilt": -30},
    {"scale": 0.6}, {"scale": 1.6},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_turned_tilted_and_scaled_codes(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events,
                                        pose: dict[str, float]) -> None:
    text = "YY2606010000426 " + ",".join(f"{k}={v}" for k, v in pose.items())
    qr_camera.show(text, **pose)
    scanner.arm()
    events.wait_text(text)


def test_a_code_held_up_is_one_scan(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events) -> None:
    qr_camera.show("held up for a while")
    scanner.arm()
    events.wait_text("held up for a while")
    decodes_pass(scanner, 5)
    assert events.texts().count("held up for a while") == 1
    assert scanner.counters()["duplicates"] >= 4


def test_hidden_code_reads_nothing(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events) -> None:
    qr_camera.show("about to be hidden")
    qr_camera.hide()
    frames_pass(scanner, 3)  # frames of the phone still in the pipeline go by unarmed
    scanner.arm()
    decodes_pass(scanner, 6)
    assert events.texts() == []


def test_blur_and_glare_spoil_the_code_until_they_go(qr_camera: QrCameraEmulator, scanner: CameraQrScanner,
                                                     events: Events) -> None:
    qr_camera.show("spoilt then readable")
    qr_camera.blur(5)
    frames_pass(scanner, 3)
    scanner.arm()
    decodes_pass(scanner, 5)
    qr_camera.glare(1.0)
    qr_camera.blur(0)
    frames_pass(scanner, 3)
    decodes_pass(scanner, 5)
    assert events.texts() == []
    qr_camera.glare(0.4)  # a mild reflection only dims the contrast
    events.wait_text("spoilt then readable")


def test_nothing_is_decoded_while_not_armed(qr_camera: QrCameraEmulator, scanner: CameraQrScanner,
                                            events: Events) -> None:
    qr_camera.show("not asked for")
    frames_pass(scanner, 2)
    before = scanner.decoded_frames
    frames_pass(scanner, 6)
    assert scanner.decoded_frames == before and events.texts() == []
    scanner.arm()
    events.wait_text("not asked for")
    scanner.disarm()
    frames_pass(scanner, 2)
    after = scanner.decoded_frames
    frames_pass(scanner, 4)
    assert scanner.decoded_frames == after


def test_unmirrored_camera_reads_too(qr_camera: QrCameraEmulator) -> None:
    s = CameraQrScanner("qr_camera_plain", source=qr_camera.url, mirror=False, decode_interval_s=0.05)
    e = Events(s)
    s.open()
    try:
        qr_camera.show("read without a mirror 中文")
        s.arm()
        e.wait_text("read without a mirror 中文")
    finally:
        s.close()


def test_self_test(qr_camera: QrCameraEmulator, scanner: CameraQrScanner) -> None:
    qr_camera.show(URL)
    results = {r.name: r for r in scanner.self_test()}
    assert all(r.passed for r in results.values()), [r.detail for r in results.values()]
    assert "1 QR code(s) in view" in results["QR decoder"].detail


# -- losing the camera -----------------------------------------------------------------------------------
def test_unplug_raises_disconnected_and_reopen_works() -> None:
    with QrCameraEmulator(fps=15) as emu:
        s = CameraQrScanner("qr_camera_lost", source=emu.url, decode_interval_s=0.05, frame_timeout_s=1.0)
        e = Events(s)
        s.open()
        try:
            s.arm()
            emu.unplug()

            def lost() -> bool:
                try:
                    s.poll()
                except DeviceDisconnected as exc:
                    assert str(emu.port) in str(exc)
                    return True
                return False

            wait_until(lost)
            assert s.status().device == DeviceState.OFFLINE
            emu.replug()
            s.close()
            s.open()
            emu.show("after replug")
            e.wait_text("after replug")
        finally:
            s.close()


def test_open_without_a_camera_fails_with_the_address() -> None:
    s = CameraQrScanner("qr_camera_none", source="http://127.0.0.1:9/stream.mjpg", frame_timeout_s=1.0)
    with pytest.raises(DeviceDisconnected, match="127.0.0.1:9"):
        s.open()
    assert s.status().device == DeviceState.OFFLINE
    with pytest.raises(DeviceDisconnected):
        s.poll()


# -- the emulator's console and scene ---------------------------------------------------------------------------
def test_console_commands(qr_camera: QrCameraEmulator, scanner: CameraQrScanner, events: Events) -> None:
    assert "show [angle=D]" in qr_camera.command("help")
    text = "预约码 YY2606010000426"
    assert qr_camera.command(f"show angle=15 scale=0.9 {text}") == f"a phone shows a code of {len(text)} characters"
    assert qr_camera.text == text
    scanner.arm()
    events.wait_text(text)
    assert qr_camera.command("show angle=15").startswith("error:")
    assert qr_camera.command("show scale=9 x").startswith("error:")
    assert qr_camera.command("blur lots").startswith("error:")
    assert qr_camera.command("blur 3") == "blurred by 3 pixels"
    assert qr_camera.command("blur off") == "the picture is sharp"
    assert qr_camera.command("glare") == "glare 1 on the screen"
    assert qr_camera.command("glare off") == "no glare"
    assert qr_camera.command("hide") == "the phone is taken away" and qr_camera.text is None
    assert qr_camera.command("slow 15") == "the camera now sends 15 frames a second"
    assert qr_camera.command("dance").startswith("unknown")


def test_scene_without_streaming() -> None:
    """The scene alone, decoded as the camera would see it, mirrored or not."""
    scene = PhoneQrScene(1280, 720)
    scene.show(CHINESE, angle=10)
    picture = scene.render()
    assert picture.shape == (720, 1280, 3) and picture.dtype == np.uint8
    assert [b.text for b in decode_qr(picture)] == [CHINESE]
    mirrored = cv2.flip(picture, 1)
    found = decode_qr(mirrored, mirrored=True)
    assert [b.text for b in found] == [CHINESE] and symbology_name(found[0].format) == "qr_code"
    # flipped back before decoding: the code is where the camera saw it, corner for corner
    assert str(found[0].position) == str(decode_qr(picture)[0].position)
    assert str(decode_qr(mirrored)[0].position) != str(found[0].position)
    scene.hide()
    assert decode_qr(scene.render()) == []
    with pytest.raises(ValueError):
        scene.show("")
    assert qr_modules("x").shape == (21, 21)  # version 1
