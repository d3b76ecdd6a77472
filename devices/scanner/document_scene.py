"""What the emulated document camera (高拍仪) sees: its base, and a sheet of A4 laid on it.

The test documents are drawn with PIL and the WenQuanYi font: a form-like page with a
title, lines of text, a ruled table and a red seal, or a text-only notice. They hold NO
real personal data (every "person" is 测试样例, every number zeros). A solid black
square is printed in the top-left corner of each document, inside the margin, so a test
can tell an upright page from a turned one without reading it.

The sheet is placed on a dark base mat in perspective: turned in the picture (`angle`,
degrees clockwise), seen from a camera leaning over it (`tilt`: the far edge looks
narrower), at a position and size. States, each rendered ONCE when it is set and
then served as is (a 1600x1200 frame costs ~30-60 ms to make; a 2-core terminal
cannot afford that per frame):

- place(document, angle, tilt, x, y, size): a sharp, well-lit, steady page;
- remove(): the empty base;
- blur(), dark(), glare(): out of focus, a dim room, a lamp reflected on glossy paper;
- cut_off(): the page pushed partly out of the picture;
- hand_moving(): the page is being moved: a loop of pre-rendered positions, with
  motion blur, served one after the other.

`corners` is where the page's corners truly are in the picture (top-left, top-right,
bottom-right, bottom-left of the page), for tests to compare with what was detected.
Frames exist in memory only.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
A4_MM = (210.0, 297.0)
DOC_DPI = 150  # test documents are drawn at 150 dpi: 1240 x 1754 pixels
MARKER_MM = (15.0, 15.0, 12.0)  # the corner marker: left, top, side, millimetres
PAPER = (246, 248, 250)  # BGR, slightly bluish white
MOVING_FRAMES = 6
NOISE_SD = 2.0  # sensor noise, grey levels
BLUR_SIGMA = 4.0  # defocus of blur(), pixels at 1600 wide

DOCUMENTS = ("form", "notice")


class DocumentSceneError(ValueError):
    """A scene request that cannot be drawn (unknown document, font missing, bad numbers)."""


def _mm(value: float) -> int:
    return int(round(value / 25.4 * DOC_DPI))


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT_PATH.is_file():
        raise DocumentSceneError(f"font {FONT_PATH} missing: install the Debian package fonts-wqy-microhei")
    return ImageFont.truetype(str(FONT_PATH), size)


def _centred(draw: ImageDraw.ImageDraw, y: int, text: str, size: int, width: int) -> None:
    font = _font(size)
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (right - left)) // 2, y), text, fill=(20, 20, 20), font=font)


_PARAGRAPH = (
    "一、本表为自助终端测试样张，用于检验高拍仪的页面检测、透视校正与清晰度检查，不含任何真实个人信息。",
    "二、申请人应当如实填写各项内容，并对所提交材料的真实性负责；材料不齐全的，窗口将一次性告知需补正的内容。",
    "三、办理结果可通过短信、政务服务网或自助终端查询；如需邮寄，请在备注栏注明收件地址与联系电话。",
)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, line = [], ""
    for char in text:
        if draw.textlength(line + char, font=font) > width:
            lines.append(line)
            line = char
        else:
            line += char
    if line:
        lines.append(line)
    return lines


def _marker(draw: ImageDraw.ImageDraw) -> None:
    left, top, side = (_mm(v) for v in MARKER_MM)
    draw.rectangle((left, top, left + side, top + side), fill=(0, 0, 0))


def _form(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    margin = _mm(20)
    _centred(draw, _mm(22), "政务服务事项申请表", 58, width)
    _centred(draw, _mm(36), "（自助终端测试样张  编号 TEST-0001）", 28, width)
    font = _font(30)
    y = _mm(52)
    for label, value in (("申请事项", "不动产登记资料查询"), ("申请人", "测试样例"),
                         ("证件号码", "000000000000000000"), ("联系电话", "000-0000-0000"),
                         ("通讯地址", "某某市某某区测试路 0 号")):
        draw.text((margin, y), f"{label}：", fill=(20, 20, 20), font=font)
        draw.text((margin + _mm(32), y), value, fill=(30, 30, 30), font=font)
        draw.line((margin + _mm(30), y + 40, width - margin, y + 40), fill=(60, 60, 60), width=2)
        y += _mm(10)
    y += _mm(4)
    body = _font(26)
    for paragraph in _PARAGRAPH:
        for line in _wrap(draw, paragraph, body, width - 2 * margin):
            draw.text((margin, y), line, fill=(25, 25, 25), font=body)
            y += _mm(6.5)
        y += _mm(1.5)
    # the table of materials
    y += _mm(4)
    columns = [margin, margin + _mm(18), margin + _mm(110), margin + _mm(135), width - margin]
    rows = 6
    row_h = _mm(11)
    for r in range(rows + 1):
        draw.line((columns[0], y + r * row_h, columns[-1], y + r * row_h), fill=(20, 20, 20), width=3)
    for x in columns:
        draw.line((x, y, x, y + rows * row_h), fill=(20, 20, 20), width=3)
    cells = [("序号", "材料名称", "份数", "备注"), ("1", "居民身份证（测试）", "1", "原件"),
             ("2", "申请书", "1", "原件"), ("3", "授权委托书", "1", "如委托"),
             ("4", "不动产权证书（测试）", "1", "复印件"), ("5", "其他材料", "0", "")]
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            draw.text((columns[c] + 12, y + r * row_h + 14), text, fill=(20, 20, 20), font=body)
    y += rows * row_h + _mm(14)
    draw.text((margin, y), "申请人签字：______________      日期：______年____月____日", fill=(20, 20, 20), font=font)
    # a red seal, so colour matters on this page
    red = (210, 30, 40)  # PIL draws in RGB
    cx, cy, r = width - margin - _mm(24), height - _mm(34), _mm(18)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=red, width=9)
    seal = _font(30)
    for i, char in enumerate("测试专用章"):
        a = math.radians(-150 + i * 30)
        draw.text((cx + 0.68 * r * math.cos(a) - 15, cy + 0.68 * r * math.sin(a) - 18), char,
                  fill=red, font=seal)
    star = [(cx + (r * 0.28 if k % 2 == 0 else r * 0.11) * math.cos(math.radians(-90 + 36 * k)),
             cy + (r * 0.28 if k % 2 == 0 else r * 0.11) * math.sin(math.radians(-90 + 36 * k)))
            for k in range(10)]
    draw.polygon(star, fill=red)


def _notice(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    margin = _mm(22)
    _centred(draw, _mm(24), "办事须知（测试样张）", 54, width)
    body = _font(28)
    y = _mm(44)
    text = "".join(_PARAGRAPH) * 3
    for line in _wrap(draw, text, body, width - 2 * margin):
        if y > height - _mm(30):
            break
        draw.text((margin, y), line, fill=(25, 25, 25), font=body)
        y += _mm(7)


@functools.lru_cache(maxsize=4)
def render_document(kind: str = "form") -> np.ndarray:
    """A test document, A4 at 150 dpi, uint8 BGR; read-only and shared."""
    if kind not in DOCUMENTS:
        raise DocumentSceneError(f"unknown document {kind!r}; known: {', '.join(DOCUMENTS)}")
    width, height = _mm(A4_MM[0]), _mm(A4_MM[1])
    page = Image.new("RGB", (width, height), PAPER[::-1])
    draw = ImageDraw.Draw(page)
    _marker(draw)
    (_form if kind == "form" else _notice)(draw, width, height)
    image = cv2.cvtColor(np.asarray(page), cv2.COLOR_RGB2BGR)
    image.flags.writeable = False
    return image


def marker_box(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Where the corner marker is on an upright page of this size: x0, y0, x1, y1 in pixels."""
    height, width = shape[:2]
    left, top, side = MARKER_MM
    sx, sy = width / A4_MM[0], height / A4_MM[1]
    return int(left * sx), int(top * sy), int((left + side) * sx), int((top + side) * sy)


# -- the scene ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    document: str = "form"
    angle: float = 0.0  # degrees clockwise in the picture
    tilt: float = 0.0  # degrees the camera leans: the page's far (top) edge looks narrower
    x: float = 0.5  # centre of the page, fraction of the picture's width
    y: float = 0.5  # and height
    size: float = 0.88  # page height, fraction of the picture's height


@dataclass(frozen=True)
class Look:
    blurred: bool = False
    dark: bool = False
    glare: bool = False


def page_corners(place: Placement, width: int, height: int) -> np.ndarray:
    """The page's corners in the picture (tl, tr, br, bl of the page), float32 (4, 2)."""
    page_h = place.size * height
    page_w = page_h * A4_MM[0] / A4_MM[1]
    k = math.sin(math.radians(place.tilt)) * 0.5  # keystone: the top narrows, the bottom widens
    pts = np.array([
        [-page_w / 2 * (1 - k), -page_h / 2 * (1 - 0.3 * k)],
        [page_w / 2 * (1 - k), -page_h / 2 * (1 - 0.3 * k)],
        [page_w / 2 * (1 + k), page_h / 2],
        [-page_w / 2 * (1 + k), page_h / 2],
    ], np.float64)
    a = math.radians(place.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = pts @ rot.T + np.array([place.x * width, place.y * height])
    return pts.astype(np.float32)


def base_mat(width: int, height: int, seed: int = 5) -> np.ndarray:
    """The camera's base: a dark grey-green mat with a faint texture and a ruler line."""
    rng = np.random.default_rng(seed)
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    light = 1.0 - 0.18 * (x * x + y * y)  # brighter under the lamp in the middle
    mat = np.array([58, 62, 52], np.float32)[None, None, :] * light[..., None]
    coarse = rng.normal(0.0, 6.0, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
    mat += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    img = np.clip(mat, 0, 255).astype(np.uint8)
    for i in range(0, width, max(8, width // 80)):  # a ruler along the near edge
        tick = height // 60 if i % (width // 8) == 0 else height // 120
        cv2.line(img, (i, height - 1), (i, height - 1 - tick), (96, 100, 92), max(1, width // 800))
    return img


class DocumentScene:
    """The document camera's view, rendered once per state change (see module notes)."""

    def __init__(self, width: int = 1600, height: int = 1200, seed: int = 3) -> None:
        self.width, self.height = width, height
        self._base = base_mat(width, height)
        rng = np.random.default_rng(seed)
        noise = np.round(rng.standard_normal((height, width, 3), np.float32) * NOISE_SD).astype(np.int16)
        self._noise_up = np.clip(noise, 0, 255).astype(np.uint8)
        self._noise_down = np.clip(-noise, 0, 255).astype(np.uint8)
        self._lock = threading.Lock()
        self.placement: Placement | None = None
        self.look = Look()
        self.moving = False
        self._frames: list[np.ndarray] = []
        self._next = 0
        self.place()

    # -- scripting ------------------------------------------------------------------------------
    def place(self, document: str = "form", angle: float = 0.0, tilt: float = 0.0, x: float = 0.5,
              y: float = 0.5, size: float = 0.88) -> None:
        """A page laid on the base, sharp, well lit and still."""
        if document not in DOCUMENTS:
            raise DocumentSceneError(f"unknown document {document!r}; known: {', '.join(DOCUMENTS)}")
        if not (0.05 <= size <= 1.5 and -1.0 <= x <= 2.0 and -1.0 <= y <= 2.0 and -60 <= tilt <= 60):
            raise DocumentSceneError("size 0.05..1.5, x and y -1..2 (fractions of the picture), tilt -60..60")
        self._set(Placement(document, float(angle), float(tilt), float(x), float(y), float(size)), Look(), False)

    def remove(self) -> None:
        """The page is taken away: the empty base."""
        self._set(None, Look(), False)

    def blur(self) -> None:
        """The page goes out of focus (a thick book, a camera that lost focus)."""
        self._set(self.placement, replace(self.look, blurred=True), self.moving)

    def dark(self) -> None:
        """The room's light goes dim: the picture is underexposed."""
        self._set(self.placement, replace(self.look, dark=True), self.moving)

    def glare(self) -> None:
        """A lamp is reflected on glossy paper: a saturated patch over the text."""
        self._set(self.placement, replace(self.look, glare=True), self.moving)

    def normal(self) -> None:
        """Sharp, well lit and still again (the page stays where it is)."""
        self._set(self.placement, Look(), False)

    def cut_off(self) -> None:
        """The page is pushed so that about a third of it lies outside the picture."""
        current = self.placement or Placement()
        page_w = current.size * self.height * A4_MM[0] / A4_MM[1]
        x = (self.width + page_w / 2 - page_w / 3) / self.width  # the right third hangs over the edge
        self._set(replace(current, x=x), self.look, self.moving)

    def hand_moving(self) -> None:
        """Someone is moving the page about on the base."""
        self._set(self.placement or Placement(), self.look, True)

    def steady(self) -> None:
        """The page is let go and lies still."""
        self._set(self.placement, self.look, False)

    @property
    def corners(self) -> np.ndarray | None:
        """Where the (still) page's corners are in the picture; None without a page."""
        place = self.placement
        return None if place is None else page_corners(place, self.width, self.height)

    def describe(self) -> str:
        place = self.placement
        if place is None:
            return "the base is empty"
        states = [name for name, on in (("blurred", self.look.blurred), ("dark", self.look.dark),
                                        ("glare", self.look.glare), ("moving", self.moving)) if on]
        return (f"{place.document} at angle {place.angle:g}, tilt {place.tilt:g}, centre ({place.x:.2f}, "
                f"{place.y:.2f}), size {place.size:.2f}" + (f"; {', '.join(states)}" if states else ""))

    # -- rendering ------------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """The picture now (read-only, shared): the state's frame, or the next of a moving loop."""
        with self._lock:
            frame = self._frames[self._next % len(self._frames)]
            self._next += 1
            return frame

    def _set(self, placement: Placement | None, look: Look, moving: bool) -> None:
        if moving and placement is not None:
            path = [replace(placement, x=placement.x + 0.03 * math.cos(2 * math.pi * i / MOVING_FRAMES),
                            y=placement.y + 0.02 * math.sin(2 * math.pi * i / MOVING_FRAMES),
                            angle=placement.angle + 3.0 * math.sin(2 * math.pi * i / MOVING_FRAMES))
                    for i in range(MOVING_FRAMES)]
            frames = [self._draw(p, look, motion=True) for p in path]
        else:
            frames = [self._draw(placement, look, motion=False)]
        with self._lock:
            self.placement, self.look, self.moving = placement, look, moving and placement is not None
            self._frames, self._next = frames, 0

    def _draw(self, place: Placement | None, look: Look, motion: bool) -> np.ndarray:
        frame = self._base.astype(np.float32)
        if place is not None:
            doc = render_document(place.document)
            h, w = doc.shape[:2]
            src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
            dst = page_corners(place, self.width, self.height)
            matrix = cv2.getPerspectiveTransform(src, dst)
            size = (self.width, self.height)
            page = cv2.warpPerspective(doc, matrix, size, flags=cv2.INTER_AREA, borderValue=(0, 0, 0))
            mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR)
            alpha = (mask.astype(np.float32) / 255.0)[..., None]
            # the page under the lamp: a little less light towards its edges, as on the mat
            frame = frame * (1.0 - alpha) + page.astype(np.float32) * 0.9 * alpha
            if look.glare:
                frame += self._glare_patch(dst) * alpha * 1.0
        if look.dark:
            frame *= 0.28
        out = np.clip(frame, 0, 255).astype(np.uint8)
        out = cv2.GaussianBlur(out, (0, 0), 0.7)  # the lens is never perfect
        if look.blurred:
            out = cv2.GaussianBlur(out, (0, 0), BLUR_SIGMA * self.width / 1600)
        if motion:  # the page slides sideways while the shutter is open
            out = cv2.blur(out, (max(3, self.width // 100), 1))
        out = cv2.add(out, self._noise_up)  # sensor noise, made once: two saturating adds
        out = cv2.subtract(out, self._noise_down)
        out.flags.writeable = False
        return out

    def _glare_patch(self, corners: np.ndarray) -> np.ndarray:
        """A lamp's reflection: a bright elliptic patch a third of the way down the page."""
        centre = (corners.mean(axis=0) * 0.6 + corners[:2].mean(axis=0) * 0.4) / 4
        span = float(np.linalg.norm(corners[2] - corners[3])) / 4
        gy, gx = np.mgrid[0:self.height // 4, 0:self.width // 4].astype(np.float32)  # smooth: a quarter will do
        dx, dy = (gx - centre[0]) / (0.45 * span), (gy - centre[1]) / (0.3 * span)
        patch = 260.0 * np.exp(-(dx * dx + dy * dy) * 1.5)
        return cv2.resize(patch, (self.width, self.height), interpolation=cv2.INTER_LINEAR)[..., None]
