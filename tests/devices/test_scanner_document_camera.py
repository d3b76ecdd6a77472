"""The document camera end to end: the real driver reading the emulator's MJPEG stream.

The emulator serves the document scene over loopback HTTP; the driver's OpenCvCamera
reads it with OpenCV's FFmpeg backend, finds the page, waits for it to lie still,
straightens and judges it. Unreadable states run into the scan's time limit (kept
short here) and must say why; the hints on the way are checked too. Bounded waits only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from camera_harness import wait_until
from scanner_harness import A4_ASPECT, aspect, is_upright, table_lines_straight

from devices import registry
from devices.base import DeviceDisconnected, DeviceState, MediaState
from devices.scanner.document_camera import DocumentCamera
from devices.scanner.document_camera_emulator import DocumentCameraEmulator
from devices.scanner.interface import NoPageFound, PageUnreadable, Problem
from devices.supervisor import Supervisor

LIMIT_S = 1.5  # the scan's time limit for pages that never become readable


@pytest.fixture(scope="module")
def doc_emulator() -> Iterator[DocumentCameraEmulator]:
    emu = DocumentCameraEmulator()
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(doc_emulator: DocumentCameraEmulator) -> Iterator[DocumentCameraEmulator]:
    if not doc_emulator.running:
        doc_emulator.replug()
    doc_emulator.slow(10)
    doc_emulator.place()
    yield doc_emulator
    if not doc_emulator.running:
        doc_emulator.replug()


@pytest.fixture
def cameras(emu: DocumentCameraEmulator) -> Iterator[Callable[..., DocumentCamera]]:
    made: list[DocumentCamera] = []

    def make(**params: Any) -> DocumentCamera:
        params.setdefault("source", emu.url)
        params.setdefault("time_limit_s", LIMIT_S)
        params.setdefault("frame_timeout_s", 1.0)
        camera = DocumentCamera("doccam", **params)
        made.append(camera)
        return camera

    yield make
    for camera in made:
        camera.close()


def fresh(camera: DocumentCamera, frames: int = 3) -> None:
    """Let frames from before a scene change pass (the stream is a frame or two behind)."""
    seq = camera.camera.latest_frame(timeout_s=5.0).seq  # type: ignore[union-attr]
    for _ in range(frames):
        frame = camera.camera.latest_frame(newer_than=seq, timeout_s=5.0)
        assert frame is not None, "no new frame within 5 s"
        seq = frame.seq


@pytest.fixture
def camera(cameras: Callable[..., DocumentCamera]) -> DocumentCamera:
    cam = cameras()
    cam.open()
    return cam


def test_a_page_on_the_base_is_scanned_upright_and_readable(camera: DocumentCamera) -> None:
    seen: list[tuple[float, str]] = []
    page = camera.scan(lambda fraction, phase: seen.append((fraction, phase)))
    assert page.readability.ok and page.source == "camera"
    assert aspect(page.image) == pytest.approx(A4_ASPECT, rel=0.01)
    assert is_upright(page.image)
    rows, cols = table_lines_straight(page.image)
    assert rows > 0.6 and cols > 0.6
    assert page.dpi == pytest.approx(0.88 * 1200 / (297 / 25.4), rel=0.03)  # the page's pixels, not more
    assert page.size_mm == pytest.approx((210, 297), rel=0.01)
    phases = [phase for _, phase in seen]
    assert phases[0] == "starting" and "hold_still" in phases and phases[-1] == "done"
    assert camera.status().device == DeviceState.ONLINE and camera.status().media == MediaState.PRESENT


def test_a_turned_page_seen_at_an_angle_comes_out_upright(camera: DocumentCamera,
                                                          emu: DocumentCameraEmulator) -> None:
    emu.place("notice", angle=-30, tilt=15, size=0.66)
    fresh(camera)
    page = camera.scan()
    assert is_upright(page.image)
    assert aspect(page.image) == pytest.approx(A4_ASPECT, rel=0.01)


@pytest.mark.parametrize("state,problem,hint", [
    ("blur", Problem.BLURRED, "blurred"),
    ("dark", Problem.TOO_DARK, "too_dark"),
    ("glare", Problem.GLARE, "too_bright"),
    ("cut_off", Problem.CUT_OFF, "centre_page"),
    ("hand_moving", Problem.MOVING, "hold_still"),
])
def test_an_unreadable_page_is_refused_with_what_to_fix(camera: DocumentCamera, emu: DocumentCameraEmulator,
                                                        state: str, problem: Problem, hint: str) -> None:
    getattr(emu, state)()
    fresh(camera)
    seen: list[str] = []
    with pytest.raises(PageUnreadable) as caught:
        camera.scan(lambda fraction, phase: seen.append(phase))
    assert caught.value.readability.problems[0] == problem
    assert caught.value.readability.hint is not None and caught.value.readability.hint.value == hint
    assert hint in seen  # the screen was told while it was going on
    assert camera.status().device == DeviceState.ONLINE


def test_an_empty_base_is_no_page_after_the_time_limit(camera: DocumentCamera, emu: DocumentCameraEmulator) -> None:
    emu.remove()
    fresh(camera)
    seen: list[str] = []
    with pytest.raises(NoPageFound, match="within 1.5 s"):
        camera.scan(lambda fraction, phase: seen.append(phase))
    assert "place_page" in seen
    assert camera.status().media == MediaState.ABSENT


def test_a_page_laid_down_during_the_scan_is_taken(camera: DocumentCamera, emu: DocumentCameraEmulator) -> None:
    emu.remove()
    fresh(camera)
    seen: list[str] = []

    def on_progress(fraction: float, phase: str) -> None:
        seen.append(phase)
        if phase == "place_page":  # the citizen follows the hint
            emu.place("form", angle=8)

    page = camera.scan(on_progress)
    assert seen[:2] == ["starting", "place_page"]
    assert page.readability.ok and is_upright(page.image)


def test_unplugged_camera_is_lost_and_comes_back(cameras: Callable[..., DocumentCamera],
                                                 emu: DocumentCameraEmulator) -> None:
    camera = cameras()
    supervisor = Supervisor([camera], backoff_min=0.0, backoff_max=0.0)
    supervisor.round()
    assert camera.status().device == DeviceState.ONLINE
    emu.unplug()

    def lost() -> bool:
        try:
            camera.poll()
        except DeviceDisconnected:
            return True
        return False

    wait_until(lost, timeout=10)
    supervisor.round()
    assert camera.status().device == DeviceState.OFFLINE
    with pytest.raises(DeviceDisconnected):
        camera.scan()
    emu.replug()
    wait_until(lambda: (supervisor.round(), camera.status().device == DeviceState.ONLINE)[1], timeout=10)
    assert camera.scan().readability.ok


def test_self_test_checks_the_camera_and_the_page(cameras: Callable[..., DocumentCamera]) -> None:
    results = {r.name: r for r in cameras().self_test()}
    assert results["frame grabbed"].passed
    assert results["resolution"].passed and "1600x1200" in results["resolution"].detail
    assert results["page detection"].passed and "dpi" in results["page detection"].detail


def test_registry_names_the_driver_and_the_emulator(emu: DocumentCameraEmulator) -> None:
    assert registry.driver_class("scanner", "document_camera") is DocumentCamera
    emulator_cls = registry.emulator_class("scanner", "document_camera")
    assert emulator_cls is DocumentCameraEmulator and emulator_cls.ADDRESS_PARAM == "source"


def test_console_commands_script_the_scene(emu: DocumentCameraEmulator) -> None:
    assert "place" in emu.command("help")
    assert "notice at angle 20" in emu.command("place notice angle=20 size=0.7")
    assert "blurred" in emu.command("blur")
    assert "empty" in emu.command("remove")
    assert "error" in emu.command("place angle=abc")
    assert "error" in emu.command("place poster")
    assert "unknown" in emu.command("fly")
    assert "frames a second" in emu.command("slow 5")
