"""A camera emulator filming a phone that shows a QR code: MJPEG over HTTP on 127.0.0.1.

The real CameraQrScanner opens the stream with OpenCvCamera (FFmpeg), exactly as it
opens a network camera, so every code in a test goes through JPEG compression, the
camera's scaling/rotation/mirroring and zxing-cpp. Streaming, unplug/replug and the
frame rate come from devices.camera.emulator.StreamingCameraEmulator; this module adds
what is filmed (`PhoneQrScene`):

- show(text, angle, scale, tilt): a phone held up with the code on its screen; the
  code is made with segno in byte mode, UTF-8, error correction M and no ECI, as phone
  apps make them. `angle` turns the phone in the picture (degrees, clockwise), `tilt`
  turns it away around its vertical axis (perspective), `scale` brings it closer (>1)
  or further (<1); at scale 1 the code with its quiet zone is half the picture's height;
- hide(): the phone is taken away (only the room is filmed);
- blur(sigma): out of focus or moving (Gaussian blur of `sigma` pixels; 0 = sharp);
- glare(strength): a reflection on the phone's screen over the code's top-left corner;
  1.0 washes that part out (the code cannot be read), ~0.4 only dims the contrast.

Directions are those of the camera's own, unmirrored picture: a driver configured to
mirror its frames sees the code mirrored, as a real camera mirrored for a preview would.

A console hands a typed line to `command()` and shows the answer (`help` lists the
commands); bad input is answered, never raised.

Standalone::

    python -m devices.qr_scanner.camera_emulator --port 0 --text "YY2606010000426"
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import threading

import cv2
import numpy as np
import segno

from devices.camera.emulator import StreamingCameraEmulator, check_stream_settings
from devices.camera.scene import room_background
from devices.emulator_cli import run_standalone

log = logging.getLogger(__name__)

CODE_SHARE = 0.5  # side of the code (quiet zone included) over the picture's height, at scale 1
QUIET_MODULES = 2  # phone apps draw a narrow margin around the code
GLARE_WASH = 1.0

CONSOLE_HELP = """emulated QR camera: type a command and Enter
  show [angle=D] [scale=F] [tilt=D] TEXT
                        a phone shows a QR code with TEXT (the rest of the line; Chinese is fine);
                        angle turns it in the picture, tilt away from the camera, scale brings it closer
  hide                  the phone is taken away
  blur SIGMA | blur off the picture is out of focus by SIGMA pixels / sharp again
  glare [STRENGTH] | glare off
                        a reflection on the screen (1.0 washes part of the code out) / none
  slow FPS              serve FPS frames a second (0: connection open, no frames)
  unplug | replug       the camera goes away / comes back on the same address
  help                  this text"""


def qr_modules(text: str, error: str = "m") -> np.ndarray:
    """The code's modules (1 = dark), byte mode UTF-8 without ECI, as phones make them."""
    code = segno.make(text, error=error, micro=False, encoding="utf-8", eci=False, boost_error=False)
    return np.array([list(row) for row in code.matrix], dtype=np.uint8)


def _phone_sprite(modules: np.ndarray, module_px: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """A phone with the code on its screen: (BGR image, alpha 0..1, centre of the code)."""
    n = modules.shape[0] + 2 * QUIET_MODULES
    side = n * module_px
    screen_w = int(side * 1.3)
    screen_h = int(screen_w * 2.05)
    bezel = max(4, screen_w // 24)
    top = bezel * 3
    w, h = screen_w + 2 * bezel, screen_h + 2 * top
    img = np.full((h, w, 3), (24, 22, 22), np.uint8)
    screen = np.full((screen_h, screen_w, 3), (246, 246, 244), np.uint8)
    bar = screen_h // 9
    screen[:bar] = (120, 170, 40)  # the app's title bar (BGR: teal-green)
    qx, qy = (screen_w - side) // 2, bar + screen_h // 14
    padded = np.zeros((n, n), np.uint8)
    padded[QUIET_MODULES:-QUIET_MODULES, QUIET_MODULES:-QUIET_MODULES] = modules
    code = np.where(np.kron(padded, np.ones((module_px, module_px), np.uint8)) > 0, 24, 250).astype(np.uint8)
    screen[qy:qy + side, qx:qx + side] = code[..., None]
    for i in range(3):  # lines of small print under the code
        y = qy + side + screen_h // 16 + i * screen_h // 22
        cv2.rectangle(screen, (screen_w // 6, y), (screen_w * (5 - i) // 6, y + max(2, screen_h // 70)),
                      (150, 150, 150), -1)
    img[top:top + screen_h, bezel:bezel + screen_w] = screen
    alpha = np.zeros((h, w), np.uint8)
    r = bezel * 2
    cv2.rectangle(alpha, (r, 0), (w - 1 - r, h - 1), 255, -1)
    cv2.rectangle(alpha, (0, r), (w - 1, h - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 255, -1)
    centre = (bezel + qx + side / 2, top + qy + side / 2)
    return img, alpha.astype(np.float32) / 255.0, centre


class PhoneQrScene:
    """The room, and maybe a phone showing a code; render() gives the current picture."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._background = room_background(width, height)
        self._background.flags.writeable = False
        self._lock = threading.Lock()
        self.text: str | None = None
        self._phone: tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None = None
        self._homography: np.ndarray | None = None
        self._code_side = 0.0
        self._centre = (0.0, 0.0)
        self._blur = 0.0
        self._glare_strength = 0.0
        self._glare: np.ndarray | None = None  # float32 HxW, 0..1, for the phone shown now

    # -- scripting --------------------------------------------------------------------------------
    def show(self, text: str, angle: float = 0.0, scale: float = 1.0, tilt: float = 0.0) -> None:
        if not text:
            raise ValueError("show() needs the code's text")
        if not 0.2 <= scale <= 3.0:
            raise ValueError(f"scale {scale}: from 0.2 (far away) to 3.0 (very close)")
        if not -75 <= tilt <= 75:
            raise ValueError(f"tilt {tilt}: degrees from -75 to 75")
        modules = qr_modules(text)
        code_side = CODE_SHARE * self.height * scale
        module_px = max(2, math.ceil(code_side / (modules.shape[0] + 2 * QUIET_MODULES)))
        sprite, alpha, centre = _phone_sprite(modules, module_px)
        k = code_side / ((modules.shape[0] + 2 * QUIET_MODULES) * module_px)
        matrix = self._placement(sprite.shape[1], sprite.shape[0], centre, k, angle, tilt)
        size = (self.width, self.height)
        image = cv2.warpPerspective(sprite, matrix, size, flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(alpha, matrix, size, flags=cv2.INTER_LINEAR)
        ys, xs = np.nonzero(mask > 0.002)
        if len(xs) == 0:
            raise ValueError("the phone would be entirely outside the picture")
        box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
        phone = (image[box].astype(np.float32), mask[box][..., None].copy(), box)
        with self._lock:
            self.text = text
            self._phone = phone
            self._homography = matrix
            self._code_side = code_side / k  # in sprite pixels
            self._centre = centre
            self._glare = self._glare_mask() if self._glare_strength else None

    def hide(self) -> None:
        with self._lock:
            self.text = None
            self._phone = None
            self._glare = None

    def blur(self, sigma: float) -> None:
        if not 0 <= sigma <= 30:
            raise ValueError(f"blur {sigma}: pixels from 0 (sharp) to 30")
        with self._lock:
            self._blur = float(sigma)

    def glare(self, strength: float) -> None:
        if not 0 <= strength <= 1:
            raise ValueError(f"glare {strength}: from 0 (none) to 1 (washed out)")
        with self._lock:
            self._glare_strength = float(strength)
            self._glare = self._glare_mask() if strength and self._phone is not None else None

    # -- drawing ----------------------------------------------------------------------------------
    def _placement(self, w: int, h: int, centre: tuple[float, float], k: float, angle: float,
                   tilt: float) -> np.ndarray:
        """Sprite -> picture: the code's centre to the picture's centre, scaled, tilted, turned."""
        cx, cy = centre
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        t, a = math.radians(tilt), math.radians(angle)
        focal = 1.2 * self.width
        dst = []
        for x, y in src:
            x, y = (x - cx) * k, (y - cy) * k
            x3, z3 = x * math.cos(t), x * math.sin(t)  # turned away around the vertical axis
            x2, y2 = focal * x3 / (focal + z3), focal * y / (focal + z3)
            xr = x2 * math.cos(a) - y2 * math.sin(a)
            yr = x2 * math.sin(a) + y2 * math.cos(a)
            dst.append((xr + self.width / 2, yr + self.height / 2))
        return cv2.getPerspectiveTransform(src, np.array(dst, np.float32))

    def _glare_mask(self) -> np.ndarray | None:
        """A soft bright ellipse over the code's top-left finder pattern, in picture pixels."""
        if self._homography is None:
            return None
        side, (cx, cy) = self._code_side, self._centre
        spot = np.array([[[cx - 0.28 * side, cy - 0.28 * side]]], np.float32)
        px, py = cv2.perspectiveTransform(spot, self._homography)[0, 0]
        radius = 0.3 * side * float(np.sqrt(abs(np.linalg.det(self._homography[:2, :2]))))
        gy, gx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        d2 = ((gx - px) / radius) ** 2 + ((gy - py) / (0.7 * radius)) ** 2
        mask = np.clip(1.6 * np.exp(-d2 / 2.0), 0.0, 1.0)  # a flat, saturated core with soft edges
        return (self._glare_strength * GLARE_WASH * mask).astype(np.float32)

    def render(self) -> np.ndarray:
        with self._lock:
            phone, blur, glare = self._phone, self._blur, self._glare
        frame = self._background.copy()
        if phone is not None:
            image, alpha, box = phone
            under = frame[box].astype(np.float32)
            frame[box] = (under + (image - under) * alpha).astype(np.uint8)
        if glare is not None:
            f = frame.astype(np.float32)
            frame = (f + (255.0 - f) * glare[..., None]).astype(np.uint8)
        if blur > 0:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        return frame


class QrCameraEmulator(StreamingCameraEmulator):
    """A camera in front of which a citizen holds up a phone showing a QR code."""

    def __init__(self, fps: float = 10, width: int = 640, height: int = 480, port: int = 0,
                 text: str = "") -> None:
        check_stream_settings(fps, width, height, port)
        super().__init__(PhoneQrScene(width, height), fps, width, height, port)
        self.scene: PhoneQrScene
        if text:
            self.show(text)

    # -- scripting -----------------------------------------------------------------------------------
    def show(self, text: str, angle: float = 0.0, scale: float = 1.0, tilt: float = 0.0) -> None:
        """A phone showing a QR code of `text` is held up (see the module notes)."""
        self.scene.show(text, float(angle), float(scale), float(tilt))

    def hide(self) -> None:
        """The phone is taken away."""
        self.scene.hide()

    def blur(self, sigma: float = 4.0) -> None:
        """The picture goes out of focus by `sigma` pixels (0: sharp again)."""
        self.scene.blur(float(sigma))

    def glare(self, strength: float = 1.0) -> None:
        """A reflection on the phone's screen (0: none; 1: part of the code washed out)."""
        self.scene.glare(float(strength))

    @property
    def text(self) -> str | None:
        """The text of the code shown now, or None."""
        return self.scene.text

    # -- console -------------------------------------------------------------------------------------
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
            if verb == "show" and args:
                options, text = _show_arguments(line.strip()[len(words[0]):].strip())
                self.show(text, **options)
                return f"a phone shows a code of {len(text)} characters"
            if verb == "hide" and not args:
                self.hide()
                return "the phone is taken away"
            if verb == "blur" and len(args) == 1:
                sigma = 0.0 if args[0].lower() == "off" else float(args[0])
                self.blur(sigma)
                return f"blurred by {sigma:g} pixels" if sigma else "the picture is sharp"
            if verb == "glare" and len(args) <= 1:
                strength = 1.0 if not args else 0.0 if args[0].lower() == "off" else float(args[0])
                self.glare(strength)
                return f"glare {strength:g} on the screen" if strength else "no glare"
            answer = self.stream_command(verb, args)
            if answer is not None:
                return answer
        except (ValueError, TypeError, RuntimeError, OSError) as exc:
            return f"error: {exc}"
        return f"unknown QR camera command {line.strip()!r}; type help"


def _show_arguments(rest: str) -> tuple[dict[str, float], str]:
    """`angle=30 scale=0.8 some text` -> ({"angle": 30, "scale": 0.8}, "some text")."""
    options: dict[str, float] = {}
    while True:
        head, _, tail = rest.partition(" ")
        key, sep, value = head.partition("=")
        if not sep or key not in ("angle", "scale", "tilt"):
            break
        options[key] = float(value)
        rest = tail.strip()
    if not rest:
        raise ValueError("show needs the code's text after the options")
    return options, rest



def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devices.qr_scanner.camera_emulator",
        description="Serve an emulated QR camera (MJPEG over HTTP on 127.0.0.1) filming a phone that shows "
        "a QR code; type commands on standard input (help lists them).",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--text", default="", help="the code shown at start (none: nothing shown)")
    parser.add_argument("--fps", type=float, default=10)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    return run_standalone(lambda: QrCameraEmulator(args.fps, args.width, args.height, args.port, args.text),
                          lambda emu, url: [f"url {url}"],
                          (ValueError, OSError))


if __name__ == "__main__":
    sys.exit(_main())
