"""The real OpenCV camera driver reading the emulator's MJPEG stream over loopback HTTP.

Everything runs on the real stack: the emulator's HTTP server, OpenCV's FFmpeg backend,
the grabber thread and the supervisor. No wall-clock assertions: conditions are awaited
with bounded deadlines.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import pydantic
import pytest

from devices import registry
from devices.base import DeviceDisconnected, DeviceEvent, DeviceState
from devices.camera.driver import OpenCvCamera, shown_source, source_kind
from camera_harness import require_faces, wait_until

from devices.camera.emulator import CameraEmulator
from devices.camera.interface import Frame
from devices.supervisor import Supervisor

require_faces("obama2.jpg", "biden.jpg")


@pytest.fixture
def emu(emulator: CameraEmulator) -> Iterator[CameraEmulator]:
    """The shared emulator, plugged in, at full rate, with a person in front of it."""
    if not emulator.running:
        emulator.replug()
    emulator.slow(15)
    emulator.person()
    yield emulator
    if not emulator.running:
        emulator.replug()
    emulator.slow(15)


@pytest.fixture
def cameras() -> Iterator[Callable[..., OpenCvCamera]]:
    made: list[OpenCvCamera] = []

    def make(url: str, **params: Any) -> OpenCvCamera:
        params.setdefault("frame_timeout_s", 1.0)
        camera = OpenCvCamera("camera", source=url, **params)
        made.append(camera)
        return camera

    yield make
    for camera in made:
        camera.close()


def frames(camera: OpenCvCamera, count: int) -> list[Frame]:
    """`count` consecutive new frames."""
    out: list[Frame] = []
    seq = -1
    while len(out) < count:
        frame = camera.latest_frame(newer_than=seq, timeout_s=5.0)
        assert frame is not None, "no frame within 5 s"
        out.append(frame)
        seq = frame.seq
    return out


def settled(camera: OpenCvCamera) -> Frame:
    """A frame grabbed after the last scene change has certainly reached the driver."""
    return frames(camera, 3)[-1]


# -- the stream itself ---------------------------------------------------------------------------
def test_emulator_serves_an_mjpeg_stream_on_loopback(emu: CameraEmulator) -> None:
    assert emu.url == f"http://127.0.0.1:{emu.port}/stream.mjpg"
    with urllib.request.urlopen(emu.url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        head = response.read(200)
    assert head.startswith(b"--kioskcamframe\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    assert b"\r\n\r\n\xff\xd8" in head  # a JPEG starts right after the part's headers
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{emu.port}/other", timeout=5)
    assert info.value.code == 404


# -- frames -----------------------------------------------------------------------------------------
def test_frames_arrive_newest_first_with_increasing_seq(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    camera.open()
    assert camera.status().device == DeviceState.ONLINE
    got = frames(camera, 5)
    assert [f.seq for f in got] == sorted({f.seq for f in got})
    assert all(b.at >= a.at for a, b in zip(got, got[1:], strict=False))
    for frame in got:
        assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
        assert not frame.image.flags.writeable  # shared between consumers: copy before drawing
    # asking for nothing newer than the latest waits, then says so
    latest = camera.latest_frame()
    assert latest is not None
    newer = camera.latest_frame(newer_than=latest.seq, timeout_s=5.0)
    assert newer is not None and newer.seq > latest.seq


def test_frames_are_scaled_to_the_configured_size_without_distortion(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    small = cameras(emu.url, width=320, height=240)
    square = cameras(emu.url, width=400, height=400)
    small.open()
    square.open()
    assert settled(small).image.shape == (240, 320, 3)
    assert settled(square).image.shape == (400, 400, 3)
    detail = {r.name: r for r in square.self_test()}["resolution"].detail
    assert "the camera gives 640x480, scaled and cropped to 400x400" in detail


def transform(image: np.ndarray, rotation: int, mirror: bool) -> np.ndarray:
    image = np.rot90(image, k=-(rotation // 90))  # rotation is clockwise
    return image[:, ::-1] if mirror else image


@pytest.mark.parametrize("rotation,mirror", [(0, True), (90, False), (180, True), (270, True)])
def test_rotation_and_mirroring_apply_to_every_frame(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera], rotation: int, mirror: bool) -> None:
    emu.no_face()  # the room alone: still, and not symmetric (window left, door right)
    plain = cameras(emu.url, mirror=False)
    turned = cameras(emu.url, rotation=rotation, mirror=mirror)
    plain.open()
    turned.open()
    reference = settled(plain).image.astype(np.int16)
    got = settled(turned).image.astype(np.int16)
    assert np.abs(got - transform(reference, rotation, mirror)).mean() < 3.0  # up to noise and JPEG
    for other_rotation in (0, 90, 180, 270):
        for other_mirror in (False, True):
            other = transform(reference, other_rotation, other_mirror)
            if (other_rotation, other_mirror) != (rotation, mirror) and other.shape == got.shape:
                assert np.abs(got - other).mean() > 10.0  # the scene tells every orientation apart


# -- self-test --------------------------------------------------------------------------------------
def test_self_test_on_a_live_scene(emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    results = {r.name: r for r in camera.self_test()}  # opens and closes the camera itself
    assert list(results) == ["frame grabbed", "picture not blank", "resolution", "frame rate"]
    assert results["frame grabbed"].passed
    assert results["picture not blank"].passed
    assert results["resolution"].passed and results["resolution"].detail.startswith("640x480 delivered, mirrored")
    assert "frames a second measured (configured 15)" in results["frame rate"].detail
    assert camera.status().device == DeviceState.OFFLINE  # left closed as found


def test_self_test_fails_on_a_covered_lens(emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    camera.open()
    emu.cover()
    wait_until(lambda: np.std(settled(camera).image) < 4)
    results = {r.name: r for r in camera.self_test()}
    assert results["frame grabbed"].passed
    assert not results["picture not blank"].passed
    assert "the picture is uniform" in results["picture not blank"].detail
    assert "nothing covers the lens" in results["picture not blank"].detail


def test_self_test_fails_when_the_camera_is_unreachable(emu: CameraEmulator,
                                                        cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    emu.unplug()
    results = camera.self_test()
    assert [(r.name, r.passed) for r in results] == [("frame grabbed", False)]
    assert f"cannot open camera http://127.0.0.1:{emu.port}/stream.mjpg" in results[0].detail
    assert "check that the network camera is powered and reachable" in results[0].detail


# -- status ------------------------------------------------------------------------------------------
def test_blank_pictures_are_a_hardware_error_that_clears_by_itself(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    camera.blank_after_s = 0.3
    camera.open()
    emu.cover()
    wait_until(lambda: camera.status().device == DeviceState.HARDWARE_ERROR)
    assert "gives only blank (uniform) pictures" in camera.status().fault
    assert camera.latest_frame() is not None  # frames still flow: the status says what is wrong
    emu.person()
    wait_until(lambda: camera.status().device == DeviceState.ONLINE)
    assert camera.status().fault == ""


def test_unplugged_camera_goes_offline_and_the_supervisor_brings_it_back(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    events: list[DeviceEvent] = []
    camera.subscribe(events.append)
    supervisor = Supervisor([camera], interval=0.05, backoff_min=0.05, backoff_max=0.2)
    supervisor.start()
    try:
        wait_until(lambda: camera.status().device == DeviceState.ONLINE)
        last = settled(camera).seq

        emu.unplug()
        wait_until(lambda: camera.status().device == DeviceState.OFFLINE)
        fault = camera.status().fault
        assert f"camera http://127.0.0.1:{emu.port}/stream.mjpg" in fault
        assert "check that the network camera is powered and reachable" in fault
        with pytest.raises(DeviceDisconnected, match="network camera"):
            camera.latest_frame(timeout_s=5.0)

        emu.replug()
        wait_until(lambda: camera.status().device == DeviceState.ONLINE)
        frame = camera.latest_frame(newer_than=last, timeout_s=5.0)
        assert frame is not None and frame.seq > last  # seq keeps increasing across reconnects
    finally:
        supervisor.stop()
    states = [e.data["device"] for e in events if e.kind == "status_changed"]
    assert states[:1] == ["online"] and "offline" in states
    assert states[states.index("offline"):].count("online") >= 1


def test_a_hung_camera_goes_offline_and_comes_back(emu: CameraEmulator,
                                                   cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url, frame_timeout_s=0.5)
    supervisor = Supervisor([camera], interval=0.05, backoff_min=0.05, backoff_max=0.2)
    supervisor.start()
    try:
        wait_until(lambda: camera.status().device == DeviceState.ONLINE)
        emu.slow(0)  # the connection stays open, but no frame comes
        wait_until(lambda: camera.status().device == DeviceState.OFFLINE)
        assert "gave no frame for" in camera.status().fault or "gives no frames" in camera.status().fault
        emu.slow(15)
        wait_until(lambda: camera.status().device == DeviceState.ONLINE)
        assert camera.latest_frame(timeout_s=5.0) is not None
    finally:
        supervisor.stop()


def test_closed_camera_refuses_frames_and_forgets_the_last_one(
        emu: CameraEmulator, cameras: Callable[..., OpenCvCamera]) -> None:
    camera = cameras(emu.url)
    with pytest.raises(DeviceDisconnected, match="is not open"):
        camera.latest_frame()
    camera.open()
    assert camera.latest_frame(timeout_s=5.0) is not None
    camera.close()
    camera.close()  # idempotent
    assert camera.status().device == DeviceState.OFFLINE
    with pytest.raises(DeviceDisconnected, match="is not open"):
        camera.latest_frame()
    assert camera._frame is None  # a face picture does not outlive the session


def test_opening_a_missing_source_says_what_to_check(tmp_path: Path) -> None:
    missing = OpenCvCamera("camera", source=str(tmp_path / "none.mp4"), frame_timeout_s=0.5)
    with pytest.raises(DeviceDisconnected, match="no such file"):
        missing.open()
    assert "no such file" in missing.status().fault


def test_a_video_file_plays_in_a_loop(tmp_path: Path) -> None:
    """An image sequence on disk is a camera too (made here from a drawn picture, no face)."""
    picture = np.zeros((120, 160, 3), np.uint8)
    cv2.rectangle(picture, (10, 10), (60, 100), (0, 200, 255), -1)
    for i in range(3):
        assert cv2.imwrite(str(tmp_path / f"frame{i:03d}.png"), picture)
    camera = OpenCvCamera("camera", source=str(tmp_path / "frame%03d.png"), fps=30, mirror=False)
    camera.open()
    try:
        got = frames(camera, 8)  # more frames than the sequence has: it loops
        image = got[-1].image
        assert image.shape == (480, 640, 3)  # scaled x4 to cover 640x480
        assert np.abs(image[240, 100].astype(int) - [0, 200, 255]).max() <= 3  # inside the rectangle
        assert image[240, 400].max() <= 3  # outside it
    finally:
        camera.close()


# -- parameters --------------------------------------------------------------------------------------
def test_params_are_checked() -> None:
    assert OpenCvCamera("camera", source="0").params.source == 0
    assert OpenCvCamera("camera", source="/dev/video2").kind == "device"
    assert source_kind("rtsp://10.0.0.5/live") == "url"
    assert source_kind("clips/visit.mp4") == "file"
    with pytest.raises(pydantic.ValidationError):
        OpenCvCamera.Params(source=0, rotation=45)
    with pytest.raises(pydantic.ValidationError):
        OpenCvCamera.Params(source=0, exposure=3)  # extra keys are refused
    with pytest.raises(pydantic.ValidationError):
        OpenCvCamera.Params(source=" ")


def test_passwords_in_camera_urls_never_reach_statuses() -> None:
    assert shown_source("rtsp://admin:secret@10.0.0.5:554/live") == "rtsp://***@10.0.0.5:554/live"
    camera = OpenCvCamera("camera", source="http://admin:secret@127.0.0.1:9/stream.mjpg", frame_timeout_s=0.5)
    with pytest.raises(DeviceDisconnected) as info:
        camera.open()
    assert "secret" not in str(info.value) and "secret" not in camera.status().fault


def test_registry_names_the_driver_and_its_emulator() -> None:
    assert registry.driver_class("camera", "opencv") is OpenCvCamera
    assert registry.emulator_class("camera", "opencv") is CameraEmulator
