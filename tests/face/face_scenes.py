"""Camera frames and card photos made from the test face photos, for the face tests and bench.

Nothing here is a test. The photos come from scripts/setup.sh (var/testdata/faces) and are
never committed. What is synthesised:

- camera frames: a photo scaled and framed like a 640x480 kiosk camera sees a citizen;
- card photos: the face region at 102x126, JPEG-compressed to about 1 KB (the emulated ID
  card squeezes a portrait into its 1024-byte photo block the same way);
- a live-like citizen (`LiveActor`): every frame gets small non-rigid jitter around the
  landmarks, a small head sway and sensor noise; a head turn or nod is imitated by pushing
  the nose region sideways or down with cv2.remap (a flat photo cannot do that);
- a held-up photo (`PhotoAttack`): one still frame of the person moved as a flat object
  (rotation, scale, shift, perspective tilt) plus sensor noise;
- spoof traces: a moire grid, glare, darkness, blur, a second person.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.face.detect import Face, detect

ROOT = Path(__file__).resolve().parents[2]
FACES_DIR = ROOT / "var" / "testdata" / "faces"
PERSON_A = ("obama", "obama2", "obama3", "obama_partial_face", "obama_partial_face2")
PERSON_B = ("biden",)
PERSON_C = ("astronaut",)
PHOTOS = PERSON_A + PERSON_B + PERSON_C
# Photos of person A that are distinct shots (the two partial faces are crops of "obama").
DISTINCT_A = ("obama", "obama2", "obama3")
FRAME_SIZE = (640, 480)
CARD_SIZE = (102, 126)
CARD_BLOCK_ROOM = 1018  # the 1024-byte photo block less the emulator's 6-byte header


class MissingFaces(RuntimeError):
    pass


def person_of(name: str) -> str:
    return "A" if name in PERSON_A else "B" if name in PERSON_B else "C"


def load_photo(name: str) -> np.ndarray:
    """A test photo (BGR); a clear failure if the set-up script has not fetched them."""
    matches = sorted(FACES_DIR.glob(f"{name}.*"))
    image = cv2.imread(str(matches[0])) if matches else None
    if image is None:
        raise MissingFaces(f"test face photo {name!r} not found in {FACES_DIR}: run scripts/setup.sh")
    return image


def main_face(image: np.ndarray) -> Face:
    faces = detect(image)
    if not faces:
        raise AssertionError("no face in a test image that should show one")
    return faces[0]


def camera_frame(photo: np.ndarray, face_width: float = 0.32, offset: tuple[float, float] = (0.0, 0.0),
                 size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """The photo framed like the kiosk camera: face box `face_width` of the frame width,
    centred (plus `offset` as fractions of the frame), background continued at the edges."""
    face = main_face(photo)
    x, y, w, h = face.box
    scale = face_width * size[0] / w
    cx, cy = x + w / 2, y + h / 2
    matrix = np.float32([[scale, 0, size[0] / 2 - scale * cx + offset[0] * size[0]],
                         [0, scale, size[1] / 2 - scale * cy + offset[1] * size[1]]])
    return cv2.warpAffine(photo, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def card_portrait(photo: np.ndarray) -> np.ndarray:
    """The ID-card framing (head and shoulders, 102x126), as the emulator cuts it."""
    face = main_face(photo)
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    crop_w = 1.9 * w
    crop_h = crop_w * CARD_SIZE[1] / CARD_SIZE[0]
    s = CARD_SIZE[0] / crop_w
    matrix = np.float32([[s, 0, -s * (cx - crop_w / 2)], [0, s, -s * (cy - crop_h * 0.45)]])
    return cv2.warpAffine(photo, matrix, CARD_SIZE, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def card_photo_jpeg(photo: np.ndarray, room: int = CARD_BLOCK_ROOM) -> bytes:
    """The card portrait as the largest-quality JPEG that fits `room` bytes (about 1 KB:
    JPEG quality 9-11 for these photos, optimised Huffman tables)."""
    small = card_portrait(photo)
    for quality in range(60, 0, -1):
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
        if ok and len(data) <= room:
            return data.tobytes()
    raise AssertionError("card portrait does not fit the photo block")


def card_photo_bmp(photo: np.ndarray) -> bytes:
    """The ~1 KB JPEG card photo decoded and handed over as BMP, as the card reader does."""
    decoded = cv2.imdecode(np.frombuffer(card_photo_jpeg(photo), np.uint8), cv2.IMREAD_COLOR)
    ok, bmp = cv2.imencode(".bmp", decoded)
    assert ok
    return bmp.tobytes()


# -- image effects ---------------------------------------------------------------------------------
def add_noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _grid(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def push(image: np.ndarray, centre: np.ndarray, radius: float, dx: float, dy: float) -> np.ndarray:
    """Move the content around `centre` by (dx, dy), fading out with a Gaussian of `radius`."""
    xs, ys = _grid(image)
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * radius ** 2)).astype(np.float32)
    return cv2.remap(image, xs - np.float32(dx) * g, ys - np.float32(dy) * g, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def moire_overlay(image: np.ndarray, period: float = 5.0, angle_deg: float = 20.0, amplitude: float = 0.12) -> np.ndarray:
    """A periodic grid like a re-filmed screen's: brightness modulated by a fine grating."""
    xs, ys = _grid(image)
    t = math.radians(angle_deg)
    wave = 1 + amplitude * np.sin(2 * np.pi * (xs * math.cos(t) + ys * math.sin(t)) / period)
    return np.clip(image * wave[..., None], 0, 255).astype(np.uint8)


def glare_overlay(image: np.ndarray, face: Face, radius: float = 0.35) -> np.ndarray:
    """A broad white reflection over the upper face, like glossy photo paper under a lamp."""
    xs, ys = _grid(image)
    x, y, w, h = face.box
    g = np.exp(-((xs - x - 0.35 * w) ** 2 + (ys - y - 0.35 * h) ** 2) / (2 * (radius * w) ** 2))
    return np.clip(image + (g * 400)[..., None], 0, 255).astype(np.uint8)


def darken(image: np.ndarray, factor: float = 0.18) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def blur(image: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def side_by_side(left: np.ndarray, right: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Two people in one frame: each photo framed at half width, placed next to each other."""
    half = (size[0] // 2, size[1])
    return np.hstack([camera_frame(left, 0.45, size=half), camera_frame(right, 0.45, size=half)])


# -- moving scenes -----------------------------------------------------------------------------------
@dataclass
class Pose:
    """A pose to imitate: turn and nod as fractions of a full movement (-1..1), scale >= 1."""

    turn: float = 0.0  # + moves the nose towards the image's right
    nod: float = 0.0  # + moves the nose down
    scale: float = 1.0


class LiveActor:
    """A live-like citizen made from one photo: jittering landmarks, small sway, sensor noise,
    and head movements imitated by pushing the nose region (what a flat photo cannot do)."""

    PUSH = 0.9  # nose displacement of a full movement, in eye distances
    PUSH_RADIUS = 0.6  # extent of the pushed region, in eye distances

    def __init__(self, photo: np.ndarray, seed: int = 1, face_width: float = 0.32, jitter_px: float = 0.8) -> None:
        self.base = camera_frame(photo, face_width)
        self.face = main_face(self.base)
        self.rng = np.random.default_rng(seed)
        self.jitter_px = jitter_px

    def frame(self, pose: Pose | None = None) -> np.ndarray:
        pose = pose or Pose()
        image = self.base
        d = self.face.inter_ocular
        if pose.turn or pose.nod:
            image = push(image, self.face.landmarks[2], self.PUSH_RADIUS * d,
                         pose.turn * self.PUSH * d, pose.nod * self.PUSH * d)
        image = self._jitter(image)
        if pose.scale != 1.0:
            cx, cy = self.face.centre
            matrix = cv2.getRotationMatrix2D((cx, cy), 0.0, pose.scale)
            image = cv2.warpAffine(image, matrix, FRAME_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return add_noise(image, self.rng)

    def _jitter(self, image: np.ndarray) -> np.ndarray:
        """Small independent moves of eyes, nose and mouth corners, plus a slight sway."""
        xs, ys = _grid(image)
        d = self.face.inter_ocular
        mx = np.zeros_like(xs)
        my = np.zeros_like(ys)
        for point in self.face.landmarks:
            g = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * (0.18 * d) ** 2)).astype(np.float32)
            jx, jy = self.rng.normal(0, self.jitter_px, 2).astype(np.float32)
            mx += jx * g
            my += jy * g
        sway = self.rng.normal(0, 1.0, 2).astype(np.float32)
        return cv2.remap(image, xs - mx - sway[0], ys - my - sway[1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def movement(kind: str, mirrored: bool, phase: float) -> Pose:
    """The pose `phase` (0..1) of the way through performing challenge `kind`: out to the
    full movement by 0.5, back by 1.0. A turn to the citizen's left moves the nose to the
    image's right in an unmirrored frame, to the left in a mirrored one."""
    amount = math.sin(math.pi * min(max(phase, 0.0), 1.0))
    if kind in ("turn_left", "turn_right"):
        towards_right = (kind == "turn_left") != mirrored
        return Pose(turn=amount if towards_right else -amount)
    if kind == "nod":
        return Pose(nod=amount)
    if kind == "closer":
        return Pose(scale=1.0 + 0.45 * min(1.0, 2 * phase))
    raise ValueError(kind)


class PhotoAttack:
    """A held-up photo: one still camera frame of the person, moved as a flat object.

    The hand wanders smoothly (each parameter a sum of two sines of random frequency
    0.2-1.2 Hz and phase): rotation up to 6 degrees, scale up to 5 %, shift up to 25 px,
    perspective tilt up to about 10 degrees; `zoom` brings the whole photo closer. Plus
    sensor noise. No such movement changes the nose's place in the face's own frame."""

    def __init__(self, photo: np.ndarray, seed: int = 2, face_width: float = 0.32, fps: float = 15.0) -> None:
        self.still = camera_frame(photo, face_width)
        self.rng = np.random.default_rng(seed)
        self.fps = fps
        self.count = 0
        # per parameter: two (frequency Hz, phase) pairs
        self._waves = self.rng.uniform([0.2, 0.0], [1.2, 2 * math.pi], size=(6, 2, 2))

    def _wave(self, i: int, t: float) -> float:
        return float(sum(math.sin(2 * math.pi * f * t + ph) for f, ph in self._waves[i]) / 2)

    def frame(self, zoom: float = 1.0) -> np.ndarray:
        t = self.count / self.fps
        self.count += 1
        w, h = FRAME_SIZE
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 6 * self._wave(0, t), zoom * (1 + 0.05 * self._wave(1, t)))
        matrix[:, 2] += (25 * self._wave(2, t), 25 * self._wave(3, t))
        tilt = np.float32([[1, 0, 0], [0, 1, 0], [3e-4 * self._wave(4, t), 3e-4 * self._wave(5, t), 1]])
        centre = np.float32([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
        back = np.float32([[1, 0, w / 2], [0, 1, h / 2], [0, 0, 1]])
        homography = back @ tilt @ centre @ np.vstack([matrix, [0, 0, 1]]).astype(np.float32)
        moved = cv2.warpPerspective(self.still, homography, FRAME_SIZE, borderMode=cv2.BORDER_REPLICATE)
        return add_noise(moved, self.rng)


class CooperativeUser:
    """A citizen who does what the screen says, in simulated time, for the verifier.

    Shows a frontal face; when a challenge prompt appears, waits `reaction_s`, performs the
    movement over `movement_s` (out and back), then looks straight again."""

    def __init__(self, photo: np.ndarray, mirrored: bool = True, seed: int = 3,
                 reaction_s: float = 0.5, movement_s: float = 1.4) -> None:
        self.actor = LiveActor(photo, seed=seed)
        self.mirrored = mirrored
        self.reaction_s = reaction_s
        self.movement_s = movement_s
        self._prompt: str | None = None
        self._prompt_at = 0.0

    def frame(self, prompt: str | None, now: float) -> np.ndarray:
        """The next frame, given the key on the screen now (a challenge prompt or anything)."""
        if prompt != self._prompt:
            self._prompt, self._prompt_at = prompt, now
        if prompt and prompt.startswith("face.challenge."):
            kind = prompt.rsplit(".", 1)[1]
            phase = (now - self._prompt_at - self.reaction_s) / self.movement_s
            if 0.0 <= phase <= 1.0:
                return self.actor.frame(movement(kind, self.mirrored, phase))
        return self.actor.frame()


# -- landmarks of a 3D head, for judging movements YuNet is not shown in pictures -------------------------
# Five landmarks of an average head in eye distances: x to the image's right, y down, z towards
# the camera, origin between the eyes. The nose tip stands about half an eye distance in front of
# the eyes, the mouth corners a little (anthropometric averages: nose projection ~3 cm, eye distance
# ~6.3 cm, eyes to mouth ~7 cm).
HEAD_MODEL = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.62, 0.45], [-0.4, 1.12, 0.12], [0.4, 1.12, 0.12]])
FLAT_MODEL = HEAD_MODEL * np.array([1.0, 1.0, 0.0])  # the same face printed on paper


def projected_landmarks(model: np.ndarray, yaw_deg: float = 0.0, pitch_deg: float = 0.0, scale: float = 1.0,
                        eye_distance_px: float = 100.0, centre: tuple[float, float] = (320.0, 220.0),
                        distance: float = 8.0, noise_px: float = 0.0,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """YuNet-ordered 5x2 pixel landmarks of `model` turned by yaw (+ = towards the image's
    right), nodded by pitch (+ = down) and brought `scale` times closer, seen by a pinhole
    camera `distance` eye distances away, plus Gaussian detector noise."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    nod = np.array([[1, 0, 0], [0, math.cos(b), math.sin(b)], [0, -math.sin(b), math.cos(b)]])
    points = model @ (nod @ turn).T
    depth = distance / scale - points[:, 2]
    projected = points[:, :2] * (distance / depth)[:, None] * scale * eye_distance_px + np.array(centre)
    if noise_px and rng is not None:
        projected = projected + rng.normal(0, noise_px, projected.shape)
    return projected.astype(np.float32)
