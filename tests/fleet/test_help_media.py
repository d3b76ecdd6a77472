"""Help-call audio/video (kiosk/help_media.py and helpdesk/static/media.js) on the real stacks.

The kiosk's camera is the emulated IP camera read by the real OpenCV driver; the browser is
first an aiortc peer in this process (what the staff browser offers: video to receive, audio
both ways), then headless Chromium running media.js against a tiny page served here. ICE is
kept on loopback on both sides (aioice leaves 127.0.0.1 out by default; Chromium is told to
allow it), so nothing leaves the machine and a host with only `lo` runs these tests too.
The staff member's voice goes to ALSA's "null" output, which exists without a sound card.

Conditions are awaited with deadlines; offer-to-first-frame times are printed, not asserted.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from fleet_browser import MEDIA_FLAGS, headless_chromium, ice_on_loopback

from devices.camera.driver import OpenCvCamera
from devices.camera.emulator import StreamingCameraEmulator
from kiosk.help_media import HelpMedia, MediaOfferRefused, MediaUnavailable

ROOT = Path(__file__).resolve().parents[2]
MEDIA_JS = ROOT / "helpdesk" / "static" / "media.js"
WIDTH, HEIGHT = 320, 240  # small: the test is about the path, not the picture
DEADLINE_S = 20.0
T = TypeVar("T")


class MovingBars:
    """What the emulated camera films: bars that move, so no two frames are alike."""

    def __init__(self) -> None:
        self.n = 0

    def render(self) -> np.ndarray:
        self.n += 1
        x = (np.arange(WIDTH) + 4 * self.n) % 64
        row = np.stack([x * 4, 255 - x * 4, np.full(WIDTH, 90)], axis=1).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(row, (HEIGHT, WIDTH, 3)))


class LoopThread:
    """An asyncio loop in a thread for the staff-side peers; run() waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="staff-peer", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = DEADLINE_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class StaffPeer:
    """The help desk's side as the browser makes it: video received, audio both ways."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", self._track)
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTrack(AudioStreamTrack())  # the staff member's voice: silence, 20 ms frames

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and not self.video.done():
            self.video.set_result(track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def frame(self) -> Any:
        track = await asyncio.wait_for(asyncio.shield(self.video), DEADLINE_S)
        return await asyncio.wait_for(track.recv(), DEADLINE_S)

    async def video_ended(self) -> bool:
        """True once the video track ends (the kiosk's RTCP BYE, or its connection closed)."""
        track = await asyncio.wait_for(asyncio.shield(self.video), DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(track.recv(), max(0.1, deadline - time.monotonic()))
            except MediaStreamError:
                return True
            except TimeoutError:
                return False
        return False

    async def close(self) -> None:
        await self.pc.close()


# -- shared set-up: one camera, one HelpMedia, one staff loop, one browser per module ---------------
@pytest.fixture(scope="module", autouse=True)
def loopback_ice() -> Iterator[None]:
    with ice_on_loopback():
        yield


@pytest.fixture(scope="module")
def emulator() -> Iterator[StreamingCameraEmulator]:
    emu = StreamingCameraEmulator(MovingBars(), fps=15, width=WIDTH, height=HEIGHT)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def camera(emulator: StreamingCameraEmulator) -> Iterator[OpenCvCamera]:
    cam = OpenCvCamera("camera", source=emulator.url, width=WIDTH, height=HEIGHT, fps=15, frame_timeout_s=1.0)
    cam.open()
    yield cam
    cam.close()


@pytest.fixture(scope="module")
def media(camera: OpenCvCamera) -> Iterator[HelpMedia]:
    with HelpMedia(lambda: camera, "", speaker="null") as help_media:
        yield help_media


@pytest.fixture(scope="module")
def staff() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


def call(staff: LoopThread, media: HelpMedia, call_id: str) -> tuple[StaffPeer, float]:
    """A staff peer connected to the kiosk for `call_id`, and when its offer was answered."""

    async def make() -> StaffPeer:
        return StaffPeer()

    peer = staff.run(make())
    offer = staff.run(peer.offer())
    started = time.monotonic()
    answer = media.answer(call_id, offer)
    staff.run(peer.accept(answer))
    return peer, started


async def throwaway_offer() -> str:
    """An offer as the browser makes it, from a peer closed at once (the answer is refused)."""
    peer = StaffPeer()
    sdp = await peer.offer()
    await peer.close()
    return sdp


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


# -- the kiosk's side against an aiortc "browser" -------------------------------------------------------
def test_the_staff_peer_receives_the_camera_picture_and_stop_ends_it(staff: LoopThread, media: HelpMedia) -> None:
    peer, started = call(staff, media, "call-1")
    frame = staff.run(peer.frame())
    print(f"\naiortc staff peer: offer to first frame {1000 * (time.monotonic() - started):.0f} ms")
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    state = wait_for(lambda: (s := media.state()).connection == "connected" and s, "kiosk side connected")
    assert (state.call_id, state.video, state.microphone) == ("call-1", "live", False)
    assert state.staff_audio == "speaker"
    wait_for(lambda: media.state().staff_audio_frames > 0, "staff voice played on ALSA null")

    assert media.stop("other-call") is False  # not the call that is up: nothing happens
    assert media.state().call_id == "call-1"
    assert media.stop("call-1") is True
    assert staff.run(peer.video_ended(), DEADLINE_S + 5)
    assert media.state().call_id == ""
    staff.run(peer.close())


def test_an_offer_for_another_call_replaces_the_first(staff: LoopThread, media: HelpMedia) -> None:
    first, _ = call(staff, media, "call-a")
    staff.run(first.frame())
    second, _ = call(staff, media, "call-b")
    assert staff.run(first.video_ended(), DEADLINE_S + 5)
    frame = staff.run(second.frame())
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert media.state().call_id == "call-b"
    media.stop("call-b")
    for peer in (first, second):
        staff.run(peer.close())


def test_without_a_camera_or_microphone_the_offer_is_refused_in_words(staff: LoopThread) -> None:
    offer = staff.run(throwaway_offer())
    with HelpMedia(lambda: None, "", speaker="") as no_camera:
        with pytest.raises(MediaUnavailable, match="no camera"):
            no_camera.answer("c", offer)
        assert no_camera.state().call_id == ""
    with HelpMedia(None, "hw:CARD=NoSuchMic", speaker="") as no_microphone:
        with pytest.raises(MediaUnavailable, match="microphone device missing"):
            no_microphone.answer("c", offer)
        with pytest.raises(MediaOfferRefused, match="not an SDP"):
            no_microphone.answer("c", "hello")


def test_a_camera_lost_mid_call_ends_the_video_and_the_next_call_has_it_again(
        staff: LoopThread, media: HelpMedia, emulator: StreamingCameraEmulator, camera: OpenCvCamera) -> None:
    peer, _ = call(staff, media, "call-lost")
    staff.run(peer.frame())
    emulator.unplug()
    try:
        assert staff.run(peer.video_ended(), DEADLINE_S + 5)
        state = wait_for(lambda: (s := media.state()).video == "lost" and s, "video reported lost")
        assert (state.call_id, state.connection) == ("call-lost", "connected")  # the call goes on
        assert "camera http://127.0.0.1" in state.video_fault  # the driver's words for the technician
        with pytest.raises(MediaUnavailable, match="camera lost"):
            media.answer("call-next", staff.run(throwaway_offer()))
    finally:
        emulator.replug()
    camera.close()
    camera.open()  # what the device supervisor does once the camera is back
    staff.run(peer.close())
    again, _ = call(staff, media, "call-next")
    frame = staff.run(again.frame())
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert media.state().video == "live"
    media.stop("call-next")
    staff.run(again.close())


# -- media.js in headless Chromium -----------------------------------------------------------------------
PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>help call</title></head>
<body>
<main id="call" data-terminal="T-001" data-call="CALL_ID">
  <video id="remote-video" autoplay muted playsinline width="320" height="240"></video>
  <p id="media-status"></p>
  <button id="start-media">start</button> <button id="stop-media">stop</button>
</main>
<script>
  window.clickedAt = null; window.firstFrameMs = null;
  document.getElementById("start-media").addEventListener("click", () => { window.clickedAt = performance.now(); });
  document.getElementById("remote-video").addEventListener("loadeddata", () => {
    window.firstFrameMs = performance.now() - window.clickedAt; });
</script>
<script src="/static/media.js"></script>
</body></html>
"""


class _ConsoleStandIn(BaseHTTPRequestHandler):
    """The console's media endpoints, calling HelpMedia directly instead of the fleet channel."""

    protocol_version = "HTTP/1.1"
    media: HelpMedia
    no_camera: HelpMedia  # answers the call "no-camera": a kiosk whose camera is not open

    def do_GET(self) -> None:
        if self.path.startswith("/call/"):
            page = PAGE.replace("CALL_ID", self.path.removeprefix("/call/"))
            self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")
        elif self.path == "/static/media.js":
            self._send(200, MEDIA_JS.read_bytes(), "text/javascript; charset=utf-8")
        else:
            self._send(404, b"{}", "application/json")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path.strip("/").split("/")  # api calls T call media [stop]
        if self.headers.get("X-Requested-With") != "helpdesk" or parts[:2] != ["api", "calls"] or len(parts) < 5:
            self._send(403, b'{"detail": "not from the console page"}', "application/json")
            return
        call_id = parts[3]
        media = self.no_camera if call_id == "no-camera" else self.media
        if parts[4:] == ["media", "stop"]:
            media.stop(call_id)
            self._send(200, b"{}", "application/json")
            return
        try:
            answer = media.answer(call_id, json.loads(body)["sdp"])
        except (MediaUnavailable, MediaOfferRefused) as exc:
            self._send(409, json.dumps({"detail": str(exc)}).encode(), "application/json")
            return
        self._send(200, json.dumps({"sdp": answer}).encode(), "application/json")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def console(media: HelpMedia) -> Iterator[str]:
    no_camera = HelpMedia(lambda: None, "", speaker="")
    handler = type("Handler", (_ConsoleStandIn,), {"media": media, "no_camera": no_camera})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)
    no_camera.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium(*MEDIA_FLAGS) as driver:
        yield driver


def test_media_js_shows_the_kiosk_camera_in_chromium(browser: Any, console: str, media: HelpMedia) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(console + "/call/call-web")
    browser.find_element(By.ID, "start-media").click()
    wait = WebDriverWait(browser, DEADLINE_S)
    width = wait.until(lambda d: d.execute_script("return document.getElementById('remote-video').videoWidth"))
    assert width == WIDTH
    wait.until(lambda d: d.find_element(By.ID, "media-status").get_attribute("data-state") == "connected")
    print(f"\nChromium: click to first frame {browser.execute_script('return window.firstFrameMs'):.0f} ms")
    state = media.state()
    assert (state.call_id, state.video) == ("call-web", "live")
    wait_for(lambda: (s := media.state()).staff_audio == "speaker" and s.staff_audio_frames > 0,
             "the staff member's (fake) microphone played on the kiosk")

    browser.find_element(By.ID, "stop-media").click()
    wait_for(lambda: media.state().call_id == "", "media stopped from the page")
    assert browser.find_element(By.ID, "media-status").get_attribute("data-state") == "stopped"
    assert browser.execute_script("return document.getElementById('remote-video').srcObject") is None


def test_media_js_says_why_when_the_kiosk_cannot_send(browser: Any, console: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(console + "/call/no-camera")
    browser.find_element(By.ID, "start-media").click()
    status = browser.find_element(By.ID, "media-status")
    WebDriverWait(browser, DEADLINE_S).until(lambda d: status.get_attribute("data-state") == "failed")
    assert "no camera" in status.text
    assert browser.find_element(By.ID, "start-media").is_enabled()  # the staff member may try again
