"""What the emulated camera sees: a room, a live person, a held-up photo or phone, nothing.

The pictures are built to exercise face verification and its liveness checks, so the
difference between a live face and a picture of one is in the geometry, as it is in
front of a real kiosk:

- a live person moves NON-RIGIDLY: besides small random shifts, turns and breathing of
  the whole head, each of the five facial landmarks drifts on its own and the eyes
  blink now and then. `pose()` turns or nods the head with a local warp: every pixel
  of the face shifts by its depth in front of the head's turning axis times the sine of
  the angle, the depth being a broad dome for the face plus Gaussian bumps for the nose
  and mouth (located once per photo with YuNet). So the nose moves against the eyes and
  mouth while the head's outline stays, as when a real head turns;
- a printed photo or a phone replay is a flat rectangle that only sways RIGIDLY (one
  perspective transform for the whole rectangle), with the cues of its material: a
  white border, faint halftone and a glare patch on paper; a bezel, a bright screen and
  a pixel grid that beats into moire on a phone. It ignores `pose()`: a picture cannot
  turn its head.

Directions are those of the camera's own (unmirrored) picture: a person turning to
their left (yaw > 0) moves the nose towards the right of the image; nodding down
(pitch > 0) moves it down. Measured with YuNet through the MJPEG stream (obama2.jpg):
yaw +-25 moves the nose along the eye line by ~0.1-0.2 eye distances; a nod shows best
in where the nose sits between eyes and mouth (landmarks.Face.nose_split, ~+-0.04-0.1
at +-20 degrees), less reliably in the nose's vertical offset alone.

Everything that does not change per frame (background, cut-out person, photo card,
phone, displacement kernels, sensor noise) is computed once per process and shared
read-only, so a frame costs a remap of the head, one warp per layer and a blend
(~5 ms at 640x480): cheap enough for 15 fps on 2 cores.
"""
from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from devices.camera.landmarks import Face, FaceFinder

REFERENCE_WIDTH = 640  # sizes below are for a 640-pixel-wide frame and scale with it
EYE_DISTANCE = 70.0  # a face ~50 cm from a 60-degree kiosk camera
TRANSITION_S = 0.5  # pose changes and leaving take this long
FACE_DEPTH = 0.7  # depths in front of the turning axis, in eye distances (see PersonSprite)
NOSE_DEPTH = 0.6
MOUTH_DEPTH = 0.2
NOD_GAIN = 1.5  # nods are drawn 1.5 times deeper: YuNet follows vertical nose moves less readily
NOISE_FRAMES = 4
NOISE_SD = 1.2  # sensor noise, grey levels: a covered lens still stays below "uniform" checks


class FacePhotoError(ValueError):
    """A face photo that is missing, unreadable, or has no face YuNet can find."""


@dataclass(frozen=True)
class Pose:
    yaw: float = 0.0  # degrees; + = the person's left (the right of the unmirrored image)
    pitch: float = 0.0  # degrees; + = nodding down
    closer: float = 1.0  # face size relative to the usual distance

    def blend(self, other: "Pose", u: float) -> "Pose":
        return Pose(self.yaw + (other.yaw - self.yaw) * u, self.pitch + (other.pitch - self.pitch) * u,
                    self.closer + (other.closer - self.closer) * u)


def smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


class Wobble:
    """A mean-reverting random walk (Ornstein-Uhlenbeck), one step per frame: natural
    restlessness that never drifts away."""

    def __init__(self, rng: np.random.Generator, sd: float, size: int = 1, keep: float = 0.85) -> None:
        self._rng = rng
        self._keep = keep
        self._step = sd * math.sqrt(1.0 - keep * keep)  # so the stationary spread is `sd`
        self.value = np.zeros(size, dtype=np.float32)

    def step(self) -> np.ndarray:
        self.value = self.value * self._keep + self._rng.normal(0.0, self._step, self.value.shape).astype(np.float32)
        return self.value


# -- static pictures ------------------------------------------------------------------------------
def room_background(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A plain, lit room behind the kiosk's user: wall, window, door, counter. No faces."""
    k = width / REFERENCE_WIDTH
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    wall = np.array([196, 204, 212], np.float32)  # BGR: a warm light grey
    shade = 1.0 - 0.10 * y - 0.06 * (x - 0.5) ** 2 * 4
    img = (wall[None, None, :] * shade[..., None]).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # a window on the left: bright, with a frame and a sash bar
    x0, y0, x1, y1 = int(25 * k), int(40 * k), int(165 * k), int(250 * k)
    cv2.rectangle(img, (x0, y0), (x1, y1), (236, 232, 224), -1)
    cv2.rectangle(img, (x0, y0), (x1, y1), (150, 150, 150), max(1, int(6 * k)))
    cv2.line(img, (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), (150, 150, 150), max(1, int(4 * k)))
    cv2.line(img, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (150, 150, 150), max(1, int(4 * k)))
    # a wooden door on the right
    cv2.rectangle(img, (int(505 * k), int(70 * k)), (int(610 * k), height), (70, 104, 140), -1)
    cv2.rectangle(img, (int(505 * k), int(70 * k)), (int(610 * k), height), (55, 80, 110), max(1, int(5 * k)))
    cv2.circle(img, (int(592 * k), int(300 * k)), max(1, int(5 * k)), (90, 170, 200), -1)
    # a service counter along the bottom, and a notice board
    cv2.rectangle(img, (0, int(410 * k)), (width, height), (120, 128, 136), -1)
    cv2.line(img, (0, int(410 * k)), (width, int(410 * k)), (90, 96, 104), max(1, int(3 * k)))
    cv2.rectangle(img, (int(230 * k), int(30 * k)), (int(300 * k), int(75 * k)), (60, 60, 170), -1)
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 2.0, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    img = np.clip(img.astype(np.float32) + texture[..., None], 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 0.8 * k)


def _noise_bank(width: int, height: int, seed: int = 11) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sensor noise as (add, subtract) uint8 pairs, so applying it is two saturating ops."""
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(NOISE_FRAMES):
        n = np.round(rng.normal(0.0, NOISE_SD, (height, width, 3))).astype(np.int16)
        bank.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
    return bank


def load_photo(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FacePhotoError(f"face photo {path} not found: run scripts/setup.sh to fetch the test faces")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacePhotoError(f"face photo {path} is not an image OpenCV can read")
    return image


def _gaussian(gx: np.ndarray, gy: np.ndarray, centre: tuple[float, float], sigma: float) -> np.ndarray:
    return np.exp(-((gx - centre[0]) ** 2 + (gy - centre[1]) ** 2) / (2.0 * sigma * sigma)).astype(np.float32)


def _scaled_crop(photo: np.ndarray, scale: float, origin: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """The photo scaled by `scale`, cut at `origin` (scaled coordinates) to `size`; edges repeat."""
    scaled = cv2.resize(photo, None, fx=scale, fy=scale,
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    w, h = size
    x0, y0 = int(round(origin[0])), int(round(origin[1]))
    pad = max(0, -x0, -y0, x0 + w - scaled.shape[1], y0 + h - scaled.shape[0])
    if pad:
        scaled = cv2.copyMakeBorder(scaled, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return scaled[y0:y0 + h, x0:x0 + w].copy()


class PersonSprite:
    """A live person cut out of a face photo, with what is needed to move the face.

    Sprite coordinates: the eye midpoint sits at `anchor`; the eye distance is `iod`.
    """

    def __init__(self, photo: np.ndarray, face: Face, iod: float) -> None:
        scale = iod / face.eye_distance
        self.iod = iod
        w, h = int(5.0 * iod), int(7.4 * iod)
        mid = face.eye_mid
        self.anchor = (w / 2.0, 1.9 * iod)
        origin = (mid[0] * scale - self.anchor[0], mid[1] * scale - self.anchor[1])
        self.image = _scaled_crop(photo, scale, origin, (w, h))
        points = face.points() * scale - np.array(origin, np.float32)
        self.points = points
        self.alpha = np.zeros((h, w), np.float32)
        self._cut_out(points)
        # How far each pixel sits in front of the head's turning axis, in eye distances: a
        # broad dome for the face, more for the nose, a little more for the mouth. Turning
        # or nodding shifts each pixel by depth * sin(angle), so the nose moves against the
        # eyes and mouth while the outline stays: what a real head does, seen from in front.
        self._rows = min(h, int(self.anchor[1] + 3.2 * iod))  # the warp fades out above the shoulders
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(self._rows, dtype=np.float32))
        self._gx, self._gy = gx, gy
        centre = (points[2] + (points[0] + points[1]) / 2) / 2
        dome = np.exp(-((gx - centre[0]) ** 2 / (2 * (0.8 * iod) ** 2)
                        + (gy - centre[1]) ** 2 / (2 * (1.1 * iod) ** 2))).astype(np.float32)
        self._depth = (FACE_DEPTH * dome + NOSE_DEPTH * _gaussian(gx, gy, tuple(points[2]), 0.45 * iod)
                       + MOUTH_DEPTH * _gaussian(gx, gy, tuple((points[3] + points[4]) / 2), 0.45 * iod)) * iod
        self._marks = np.stack([_gaussian(gx, gy, tuple(p), 0.22 * iod) for p in points])
        lid = np.array([0.0, -0.04 * iod], np.float32)  # blink: skin above each eye slides down
        self._lids = _gaussian(gx, gy, tuple(points[0] + lid), 0.14 * iod) + \
            _gaussian(gx, gy, tuple(points[1] + lid), 0.14 * iod)

    def _cut_out(self, points: np.ndarray) -> None:
        """Head from the photo (GrabCut within an ellipse), on a drawn neck and suit.

        The photo's own shoulders are often cut off or lost against a dark background, and
        its background would show around them, so the body is drawn; the head blends into it.
        """
        iod, (h, w) = self.iod, self.image.shape[:2]
        eyes = (points[0] + points[1]) / 2
        roll = math.degrees(math.atan2(points[1][1] - points[0][1], points[1][0] - points[0][0]))
        guess = np.zeros((h, w), np.uint8)
        # a face turned aside has the back of its head on the other side of the eyes
        centre = (int(eyes[0] - 0.8 * (points[2][0] - eyes[0])), int(eyes[1] + 0.25 * iod))
        cv2.ellipse(guess, centre, (int(1.38 * iod), int(2.0 * iod)), roll, 0, 360, 255, -1)
        mask = np.where(guess > 0, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
        core = np.zeros_like(guess)
        cv2.ellipse(core, (int(points[2][0]), int(points[2][1])), (int(0.85 * iod), int(1.05 * iod)), roll,
                    0, 360, 255, -1)
        mask[core > 0] = cv2.GC_FGD
        try:
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(self.image, mask, (0, 0, 0, 0), bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
            head: np.ndarray = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
            head = cv2.morphologyEx(head, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
            head = cv2.morphologyEx(head, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
            _, labels = cv2.connectedComponents(head)  # the piece with the nose; stray bits go
            nose = labels[min(h - 1, max(0, int(points[2][1]))), min(w - 1, max(0, int(points[2][0])))]
            head = np.where(labels == nose, 255, 0).astype(np.uint8) if nose else guess
            if cv2.countNonZero(head) < 0.4 * cv2.countNonZero(guess):  # GrabCut lost the head
                head = guess
        except cv2.error:
            head = guess
        head_alpha = cv2.GaussianBlur(head.astype(np.float32) / 255.0, (0, 0), 0.04 * iod)

        skin = np.median(self.image[core > 0], axis=0) * 0.85
        body = np.zeros_like(self.image)
        body_mask = np.zeros((h, w), np.uint8)
        cx, ey = float(eyes[0]), float(eyes[1])

        def poly(pts: list[tuple[float, float]], colour: tuple[float, ...]) -> None:
            arr = np.array([[cx + dx * iod, ey + dy * iod] for dx, dy in pts], np.int32)
            cv2.fillPoly(body, [arr], colour)
            cv2.fillPoly(body_mask, [arr], 255)

        poly([(-0.55, 1.2), (0.55, 1.2), (0.6, 2.6), (-0.6, 2.6)], tuple(float(c) for c in skin))  # neck
        poly([(-0.75, 2.2), (-2.1, 2.65), (-2.6, 3.4), (-2.7, 6.0), (2.7, 6.0), (2.6, 3.4), (2.1, 2.65),
              (0.75, 2.2), (0.0, 3.9)], (52, 42, 38))  # a dark suit
        poly([(-0.62, 2.15), (0.62, 2.15), (0.0, 3.6)], (232, 236, 238))  # shirt
        poly([(-0.14, 2.35), (0.14, 2.35), (0.2, 3.3), (0.0, 3.55), (-0.2, 3.3)], (40, 40, 130))  # tie
        body_alpha = cv2.GaussianBlur(body_mask.astype(np.float32) / 255.0, (0, 0), 0.03 * iod)
        a = head_alpha[..., None]
        self.image = (self.image * a + body * (1.0 - a)).astype(np.uint8)
        self.alpha = np.maximum(head_alpha, body_alpha)

    def render(self, pose: Pose, marks: np.ndarray, blink: float) -> np.ndarray:
        """The sprite with the face warped: pose (nose and mouth shift), landmark jitter
        (10 values: dx, dy per landmark, pixels) and blink (0 open .. 1 closed)."""
        iod = self.iod
        sy, sp = math.sin(math.radians(pose.yaw)), math.sin(math.radians(pose.pitch))
        dx = self._depth * sy
        dy = self._depth * (sp * NOD_GAIN)
        jitter = marks.reshape(5, 2)
        dx += np.tensordot(jitter[:, 0], self._marks, 1)
        dy += np.tensordot(jitter[:, 1], self._marks, 1)
        if blink > 0:
            dy += self._lids * (0.17 * iod * blink)
        out = self.image.copy()  # output(p) = input(p - d): the content moves by d
        out[:self._rows] = cv2.remap(self.image, self._gx - dx, self._gy - dy, cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        return out


def _halftone(h: int, w: int, period: float = 3.1, angle: float = 15.0, depth: float = 0.07) -> np.ndarray:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(angle)
    u = gx * math.cos(a) + gy * math.sin(a)
    v = -gx * math.sin(a) + gy * math.cos(a)
    dots = 0.5 + 0.5 * np.cos(2 * math.pi * u / period) * np.cos(2 * math.pi * v / period)
    return (1.0 - depth * dots).astype(np.float32)


def _glare(h: int, w: int, centre: tuple[float, float], axes: tuple[float, float], strength: float) -> np.ndarray:
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(-30)
    dx, dy = gx - centre[0], gy - centre[1]
    u = dx * math.cos(a) + dy * math.sin(a)
    v = -dx * math.sin(a) + dy * math.cos(a)
    return (strength * np.exp(-(u / axes[0]) ** 2 / 2 - (v / axes[1]) ** 2 / 2)).astype(np.float32)


def _portrait(photo: np.ndarray, face: Face, iod: float, size: tuple[int, int], eyes_at: float) -> np.ndarray:
    """A passport-style crop of the face photo, `size` (w, h), eyes `eyes_at` of the height down."""
    scale = iod / face.eye_distance
    w, h = size
    mid = face.eye_mid
    return _scaled_crop(photo, scale, (mid[0] * scale - w / 2, mid[1] * scale - eyes_at * h), (w, h))


@dataclass
class Card:
    """A flat, rigid picture held up to the camera: image and alpha with the same size."""

    image: np.ndarray
    alpha: np.ndarray


def printed_photo(photo: np.ndarray, face: Face, k: float) -> Card:
    """A glossy print: white border, halftone dots, a glare patch."""
    iod = 0.85 * EYE_DISTANCE * k
    w, h = int(3.0 * iod), int(3.8 * iod)
    content = _portrait(photo, face, iod, (w, h), 0.42).astype(np.float32)
    content *= _halftone(h, w)[..., None]
    border = max(4, int(0.16 * iod))
    card: np.ndarray = np.full((h + 2 * border, w + 2 * border, 3), 242.0, np.float32)
    card[border:border + h, border:border + w] = content
    ch, cw = card.shape[:2]
    glare = _glare(ch, cw, (0.72 * cw, 0.26 * ch), (0.22 * cw, 0.09 * ch), 0.55)[..., None]
    card = card * (1.0 - glare) + 255.0 * glare
    return Card(np.clip(card, 0, 255).astype(np.uint8), np.ones((ch, cw), np.float32))


def phone_screen(photo: np.ndarray, face: Face, k: float) -> Card:
    """A phone replaying the face: dark bezel, bright bluish screen, visible pixel grid."""
    iod = 0.7 * EYE_DISTANCE * k
    sw, sh = int(3.4 * iod), int(6.0 * iod)
    content = _portrait(photo, face, iod, (sw, sh), 0.36).astype(np.float32)
    content = content * 0.82 + 62.0  # a backlit screen: brighter, flatter contrast
    content[..., 0] += 10.0  # and bluish
    grid = np.ones((sh, sw), np.float32)
    grid[::3, :] *= 0.85
    grid[:, ::3] *= 0.85
    content *= grid[..., None]
    content += _glare(sh, sw, (0.3 * sw, 0.25 * sh), (0.5 * sw, 0.08 * sh), 24.0)[..., None]
    side, top = max(3, int(0.1 * iod)), max(6, int(0.3 * iod))
    ph, pw = sh + 2 * top, sw + 2 * side
    card = np.full((ph, pw, 3), (22, 20, 20), np.float32)
    card[top:top + sh, side:side + sw] = content
    cv2.circle(card, (pw // 2, top // 2), max(1, top // 6), (45, 45, 45), -1)  # front camera
    alpha = np.zeros((ph, pw), np.uint8)
    r = max(4, int(0.25 * iod))
    cv2.rectangle(alpha, (r, 0), (pw - 1 - r, ph - 1), 255, -1)
    cv2.rectangle(alpha, (0, r), (pw - 1, ph - 1 - r), 255, -1)
    for cx, cy in ((r, r), (pw - 1 - r, r), (r, ph - 1 - r), (pw - 1 - r, ph - 1 - r)):
        cv2.circle(alpha, (cx, cy), r, 255, -1)
    return Card(np.clip(card, 0, 255).astype(np.uint8), alpha.astype(np.float32) / 255.0)


# -- layers -----------------------------------------------------------------------------------------
def _paste(frame: np.ndarray, image: np.ndarray, alpha: np.ndarray, matrix: np.ndarray) -> None:
    """Warp `image` (with `alpha`) by a 2x3 or 3x3 matrix and blend it into `frame` in place,
    touching only the bounding box of where it lands."""
    h, w = image.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32).reshape(-1, 1, 2)
    full = matrix if matrix.shape == (3, 3) else np.vstack([matrix, [0, 0, 1]]).astype(np.float64)
    landed = cv2.perspectiveTransform(corners, full).reshape(-1, 2)
    fh, fw = frame.shape[:2]
    x0, y0 = max(0, int(math.floor(landed[:, 0].min()))), max(0, int(math.floor(landed[:, 1].min())))
    x1, y1 = min(fw, int(math.ceil(landed[:, 0].max())) + 1), min(fh, int(math.ceil(landed[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64) @ full
    size = (x1 - x0, y1 - y0)
    if matrix.shape == (3, 3):
        warped = cv2.warpPerspective(image, shift, size, flags=cv2.INTER_LINEAR)
        weight = cv2.warpPerspective(alpha, shift, size, flags=cv2.INTER_LINEAR)
    else:
        warped = cv2.warpAffine(image, shift[:2], size, flags=cv2.INTER_LINEAR)
        weight = cv2.warpAffine(alpha, shift[:2], size, flags=cv2.INTER_LINEAR)
    roi = frame[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(warped, roi, weight, 1.0 - weight)


class LivePerson:
    """One person in front of the camera, with their own restlessness and blinks."""

    def __init__(self, sprite: PersonSprite, place: tuple[float, float], size: float,
                 rng: np.random.Generator, now: float) -> None:
        self.sprite = sprite
        self.place = place  # where the eye midpoint goes in the frame
        self.size = size  # frame pixels per sprite pixel at closer=1
        self._rng = rng
        self._shift = Wobble(rng, 1.6, 2)
        self._turn = Wobble(rng, 0.6)
        self._zoom = Wobble(rng, 0.006)
        self._marks = Wobble(rng, 0.7, 10, keep=0.8)
        self._phase = float(rng.uniform(0, 2 * math.pi))
        self._next_blink = now + float(rng.uniform(1.5, 4.0))

    def draw(self, frame: np.ndarray, pose: Pose, now: float, offset_x: float = 0.0) -> None:
        blink = 0.0
        if now >= self._next_blink:
            u = (now - self._next_blink) / 0.16
            if u >= 1.0:
                self._next_blink = now + float(self._rng.uniform(2.5, 6.0))
            else:
                blink = math.sin(math.pi * u)
        image = self.sprite.render(pose, self._marks.step(), blink)
        shift, turn, zoom = self._shift.step(), float(self._turn.step()[0]), float(self._zoom.step()[0])
        breathe = 1.3 * math.sin(2 * math.pi * 0.25 * now + self._phase)
        scale = self.size * pose.closer * (1.0 + zoom)
        a = math.radians(turn)
        sx = scale * math.cos(math.radians(pose.yaw))  # a turned face looks narrower
        sy = scale * math.cos(math.radians(pose.pitch))
        ax, ay = self.sprite.anchor
        rot = np.array([[math.cos(a) * sx, -math.sin(a) * sy], [math.sin(a) * sx, math.cos(a) * sy]])
        tx = self.place[0] + offset_x + float(shift[0])
        ty = self.place[1] + float(shift[1]) + breathe
        trans = np.array([tx, ty]) - rot @ np.array([ax, ay])
        _paste(frame, image, self.sprite.alpha, np.hstack([rot, trans[:, None]]))


class HeldCard:
    """A photo or phone held up: rigid sway and hand tremor, one homography per frame."""

    def __init__(self, card: Card, place: tuple[float, float], rng: np.random.Generator) -> None:
        self.card = card
        self.place = place
        self._tremor = Wobble(rng, 0.5, 3)
        self._phase = float(rng.uniform(0, 2 * math.pi))

    def draw(self, frame: np.ndarray, now: float) -> None:
        h, w = self.card.image.shape[:2]
        t, p = now, self._phase
        tremor = self._tremor.step()
        # Mostly turning and leaning, little sliding: YuNet's landmarks jump by several
        # pixels when a face slides a few pixels over its detection grid, and a picture
        # that slides a lot would look to a liveness check like a head that moves.
        angle = math.radians(3.0 * math.sin(2 * math.pi * 0.31 * t + p) + float(tremor[2]))
        keystone = 0.03 * math.sin(2 * math.pi * 0.23 * t + 2 * p)  # the top leans in or out
        dx = 2.0 * math.sin(2 * math.pi * 0.19 * t + p) + float(tremor[0])
        dy = 1.5 * math.sin(2 * math.pi * 0.27 * t + 3 * p) + float(tremor[1])
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        local = src - np.array([w / 2, h / 2], np.float32)
        local[:2, 0] *= 1.0 + keystone
        local[2:, 0] *= 1.0 - keystone
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], np.float32)
        dst = local @ rot.T + np.array([self.place[0] + dx, self.place[1] + dy], np.float32)
        _paste(frame, self.card.image, self.card.alpha, cv2.getPerspectiveTransform(src, dst))


# -- shared, read-only building blocks ------------------------------------------------------------
# Built once per process: several emulators (or tests) showing the same faces share them.
_finder_lock = threading.Lock()
_finder: FaceFinder | None = None


def _read_only(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.flags.writeable = False


@functools.lru_cache(maxsize=4)
def _backdrop(width: int, height: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    background, noise = room_background(width, height), _noise_bank(width, height)
    _read_only(background, *(n for pair in noise for n in pair))
    return background, noise


@functools.lru_cache(maxsize=16)
def _face_photo(key: tuple[str, int]) -> tuple[np.ndarray, Face]:
    """A face photo and its most confident face (key: path and modification time)."""
    global _finder
    path = Path(key[0])
    photo = load_photo(path)
    with _finder_lock:
        if _finder is None:
            _finder = FaceFinder(score_threshold=0.6)
        finder = _finder
    found = finder.find(photo)
    if not found:
        raise FacePhotoError(f"no face found in {path}")
    _read_only(photo)
    return photo, found[0]


@functools.lru_cache(maxsize=16)
def _person_sprite(key: tuple[str, int], iod: float) -> PersonSprite:
    sprite = PersonSprite(*_face_photo(key), iod)
    _read_only(sprite.image, sprite.alpha)
    return sprite


@functools.lru_cache(maxsize=32)
def _held_card(key: tuple[str, int], kind: str, k: float) -> Card:
    make = printed_photo if kind == "photo" else phone_screen
    card = make(*_face_photo(key), k)
    _read_only(card.image, card.alpha)
    return card


# -- the scene ---------------------------------------------------------------------------------------
SCENES = ("person", "none", "two", "leaving", "photo", "screen", "cover")


class Scene:
    """The emulated camera's view, changed by the scripting calls and drawn per frame.

    Thread-safe: scripting calls come from tests or a console while the emulator's
    frame thread calls `render`.
    """

    def __init__(self, faces_dir: Path, person: str, width: int, height: int, seed: int | None = None) -> None:
        self.faces_dir = faces_dir
        self.width, self.height = width, height
        self._k = width / REFERENCE_WIDTH
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._background, self._noise = _backdrop(width, height)
        self._frame_no = 0
        self.kind = "person"
        self.person_name = person
        self._actors: list[LivePerson] = []
        self._card: HeldCard | None = None
        self._pose_from = self._pose_to = Pose()
        self._pose_at = 0.0
        self._leave_at = 0.0
        self.person(person)

    # -- face photos -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Face photos that can be used (file names in faces_dir)."""
        return sorted(p.name for p in self.faces_dir.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    def _path(self, name: str) -> tuple[str, int]:
        """The cache key of a face photo: its path and modification time."""
        if not name or Path(name).name != name:
            raise FacePhotoError(f"face photo {name!r}: give a file name in {self.faces_dir}")
        path = self.faces_dir / name
        if not path.is_file():
            known = self.names()
            if known:
                raise FacePhotoError(f"no face photo {name!r} in {self.faces_dir}; there are: {', '.join(known)}")
            raise FacePhotoError(f"face photo {path} not found: run scripts/setup.sh to fetch the test faces")
        return str(path), path.stat().st_mtime_ns

    def _sprite(self, name: str) -> PersonSprite:
        return _person_sprite(self._path(name), EYE_DISTANCE * self._k)

    def _picture(self, kind: str, name: str) -> Card:
        return _held_card(self._path(name), kind, self._k)

    # -- scripting -----------------------------------------------------------------------------------
    def person(self, name: str | None = None) -> None:
        """A cooperative live person, facing the camera."""
        name = name or self.person_name
        sprite = self._sprite(name)
        now = time.monotonic()
        with self._lock:
            self.person_name = name
            self._actors = [LivePerson(sprite, (self.width / 2, 0.42 * self.height), 1.0, self._rng, now)]
            self._pose_from = self._pose_to = Pose()
            self.kind = "person"

    def two(self, other: str) -> None:
        """The person and someone else, side by side."""
        first, second = self._sprite(self.person_name), self._sprite(other)
        now = time.monotonic()
        with self._lock:
            self._actors = [
                LivePerson(first, (0.33 * self.width, 0.43 * self.height), 0.8, self._rng, now),
                LivePerson(second, (0.69 * self.width, 0.40 * self.height), 0.8, self._rng, now),
            ]
            self.kind = "two"

    def none(self) -> None:
        with self._lock:
            self.kind = "none"

    def cover(self) -> None:
        """Something covers the lens: a uniform dark picture (sensor noise only)."""
        with self._lock:
            self.kind = "cover"

    def leave(self) -> None:
        """Whoever is there walks out of the picture, then no one is there."""
        with self._lock:
            if self.kind in ("person", "two"):
                self.kind = "leaving"
                self._leave_at = time.monotonic()
            elif self.kind != "leaving":
                self.kind = "none"

    def pose(self, yaw: float, pitch: float, closer: float) -> None:
        """Turn/nod/approach smoothly; only a live person follows (pictures ignore it)."""
        if not 0.3 <= closer <= 3.0:
            raise ValueError(f"closer={closer}: a face size factor between 0.3 and 3")
        now = time.monotonic()
        with self._lock:
            self._pose_from = self._current_pose(now)
            self._pose_to = Pose(float(yaw), float(pitch), float(closer))
            self._pose_at = now

    def hold(self, kind: str, name: str | None = None) -> None:
        """A printed photo ("photo") or a phone replay ("screen") of a face held up."""
        if kind not in ("photo", "screen"):
            raise ValueError(f"hold {kind!r}: a 'photo' or a 'screen'")
        card = self._picture(kind, name or self.person_name)
        with self._lock:
            self._card = HeldCard(card, (self.width / 2, 0.47 * self.height), self._rng)
            self.kind = kind

    def current_pose(self) -> Pose:
        with self._lock:
            return self._current_pose(time.monotonic())

    def _current_pose(self, now: float) -> Pose:
        return self._pose_from.blend(self._pose_to, smoothstep((now - self._pose_at) / TRANSITION_S))

    # -- drawing ---------------------------------------------------------------------------------------
    def render(self, now: float | None = None) -> np.ndarray:
        """One BGR frame of the scene as it is now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            kind = self.kind
            if kind == "leaving" and now - self._leave_at >= TRANSITION_S:
                kind = self.kind = "none"
            if kind == "cover":
                frame = np.full((self.height, self.width, 3), 18, np.uint8)
            else:
                frame = self._background.copy()
            if kind in ("person", "two", "leaving"):
                pose = self._current_pose(now)
                offset = smoothstep((now - self._leave_at) / TRANSITION_S) * 0.95 * self.width \
                    if kind == "leaving" else 0.0
                for i, actor in enumerate(self._actors):
                    # only the main person follows pose(); the second one just stands there
                    actor.draw(frame, pose if i == 0 else Pose(), now, offset)
            elif kind in ("photo", "screen") and self._card is not None:
                self._card.draw(frame, now)
            add, sub = self._noise[self._frame_no % NOISE_FRAMES]
            self._frame_no += 1
        cv2.add(frame, add, dst=frame)
        cv2.subtract(frame, sub, dst=frame)
        return frame
