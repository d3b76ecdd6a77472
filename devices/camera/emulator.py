"""A camera emulator that serves synthesised scenes as an IP camera does: MJPEG over HTTP.

The real driver opens ``http://127.0.0.1:PORT/stream.mjpg`` with OpenCV's FFmpeg backend
exactly as it opens a network camera, so every frame in a test goes through the same
demuxer, JPEG decoder, grabber thread and reconnect logic as on a terminal. The stream
is ``multipart/x-mixed-replace`` with one JPEG (quality 85) per part, each part with its
Content-Type and Content-Length, at `fps` frames a second. It listens on 127.0.0.1 only.

What the camera sees (devices.camera.scene) is scripted by method calls from tests, from
scenario files (``do = "device", device = "camera", call = "pose", args = [25]``) or
from a console through `command()`:

- person(name), pose(yaw, pitch, closer), leave(), no_face(), two_faces(other):
  a live person, turning or nodding (non-rigid, see scene.py), walking away, nobody, two;
- photo(name), screen(name): a printed photo or a phone replay held up (rigid only,
  deaf to pose());
- cover(): a uniform picture, as with a covered lens;
- unplug()/replug(): the camera vanishes (listener closed AND open streams cut, so the
  driver's reads fail) and comes back on the same port; slow(fps) changes the frame rate,
  slow(0) keeps the connection but sends nothing (a hung camera).

A console hands a typed line to `command()` and shows the answer it returns (`help`
lists the commands: person, pose yaw=25, noface, two, leave, photo, screen, cover, slow,
unplug, replug, ...); bad input is answered, never raised. A terminal that starts the
emulator puts start()'s URL into the driver parameter named by ADDRESS_PARAM ("source").

Frames exist only in memory: nothing is written to disk or logged.

Standalone::

    python -m devices.camera.emulator --port 0       # prints url http://127.0.0.1:PORT/stream.mjpg
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Protocol
from urllib.parse import urlsplit

import cv2
import numpy as np

from devices.camera.scene import FacePhotoError, Scene
from devices.emulator_cli import run_standalone

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"  # the emulated camera is never reachable from another machine
STREAM_PATH = "/stream.mjpg"
SNAPSHOT_PATH = "/snapshot.jpg"
BOUNDARY = "kioskcamframe"
JPEG_QUALITY = 85

CONSOLE_HELP = """emulated camera: type a command and Enter
  person [PHOTO]        a live person in front of the camera (default photo, or another)
  pose yaw=D pitch=D closer=F
                        the person turns (yaw, + = their left), nods (pitch, + = down)
                        or comes closer (face size factor); `pose 25` is yaw=25
  noface                nobody in front of the camera
  two [PHOTO]           the person and someone else (default biden.jpg)
  leave                 the person walks away
  photo [PHOTO]         a printed photo of the face held up
  screen [PHOTO]        a phone replaying the face held up
  cover                 something covers the lens
  cooperative [off]     whether the person follows the terminal's prompts
  slow FPS              serve FPS frames a second (0: connection open, no frames)
  unplug | replug       the camera goes away / comes back on the same address
  faces                 the face photos available
  help                  this text"""


class _MjpegServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # replug binds the same port while old connections linger

    def __init__(self, address: tuple[str, int], emulator: "StreamingCameraEmulator") -> None:
        self.emulator = emulator
        self.unplugged = threading.Event()
        super().__init__(address, _StreamHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("camera emulator: connection from %s ended with an error", client_address, exc_info=True)


class _StreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one stream per connection, ended by closing it
    server: _MjpegServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = urlsplit(self.path).path
        emulator = self.server.emulator
        if path == SNAPSHOT_PATH:
            jpeg = emulator._snapshot(self.server)
            if jpeg is None:
                self.send_error(503, "camera not serving")
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)
            return
        if path != STREAM_PATH:
            self.send_error(404, f"the stream is at {STREAM_PATH}")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        emulator._stream(self.server, self.connection, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("camera emulator: " + format, *args)


class SceneSource(Protocol):
    """What a streaming camera emulator films: anything that renders the current picture."""

    def render(self) -> np.ndarray:
        """The picture now: uint8 BGR, the emulator's height x width x 3."""


def check_stream_settings(fps: float, width: int, height: int, port: int) -> None:
    if not 0 < fps <= 60:
        raise ValueError(f"fps={fps}: frames a second must be above 0 and at most 60")
    if not (160 <= width <= 4096 and 120 <= height <= 3072):
        raise ValueError(f"{width}x{height}: an emulated camera serves 160x120 up to 4096x3072")
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} outside 0..65535 (0 = any free port)")


class StreamingCameraEmulator:
    """An IP camera on 127.0.0.1 filming `scene`; start() returns its stream URL.

    The base of every camera-like emulator (the face camera, the document camera, the QR
    camera): streaming, plugging and frame rate live here, what is filmed in `scene`."""

    ADDRESS_PARAM = "source"  # the OpenCvCamera parameter that start()'s URL goes into

    def __init__(self, scene: SceneSource, fps: float = 15, width: int = 640, height: int = 480,
                 port: int = 0) -> None:
        check_stream_settings(fps, width, height, port)
        self.width, self.height = width, height
        self.scene = scene
        self.requested_port = port
        self.port: int | None = None  # the port listened on, known after start and kept on replug
        self._fps = float(fps)
        self._server: _MjpegServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._producer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._clients = 0
        self._streams: set[socket.socket] = set()
        self._plug_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the camera emulator has not been started")
        return f"http://{LOOPBACK}:{self.port}{STREAM_PATH}"

    @property
    def running(self) -> bool:
        """True while the camera is plugged in (serving)."""
        return self._server is not None

    @property
    def fps(self) -> float:
        return self._fps

    def start(self) -> str:
        """Serve the stream; return the URL the driver opens."""
        if self._producer is not None:
            raise RuntimeError("camera emulator already running")
        self._stopping.clear()
        self._producer = threading.Thread(target=self._produce, name="camera-emulator-frames", daemon=True)
        self._producer.start()
        try:
            return self._plug()
        except OSError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving and producing frames. Safe to call twice."""
        self._unplug()
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._producer is not None:
            self._producer.join(timeout=5)
            self._producer = None

    def unplug(self) -> None:
        """Like pulling the camera's cable: no new connections, and open streams are cut."""
        self._unplug()

    def replug(self) -> str:
        """Like plugging it back in: serve again on the same port; returns the URL."""
        if self._producer is None:
            raise RuntimeError("camera emulator not started")
        if self._server is not None:
            raise RuntimeError("camera emulator is plugged in")
        return self._plug()

    def __enter__(self) -> "StreamingCameraEmulator":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _plug(self) -> str:
        with self._plug_lock:
            port = self.port if self.port is not None else self.requested_port
            try:
                server = _MjpegServer((LOOPBACK, port), self)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {LOOPBACK}:{port}: {exc.strerror}") from None
            self._server = server
            self.port = server.server_address[1]
            self._serve_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                                  name="camera-emulator-http", daemon=True)
            self._serve_thread.start()
        log.info("camera emulator serving %s", self.url)
        return self.url

    def _unplug(self) -> None:
        with self._plug_lock:
            server, self._server = self._server, None
            if server is None:
                return
            server.unplugged.set()
            server.shutdown()
            server.server_close()  # connecting is refused from now on
            with self._cond:
                streams = list(self._streams)
                self._cond.notify_all()
            for sock in streams:  # and what is being streamed stops mid-flow, like a pulled cable
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if self._serve_thread is not None:
                self._serve_thread.join(timeout=5)
                self._serve_thread = None
        log.info("camera emulator unplugged")

    # -- frames ------------------------------------------------------------------------------------
    def _produce(self) -> None:
        """Render and encode frames at the current rate while someone watches."""
        next_at = time.monotonic()
        try:
            while not self._stopping.is_set():
                with self._cond:
                    fps, watched = self._fps, self._clients > 0
                if fps <= 0 or not watched:
                    self._stopping.wait(0.05)
                    next_at = time.monotonic()
                    continue
                frame = self.scene.render()
                ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if ok:
                    with self._cond:
                        self._jpeg = jpeg.tobytes()
                        self._seq += 1
                        self._cond.notify_all()
                next_at += 1.0 / fps
                delay = next_at - time.monotonic()
                if delay < -1.0 / fps:  # fell behind: carry on from now instead of bursting
                    next_at, delay = time.monotonic(), 0.0
                self._stopping.wait(max(0.0, delay))
        except Exception:  # the emulator must say why the picture froze
            log.exception("camera emulator stopped producing frames")

    @contextlib.contextmanager
    def _watching(self, conn: socket.socket | None = None) -> Iterator[None]:
        """Count a viewer (frames are made only while someone watches); a stream's socket is
        remembered so unplug() can cut it."""
        with self._cond:
            self._clients += 1
            if conn is not None:
                self._streams.add(conn)
        try:
            yield
        finally:
            with self._cond:
                self._clients -= 1
                if conn is not None:
                    self._streams.discard(conn)
                if self._clients == 0:
                    self._jpeg = None  # the next viewer gets a fresh frame, never a stale one

    def _next_jpeg(self, server: _MjpegServer, after: int) -> tuple[int, bytes] | None:
        """The next frame newer than `after`, or None once unplugged or stopped."""
        with self._cond:
            while not (server.unplugged.is_set() or self._stopping.is_set()):
                if self._jpeg is not None and self._seq > after:
                    return self._seq, self._jpeg
                self._cond.wait(0.5)
            return None

    def _snapshot(self, server: _MjpegServer) -> bytes | None:
        with self._watching():
            item = self._next_jpeg(server, -1)
        return None if item is None else item[1]

    def _stream(self, server: _MjpegServer, conn: socket.socket, out: Any) -> None:
        seq = -1
        with self._watching(conn):
            try:
                while True:
                    item = self._next_jpeg(server, seq)
                    if item is None:
                        return
                    seq, jpeg = item
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    out.write(head.encode("ascii") + jpeg + b"\r\n")
                    out.flush()
            except OSError:  # the driver went away, or unplug() cut the connection
                return

    def slow(self, fps: float) -> None:
        """Serve this many frames a second from now on; 0 keeps connections open but sends
        nothing, like a camera that hangs."""
        fps = float(fps)
        if not 0 <= fps <= 60:
            raise ValueError(f"slow({fps}): frames a second from 0 (hang) to 60")
        with self._cond:
            self._fps = fps

    def stream_command(self, verb: str, args: list[str]) -> str | None:
        """The console commands every camera emulator shares (slow, unplug, replug); None when
        `verb` is not one of them. Errors are raised for the caller to answer."""
        if verb == "slow" and len(args) == 1:
            self.slow(float(args[0]))
            return f"the camera now sends {float(args[0]):g} frames a second"
        if verb == "unplug" and not args:
            self.unplug()
            return "camera unplugged"
        if verb == "replug" and not args:
            return f"camera plugged in again at {self.replug()}"
        return None


class CameraEmulator(StreamingCameraEmulator):
    """The face camera: a person (or a photo, a screen, nobody) in front of the terminal."""

    def __init__(
        self,
        faces_dir: str = "var/testdata/faces",
        person: str = "obama2.jpg",
        fps: float = 15,
        width: int = 640,
        height: int = 480,
        port: int = 0,
    ) -> None:
        check_stream_settings(fps, width, height, port)
        if not (width <= 1920 and height <= 1080):
            raise ValueError(f"{width}x{height}: the emulated camera serves 160x120 up to 1920x1080")
        directory = Path(faces_dir)
        self.faces_dir = directory if directory.is_absolute() else ROOT / directory
        if not self.faces_dir.is_dir():
            raise FacePhotoError(
                f"no face photo directory {self.faces_dir}: run scripts/setup.sh to fetch the test faces")
        super().__init__(Scene(self.faces_dir, person, width, height), fps, width, height, port)
        self.scene: Scene
        # Whether the emulated citizen does what the terminal's prompts ask (turn, nod, come
        # closer). The emulator only keeps it; whoever relays prompts to pose() reads it.
        self.cooperative = True

    # -- scripting ---------------------------------------------------------------------------------
    def faces(self) -> list[str]:
        """Face photos that person/photo/screen/two_faces accept."""
        return self.scene.names()

    def person(self, name: str | None = None) -> None:
        """A cooperative live person in front of the camera, facing it (pose reset)."""
        self.scene.person(name)

    def pose(self, yaw: float = 0.0, pitch: float = 0.0, closer: float = 1.0) -> None:
        """The live person turns (yaw, degrees, + = their left, i.e. the right of the camera's
        unmirrored picture), nods (pitch, + = down) or comes closer (face size factor), over
        ~0.5 s. Photos and screens ignore it."""
        self.scene.pose(float(yaw), float(pitch), float(closer))

    def no_face(self) -> None:
        """Nobody there: the room only."""
        self.scene.none()

    def two_faces(self, other: str = "biden.jpg") -> None:
        """The person and someone else next to them."""
        self.scene.two(other)

    def leave(self) -> None:
        """The person walks out of the picture over ~0.5 s; then nobody is there."""
        self.scene.leave()

    def photo(self, name: str | None = None) -> None:
        """A printed photo of the face (default: the current person's) held up to the camera."""
        self.scene.hold("photo", name)

    def screen(self, name: str | None = None) -> None:
        """A phone replaying the face held up to the camera."""
        self.scene.hold("screen", name)

    def cover(self) -> None:
        """Something covers the lens: a uniform dark picture."""
        self.scene.cover()

    # -- console -----------------------------------------------------------------------------------
    def command(self, line: str) -> str:
        """Carry out one console command (see CONSOLE_HELP); returns the answer to show.
        Unknown or bad input is answered, never raised."""
        words = line.split()
        if not words:
            return ""
        verb, args = words[0].lower(), words[1:]
        try:
            if verb == "help":
                return CONSOLE_HELP
            if verb == "faces":
                return "  ".join(self.faces())
            if verb == "person" and len(args) <= 1:
                self.person(*args)
                return f"a live person ({self.scene.person_name}) is in front of the camera"
            if verb == "pose":
                values = _pose_arguments(args)
                self.pose(**values)
                return "the person turns to " + ", ".join(f"{k}={v:g}" for k, v in values.items())
            if verb in ("noface", "no_face", "nobody") and not args:
                self.no_face()
                return "nobody in front of the camera"
            if verb in ("two", "two_faces") and len(args) <= 1:
                self.two_faces(*args)
                return "two people in front of the camera"
            if verb == "leave" and not args:
                self.leave()
                return "the person walks away"
            if verb == "photo" and len(args) <= 1:
                self.photo(*args)
                return "a printed photo is held up to the camera"
            if verb == "screen" and len(args) <= 1:
                self.screen(*args)
                return "a phone replaying a face is held up to the camera"
            if verb == "cover" and not args:
                self.cover()
                return "the lens is covered"
            if verb == "cooperative" and len(args) <= 1:
                self.cooperative = not args or args[0].lower() not in ("off", "no", "false", "0")
                return "the person follows the prompts" if self.cooperative else "the person ignores the prompts"
            answer = self.stream_command(verb, args)
            if answer is not None:
                return answer
        except (FacePhotoError, ValueError, TypeError, RuntimeError, OSError) as exc:
            return f"error: {exc}"
        return f"unknown camera command {line.strip()!r}; type help"


def _pose_arguments(args: list[str]) -> dict[str, float]:
    """`pose 25`, `pose yaw=25 pitch=-10`, `pose closer=1.3` -> keyword arguments."""
    values: dict[str, float] = {}
    for i, arg in enumerate(args):
        key, sep, value = arg.partition("=")
        if not sep:
            if i > 2:
                raise ValueError(f"pose takes at most yaw, pitch and closer, not {arg!r}")
            key, value = ("yaw", "pitch", "closer")[i], arg
        if key not in ("yaw", "pitch", "closer"):
            raise ValueError(f"pose has yaw=, pitch= and closer=, not {key}=")
        values[key] = float(value)
    return values



def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.camera.emulator",
        description="Serve an emulated IP camera (MJPEG over HTTP on 127.0.0.1) showing a scripted scene; "
        "type commands on standard input (help lists them).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--person", default="obama2.jpg", help="face photo of the live person")
    parser.add_argument("--faces-dir", default="var/testdata/faces", help="directory of face photos")
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    return run_standalone(lambda: CameraEmulator(args.faces_dir, args.person, args.fps, args.width, args.height, args.port),
                          lambda emu, url: [f"url {url}"],
                          (FacePhotoError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(_main())
