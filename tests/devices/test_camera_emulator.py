"""What the emulated camera shows, seen through the real driver and YuNet.

Scenes are told apart the way face verification will see them: by counting faces, and by
where the nose sits relative to the eyes (normalised by the eye distance), which moves
when a live head turns and stays put when a picture of a face is moved about. Bounded
waits only; no wall-clock assertions.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Iterator

import numpy as np
import pytest

from devices.camera.driver import OpenCvCamera
from camera_harness import FACES, ROOT, require_faces, wait_until

from devices.camera.emulator import CameraEmulator
from devices.camera.landmarks import Face, FaceFinder
from devices.camera.scene import Pose, Scene

require_faces("obama2.jpg", "biden.jpg")


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder(score_threshold=0.7)


@pytest.fixture
def emu(emulator: CameraEmulator) -> CameraEmulator:
    emulator.person()
    return emulator


@pytest.fixture
def camera(emulator: CameraEmulator) -> Iterator[OpenCvCamera]:
    """Unmirrored, so directions are the camera's own: yaw > 0 moves the nose right."""
    cam = OpenCvCamera("camera", source=emulator.url, mirror=False)
    cam.open()
    yield cam
    cam.close()


class Viewer:
    def __init__(self, camera: OpenCvCamera, finder: FaceFinder) -> None:
        self.camera, self.finder = camera, finder
        self.seq = -1

    def faces(self) -> list[Face]:
        """Faces on the next new frame."""
        frame = self.camera.latest_frame(newer_than=self.seq, timeout_s=5.0)
        assert frame is not None, "no frame within 5 s"
        self.seq = frame.seq
        return self.finder.find(frame.image)

    def steady_count(self, expected: int) -> None:
        """Wait until frames show `expected` faces, then require it of the next three."""
        wait_until(lambda: len(self.faces()) == expected)
        assert [len(self.faces()) for _ in range(3)] == [expected] * 3

    def nose(self, frames: int = 5) -> tuple[float, float]:
        """Mean nose offset from the eye midpoint (x along the eye line, y across), in eye
        distances, over `frames` frames."""
        offsets = []
        for _ in range(frames):
            found = self.faces()
            assert len(found) == 1, f"expected one face, saw {len(found)}"
            offsets.append(found[0].nose_offset())
        return statistics.mean(o[0] for o in offsets), statistics.mean(o[1] for o in offsets)

    def split(self, frames: int = 5) -> float:
        """Mean Face.nose_split over `frames` frames."""
        values = []
        for _ in range(frames):
            found = self.faces()
            assert len(found) == 1, f"expected one face, saw {len(found)}"
            values.append(found[0].nose_split())
        return statistics.mean(values)

    def skip(self, frames: int) -> None:
        """Let frames already on their way (grabbed before a change) go by."""
        for _ in range(frames):
            self.faces()

    def eye_distance(self, frames: int = 3) -> float:
        return statistics.mean(self.faces()[0].eye_distance for _ in range(frames))


def settle_pose(emu: CameraEmulator, target: Pose) -> None:
    wait_until(lambda: emu.scene.current_pose() == target)


@pytest.fixture
def viewer(camera: OpenCvCamera, finder: FaceFinder) -> Viewer:
    return Viewer(camera, finder)


def test_scene_switching_is_visible_to_a_face_detector(emu: CameraEmulator, viewer: Viewer) -> None:
    viewer.steady_count(1)
    emu.no_face()
    viewer.steady_count(0)
    emu.two_faces()
    viewer.steady_count(2)
    emu.person()
    viewer.steady_count(1)
    emu.leave()
    viewer.steady_count(0)
    emu.photo()
    viewer.steady_count(1)
    emu.screen()
    wait_until(lambda: len(viewer.faces()) == 1)  # a phone's face is smaller and grid-striped
    emu.cover()
    viewer.steady_count(0)


def test_a_live_head_turns_non_rigidly(emu: CameraEmulator, viewer: Viewer) -> None:
    viewer.steady_count(1)
    straight_x, _ = viewer.nose()
    emu.pose(yaw=25)
    settle_pose(emu, Pose(yaw=25))
    viewer.skip(2)
    turned_x, _ = viewer.nose()
    assert turned_x - straight_x > 0.06  # the nose moves towards the person's left (image right)
    emu.pose(yaw=-25)
    settle_pose(emu, Pose(yaw=-25))
    viewer.skip(2)
    other_x, _ = viewer.nose()
    assert straight_x - other_x > 0.06


def test_a_live_head_nods(emu: CameraEmulator, viewer: Viewer) -> None:
    """Nodding moves the nose between the eyes and the mouth (see Face.nose_split)."""
    viewer.steady_count(1)
    straight = viewer.split(frames=10)  # blinks and restlessness move the landmarks: average
    emu.pose(pitch=20)  # nodding down: the nose moves away from the eyes, towards the mouth
    settle_pose(emu, Pose(pitch=20))
    viewer.skip(2)
    assert viewer.split(frames=10) - straight > 0.015
    emu.pose(pitch=-20)  # chin up
    settle_pose(emu, Pose(pitch=-20))
    viewer.skip(2)
    assert straight - viewer.split(frames=10) > 0.02


def test_coming_closer_makes_the_face_bigger(emu: CameraEmulator, viewer: Viewer) -> None:
    viewer.steady_count(1)
    before = viewer.eye_distance()
    emu.pose(closer=1.3)
    settle_pose(emu, Pose(closer=1.3))
    viewer.skip(2)
    assert viewer.eye_distance() > 1.15 * before


def test_a_held_up_photo_does_not_turn_its_head(emu: CameraEmulator, viewer: Viewer) -> None:
    emu.photo()
    viewer.steady_count(1)
    before_x, _ = viewer.nose(frames=15)  # a moving picture jitters YuNet's landmarks: average
    emu.pose(yaw=25)
    settle_pose(emu, Pose(yaw=25))
    viewer.skip(2)
    after_x, _ = viewer.nose(frames=15)
    assert abs(after_x - before_x) < 0.05


@pytest.mark.parametrize("held", ["photo", "screen"])
def test_held_up_pictures_ignore_pose_pixel_for_pixel(held: str) -> None:
    """Two scenes with the same random seed draw the same picture whatever the pose."""
    still, told = (Scene(FACES, "obama2.jpg", 320, 240, seed=3) for _ in range(2))
    for scene in (still, told):
        scene.hold(held)
    told.pose(yaw=25, pitch=10, closer=1.3)
    for now in (100.0, 100.3, 101.0):
        assert np.array_equal(still.render(now), told.render(now))
    live_a, live_b = (Scene(FACES, "obama2.jpg", 320, 240, seed=3) for _ in range(2))
    live_b.pose(yaw=25, pitch=0, closer=1.0)
    time.sleep(0.6)  # past the transition, so the pose has taken effect
    now = time.monotonic()
    assert not np.array_equal(live_a.render(now), live_b.render(now))  # while a live person does turn


# -- scripting from a console ------------------------------------------------------------------------
def test_console_commands(emulator: CameraEmulator) -> None:
    assert "pose yaw=D" in emulator.command("help")
    assert "obama2.jpg" in emulator.command("faces").split()
    assert "live person (obama2.jpg)" in emulator.command("person")
    assert emulator.command("pose yaw=25 closer=1.2").startswith("the person turns to yaw=25, closer=1.2")
    assert emulator.scene._pose_to == Pose(yaw=25, closer=1.2)
    emulator.command("pose -10")
    assert emulator.scene._pose_to == Pose(yaw=-10)
    assert emulator.command("noface") == "nobody in front of the camera"
    assert emulator.scene.kind == "none"
    emulator.command("two biden.jpg")
    assert emulator.scene.kind == "two"
    emulator.command("photo")
    assert emulator.scene.kind == "photo"
    emulator.command("screen")
    assert emulator.scene.kind == "screen"
    emulator.command("cover")
    assert emulator.scene.kind == "cover"
    assert emulator.command("cooperative off") == "the person ignores the prompts" and not emulator.cooperative
    emulator.command("cooperative")
    assert emulator.cooperative
    assert emulator.command("slow 5") == "the camera now sends 5 frames a second" and emulator.fps == 5
    emulator.command("slow 15")
    assert emulator.command("pose spin=3").startswith("error: pose has yaw=, pitch= and closer=")
    assert emulator.command("person nobody.jpg").startswith("error: no face photo 'nobody.jpg' in ")
    assert emulator.command("slow fast").startswith("error:")
    assert emulator.command("dance").startswith("unknown camera command 'dance'")
    assert emulator.command("unplug") == "camera unplugged" and not emulator.running
    assert emulator.command("replug") == f"camera plugged in again at {emulator.url}" and emulator.running
    emulator.command("person")


def test_runs_standalone_and_prints_its_url(finder: FaceFinder) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "devices.camera.emulator", "--port", "0"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().split()
        assert first[0] == "url" and first[1].startswith("http://127.0.0.1:") and first[1].endswith("/stream.mjpg")
        proc.stdin.write("noface\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "nobody in front of the camera"
        camera = OpenCvCamera("camera", source=first[1])
        camera.open()
        try:
            frame = camera.latest_frame(timeout_s=5.0)
            assert frame is not None and finder.find(frame.image) == []
        finally:
            camera.close()
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
