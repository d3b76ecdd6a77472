"""Help-call audio and video: the kiosk's side of a WebRTC call with a help-desk browser.

The staff member's browser makes the offer (video to receive, audio both ways); the fleet
agent hands it to `HelpMedia.answer()`, which returns the full answer SDP (non-trickle: ICE
gathering is finished first, so one MQTT message carries it back, see fleet/protocol.py
``media_offer`` and ``up/media``).

What the kiosk sends:

- video from the configured camera device (devices/camera/interface.py): the latest frame,
  about 15 a second. The kiosk's camera mirrors its picture for the citizen's preview; the
  staff get it unmirrored, as a camera sees, so a paper held up reads the right way round.
  That picture is the citizen: it is sent only while a call the citizen is in is answered
  (the caller stops it when the call ends or the visit is wiped) and is never stored;
- audio from the ALSA capture device `microphone`, when one is configured.

What it receives: the staff member's voice, played on the ALSA output `speaker` when there
is one, else read and dropped (an unread track would queue in memory for the whole call).

Everything runs on one asyncio event loop in one daemon thread; the public methods are
blocking and safe to call from any thread. One call at a time: an offer for a new call
(or a new offer for the same call) closes the call before it. A camera lost mid-call ends
the video track (the browser is told by an RTCP BYE), not the call and not the kiosk; the
next offer finds the camera again.

The PyAV wheel carries its own ALSA library, which looks for its configuration in a build
directory; HelpMedia points it at the system's (/usr/share/alsa) unless the environment
already says where it is, so device names such as "default" or "hw:1" mean what they mean
to arecord and aplay.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import av
import cv2
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole, MediaPlayer
from aiortc.exceptions import (
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from devices.base import DeviceDisconnected
from devices.camera.interface import Camera, Frame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000  # RTP clock of every video codec
FIRST_FRAME_WAIT_S = 3.0  # a camera with no picture this long after an offer is not there
CAMERA_SILENT_S = 5.0  # no new picture this long mid-call: the camera counts as lost
SPEAKER_QUEUE = 25  # 20 ms audio frames buffered for the speaker (0.5 s); older ones are dropped
SYSTEM_ALSA = Path("/usr/share/alsa")


class MediaError(Exception):
    """Help-call media could not be set up; the message says why, in words."""


class MediaUnavailable(MediaError):
    """A device the call needs is missing: no camera, camera lost, microphone missing."""


class MediaOfferRefused(MediaError):
    """The browser's offer cannot be answered: not an SDP offer, or no answer in time."""


@dataclass(frozen=True)
class MediaState:
    """What the current call sends and receives, for the agent's reports and for tests."""

    call_id: str = ""  # "" when no call is up
    connection: str = "none"  # RTCPeerConnection.connectionState, or "none"
    video: str = "none"  # "none" (not offered or no camera configured) | "live" | "lost"
    video_fault: str = ""  # why the video ended, in a technician's words
    microphone: bool = False  # the citizen's voice is sent
    staff_audio: str = "none"  # "none" | "speaker" (played) | "discarded" (no output device)
    staff_audio_frames: int = 0  # 20 ms frames of the staff member's voice played so far


def use_system_alsa_config(root: Path = SYSTEM_ALSA) -> None:
    """Point PyAV's bundled ALSA library at the system's configuration (see the module text),
    unless the environment already says where it is."""
    if (root / "alsa.conf").is_file():
        os.environ.setdefault("ALSA_CONFIG_PATH", str(root / "alsa.conf"))
        os.environ.setdefault("ALSA_CONFIG_DIR", str(root))


class CameraTrack(MediaStreamTrack):
    """Video from a kiosk camera: the latest frame at a steady rate, in memory only.

    A lost camera (DeviceDisconnected, or no new picture for CAMERA_SILENT_S) ends the
    track: `fault` says why and `on_lost` is called on the event loop."""

    kind = "video"

    def __init__(self, camera: Camera, first: Frame, fps: float, unmirror: bool,
                 on_lost: Callable[[str], None]) -> None:
        super().__init__()
        self._camera = camera
        self._frame: Frame | None = first
        self._fresh_at = time.monotonic()
        self._period = 1.0 / fps
        self._unmirror = unmirror
        self._on_lost = on_lost
        self._origin: float | None = None  # the first frame's time: pts count from it
        self._start = 0.0  # pacing: frames are due at _start + _count / fps
        self._count = 0
        self.fault = ""

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or self._frame is None:
            raise MediaStreamError
        now = time.monotonic()
        if self._origin is None:
            self._origin = self._start = now
        else:
            self._count += 1
            wait = self._start + self._count * self._period - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -1.0:  # the loop fell far behind (a busy machine): carry on from now
                self._start, self._count = now, 0
        frame = self._next_frame()
        if frame is None:
            raise MediaStreamError
        image = cv2.flip(frame.image, 1) if self._unmirror else frame.image
        video = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        video.pts = round((time.monotonic() - self._origin) * VIDEO_CLOCK)
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return video

    def _next_frame(self) -> Frame | None:
        """The newest picture (the last one again when none is newer yet); None once lost."""
        current = self._frame
        if current is None:
            return None
        try:
            newer = self._camera.latest_frame(newer_than=current.seq, timeout_s=0)
        except DeviceDisconnected as exc:
            self._lose(str(exc))
            return None
        now = time.monotonic()
        if newer is not None:
            self._frame, self._fresh_at = newer, now
            return newer
        if now - self._fresh_at > CAMERA_SILENT_S:
            self._lose(f"the camera gave no new picture for {now - self._fresh_at:.0f} s")
            return None
        return current

    def _lose(self, fault: str) -> None:
        self.fault = fault or "the camera was lost"
        self._frame = None  # the last picture of the citizen is not kept
        log.warning("help call video ended: %s", self.fault)
        self.stop()
        self._on_lost(self.fault)

    def stop(self) -> None:
        self._frame = None
        super().stop()


class SpeakerSink:
    """The staff member's voice on an ALSA output, written from a thread of its own (ALSA
    writes block at the sound card's pace, which must not hold up the event loop).

    Opening the device fails where there is none (no sound card): the audio is then read and
    dropped, and `fault` says why."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.fault = ""
        self.opened = threading.Event()  # set once the device has been tried, opened or not
        self.played = 0  # frames written to the device
        self._queue: queue.Queue[av.AudioFrame | None] = queue.Queue(maxsize=SPEAKER_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self._play, name="help-media-speaker", daemon=True)

    def addTrack(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._read(track)))

    async def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """Stop reading and let go of the sound device (the next call opens it again)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._put(None)
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 2.0)

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self._put(frame)

    def _put(self, frame: av.AudioFrame | None) -> None:
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:  # the speaker is behind: drop the oldest, keep the delay short
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def _play(self) -> None:
        container: Any = None
        try:
            try:
                container = av.open(self.device, format="alsa", mode="w")
                stream = container.add_stream("pcm_s16le", rate=48000, layout="stereo")
                container.start_encoding()
            except (av.FFmpegError, OSError, ValueError) as exc:
                self.fault = (f"no sound output on ALSA device {self.device!r} ({exc}); the staff member's "
                              "voice is not played: check the speaker and `aplay -L`")
                log.warning("help call: %s", self.fault)
                container = None
            self.opened.set()
            resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
            while True:
                frame = self._queue.get()
                if frame is None:
                    return
                if container is None:
                    continue
                for out in resampler.resample(frame):
                    out.pts = None
                    for packet in stream.encode(out):
                        container.mux(packet)
                self.played += 1
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.fault = f"the sound output {self.device!r} failed mid-call ({exc}); check the speaker"
            log.warning("help call: %s", self.fault)
            while self._queue.get() is not None:  # keep reading until stopped, drop it all
                pass
        finally:
            self.opened.set()
            if container is not None:
                try:
                    container.close()
                except (av.FFmpegError, OSError):
                    pass


@dataclass
class _Call:
    call_id: str
    pc: RTCPeerConnection
    video: CameraTrack | None = None
    video_sender: Any = None
    microphone: MediaPlayer | None = None
    sinks: list[Any] = field(default_factory=list)
    staff_audio: str = "none"
    video_fault: str = ""


class HelpMedia:
    """Answers a help-desk browser's WebRTC offer with the kiosk's camera and microphone.

    `camera` gives the camera device now in use (None when it is missing: the offer is then
    refused with "no camera"); pass camera=None when no camera is configured at all (an
    audio-only call). `microphone` is an ALSA capture device, "" for none; `speaker` the
    ALSA output for the staff member's voice. `ice_servers` are STUN/TURN URLs; none by
    default: the kiosk and the help desk then need to reach each other directly."""

    def __init__(self, camera: Callable[[], Camera | None] | None, microphone: str, *,
                 ice_servers: list[str] | None = None, speaker: str = "default", fps: float = 15.0) -> None:
        if not 0 < fps <= 30:
            raise ValueError(f"fps={fps}: help-call video is sent at 1 to 30 frames a second")
        self._camera = camera
        self._microphone = microphone.strip()
        self._speaker = speaker.strip()
        self._ice_servers = [RTCIceServer(urls=url) for url in (ice_servers or [])]
        self._fps = fps
        use_system_alsa_config()
        self._call: _Call | None = None  # touched on the event loop only
        self._busy: asyncio.Lock | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="help-media", daemon=True)
        self._thread.start()

    # -- the public, blocking side -----------------------------------------------------------------
    def answer(self, call_id: str, offer_sdp: str, timeout_s: float = 15.0) -> str:
        """The answer SDP to the browser's offer, with every ICE candidate in it.

        Raises MediaUnavailable (no camera, camera lost, microphone missing),
        MediaOfferRefused (not an offer, or not answered within `timeout_s`), or MediaError
        once closed."""
        if not call_id:
            raise MediaOfferRefused("an offer needs the help call's id")
        if not isinstance(offer_sdp, str) or not offer_sdp.lstrip().startswith("v=0"):
            raise MediaOfferRefused("the offer is not an SDP description (it must start with v=0)")
        future = self._submit(self._answer(call_id, offer_sdp))
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise MediaOfferRefused(
                f"no answer within {timeout_s:g} s (the camera, the microphone or ICE gathering was too "
                "slow: check the devices, the STUN/TURN servers configured and the kiosk's network)") from None

    def stop(self, call_id: str, timeout_s: float = 10.0) -> bool:
        """Close that call's media; False when it is not the call up (already closed or replaced)."""
        if self._closed:
            return False
        return self._submit(self._stop(call_id)).result(timeout_s)

    def state(self) -> MediaState:
        """The current call's media, as it stands now."""
        if self._closed:
            return MediaState()
        return self._submit(self._state()).result(10.0)

    def close(self) -> None:
        """Close any call and end the loop thread. Safe to call twice."""
        if self._closed:
            return
        try:
            self._submit(self._stop(None)).result(10.0)
        except (concurrent.futures.TimeoutError, MediaError):
            log.warning("help media: the call did not close within 10 s; stopping anyway")
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            coro.close()
            raise MediaError("help media is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._busy = asyncio.Lock()
        try:
            self._loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    # -- on the event loop ---------------------------------------------------------------------------
    async def _answer(self, call_id: str, offer_sdp: str) -> str:
        assert self._busy is not None
        async with self._busy:
            await self._end(None, "replaced by a new offer")
            pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
            call = self._call = _Call(call_id, pc)
            try:
                await self._set_up(call, offer_sdp)
            except BaseException:  # refused, failed or cancelled (timed out): nothing of it stays open
                if self._call is call:
                    self._call = None
                await self._close_call(call)
                raise
            return pc.localDescription.sdp

    async def _set_up(self, call: _Call, offer_sdp: str) -> None:
        """Take the offer, add what the kiosk sends, start reading what it receives, answer."""
        loop = asyncio.get_running_loop()
        pc = call.pc
        offer = RTCSessionDescription(sdp=offer_sdp, type="offer")
        incoming: list[MediaStreamTrack] = []
        pc.on("track", incoming.append)

        @pc.on("connectionstatechange")
        async def _changed() -> None:
            log.info("help call media: %s", pc.connectionState)
            if pc.connectionState == "failed" and self._call is call:
                await self._end(call.call_id, "the connection failed")

        try:
            await pc.setRemoteDescription(offer)
        except (ValueError, TypeError, KeyError, IndexError, InternalError, InvalidAccessError,
                InvalidStateError, OperationError) as exc:
            raise MediaOfferRefused(f"the offer cannot be used: {exc}") from None
        wants_video, wants_audio = _may_send(pc, "video"), _may_send(pc, "audio")
        if self._camera is not None and wants_video:
            camera = self._camera()
            if camera is None:
                raise MediaUnavailable("no camera: the camera configured for help-call video "
                                       "([fleet] media_camera) is not open; check it in the maintenance screen")
            first = await loop.run_in_executor(None, _first_frame, camera)
            unmirror = bool(getattr(getattr(camera, "params", None), "mirror", False))
            call.video = CameraTrack(camera, first, self._fps, unmirror,
                                     lambda fault: self._video_lost(call, fault))
            call.video_sender = pc.addTrack(call.video)
        if self._microphone and wants_audio:
            call.microphone = await loop.run_in_executor(None, _open_microphone, self._microphone)
            assert call.microphone.audio is not None  # _open_microphone checked it
            pc.addTrack(call.microphone.audio)
        if call.video is None and call.microphone is None:
            if self._camera is None and not self._microphone:
                raise MediaUnavailable("no camera and no microphone configured for help calls "
                                       "([fleet] media_camera, microphone): the call is text only")
            raise MediaOfferRefused("the offer asks for nothing this kiosk sends (no video to receive, "
                                    "no audio)")
        for track in incoming:
            if track.kind == "audio" and self._speaker and call.staff_audio == "none":
                sink: Any = SpeakerSink(self._speaker)
                call.staff_audio = "speaker"
            else:  # staff video (not asked for) or a second audio track: read and dropped
                sink = MediaBlackhole()
            sink.addTrack(track)
            call.sinks.append(sink)
            await sink.start()
        if call.staff_audio == "none" and any(t.kind == "audio" for t in incoming):
            call.staff_audio = "discarded"
        await pc.setLocalDescription(await pc.createAnswer())  # gathers every candidate first
        log.info("help call media answered: video %s, microphone %s, staff audio %s",
                 "yes" if call.video else "no", "yes" if call.microphone else "no", call.staff_audio)

    def _video_lost(self, call: _Call, fault: str) -> None:
        """The camera went away mid-call: stop the video sender (the browser gets an RTCP BYE),
        keep the audio going."""
        call.video_fault = fault
        if call.video_sender is not None:
            sender, call.video_sender = call.video_sender, None
            asyncio.ensure_future(sender.stop())

    async def _stop(self, call_id: str | None) -> bool:
        assert self._busy is not None
        async with self._busy:
            return await self._end(call_id, "stopped")

    async def _end(self, call_id: str | None, why: str) -> bool:
        call = self._call
        if call is None or (call_id is not None and call.call_id != call_id):
            return False
        self._call = None
        await self._close_call(call)
        log.info("help call media closed: %s", why)
        return True

    async def _close_call(self, call: _Call) -> None:
        if call.video is not None:
            call.video.stop()
        try:
            await call.pc.close()  # stops the senders (BYE), the receivers and the microphone track
        except Exception:  # a half-set-up connection must still let go of its devices
            log.exception("help call media: closing the connection failed")
        if call.microphone is not None and call.microphone.audio is not None:
            call.microphone.audio.stop()  # releases the ALSA capture device
        for sink in call.sinks:
            await sink.stop()

    async def _state(self) -> MediaState:
        call = self._call
        if call is None:
            return MediaState()
        video = "none"
        if call.video is not None:
            video = "lost" if (call.video_fault or call.video.fault) else "live"
        staff_audio, played = call.staff_audio, 0
        for sink in call.sinks:
            if isinstance(sink, SpeakerSink):
                played = sink.played
                if sink.fault:
                    staff_audio = "discarded"
        return MediaState(call.call_id, call.pc.connectionState, video,
                          call.video_fault or (call.video.fault if call.video else ""),
                          call.microphone is not None, staff_audio, played)


def _may_send(pc: RTCPeerConnection, kind: str) -> bool:
    """Whether the offer has a `kind` line the browser receives on (its recvonly or sendrecv;
    aiortc keeps the direction as seen from our side)."""
    return any(t.kind == kind and getattr(t, "_offerDirection", None) in ("sendonly", "sendrecv")
               for t in pc.getTransceivers())


def _first_frame(camera: Camera) -> Frame:
    """A picture from the camera now; MediaUnavailable in words when it has none."""
    try:
        frame = camera.latest_frame(timeout_s=FIRST_FRAME_WAIT_S)
    except DeviceDisconnected as exc:
        raise MediaUnavailable(f"camera lost: {exc}") from None
    if frame is None:
        raise MediaUnavailable(f"camera lost: no picture from the camera within {FIRST_FRAME_WAIT_S:g} s; "
                               "check its cable and the maintenance screen")
    return frame


def _open_microphone(device: str) -> MediaPlayer:
    try:
        player = MediaPlayer(device, format="alsa")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaUnavailable(
            f"microphone device missing: ALSA capture device {device!r} does not open ({exc}); check the "
            "microphone's cable and [fleet] microphone against `arecord -L`") from None
    if player.audio is None:
        raise MediaUnavailable(f"microphone device {device!r} gives no audio stream; check [fleet] microphone")
    return player
