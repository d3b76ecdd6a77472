"""Finding a sheet of paper in a picture, straightening it, and judging if it can be read.

Page edges (`find_page`): the picture is scaled to DETECT_WIDTH pixels wide (detection
needs the outline, not the text, and a 1600x1200 frame costs 4x more for nothing).
First Canny edges, closed with a small dilation: the largest convex 4-point outline
(approxPolyDP at 2% of its perimeter) that covers at least `min_area` of the picture is
the page. When no outline closes (low contrast, the page runs out of the picture), the
brightest large region (Otsu threshold; paper is brighter than the base) is taken, and
its 4-point approximation or, failing that, its minimum-area rectangle. A page whose
outline comes within EDGE_MARGIN of the picture's border is flagged as touching it:
part of it may be outside. Corners found on the small copy are then put onto the full
picture's edges (`refine_corners`: the strongest grey step across each edge at 48
places, a line fitted through them, neighbouring lines intersected).

Straightening (`correct_perspective`): the corners are ordered so the page comes out
portrait with its top towards the top of the picture. That is right for a page laid
within +-45 degrees of upright, as the outline printed on a document camera's base
asks; a page laid sideways comes out turned (no text is read to tell which way is up).
The output has the page's own resolution (its longer side in the picture), at the A4
aspect ratio unless told otherwise.

Readability (`measure`, `judge`): on the straightened page scaled to MEASURE_WIDTH
pixels wide, so numbers do not depend on the camera's or scanner's resolution:

- sharpness: variance of the Laplacian in 8x8 tiles, the 90th percentile over tiles:
  text covers only part of a page, and blank tiles must not vote a sharp page blurred;
- white_level: the 95th percentile of grey (the paper's white): a dim picture has no
  white; dark_fraction and mean are reported too;
- clipped_fraction: share of pixels at or above CLIPPED_LEVEL (saturated: glare);
- spread: grey-level standard deviation (a uniform scan is an empty glass or a lamp fault);
- area_fraction and touches_edge of the outline in the picture (camera only).

Thresholds (`ReadabilityLimits`) were set from the emulated document camera's pictures
(devices.scanner.document_scene at 1600x1200 through a JPEG round trip at the stream's
quality; both test documents; A4 at 0.6-0.88 of the picture's height, turned up to 40
degrees, camera tilt up to 25) and SANE test-backend scans; tests/devices/
test_scanner_page.py re-measures them. Measured: sharpness of sharp pages 1550-9900,
blurred (defocus sigma 4 px at 1600 wide) 50-170, a page being moved 90-4000 (motion is
caught by the camera driver's steadiness check, not here), SANE grid scan ~59000; white
level of lit paper 224-225, in a dim room 63; clipped fraction 0 normally, 0.35-0.6 with
glare. Hence min_sharpness 300 (5x under the sharp pages' minimum, 1.8x over the blurred
maximum: a page that blurred is not readable at ~90 dpi), min_white_level 120,
max_clipped_fraction 0.03 (camera only: a scanner calibrates its white to 255, so a
white page is all "clipped"), min_area_fraction 0.15 (below it an A4 page gets under
~50 dpi from a 2-megapixel camera).
Corner refinement puts the corners within ~0.5 px of the truth (~3-6 px without it),
which is what keeps the straightened table lines on single pixel rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from devices.scanner.interface import Problem, Readability

A4_PORTRAIT = 210.0 / 297.0  # width / height
DETECT_WIDTH = 800
MEASURE_WIDTH = 800
EDGE_MARGIN = 0.006  # of the picture's width: closer than this to the border counts as touching it
CLIPPED_LEVEL = 250
DARK_LEVEL = 60
TILES = 8
MIN_CONTRAST = 0.25  # (paper - base) / (paper + base): paper on the mat ~0.6, lit or dim


@dataclass(frozen=True)
class ReadabilityLimits:
    """When a page counts as unreadable; None switches a check off."""

    min_sharpness: float | None = 300.0
    min_white_level: float | None = 120.0
    max_clipped_fraction: float | None = 0.03
    min_area_fraction: float | None = 0.15
    blank_spread: float | None = 6.0  # a grey-level std below this is an empty page


CAMERA_LIMITS = ReadabilityLimits()
# A scanner sets its own exposure (white is 255 on purpose) and scans its whole glass.
FLATBED_LIMITS = ReadabilityLimits(max_clipped_fraction=None, min_area_fraction=None)


@dataclass(frozen=True)
class PageOutline:
    """Where the page is in a picture."""

    corners: np.ndarray  # float32 (4, 2): the page's top-left, top-right, bottom-right, bottom-left
    area_fraction: float  # of the picture
    touches_edge: bool  # the outline reaches the picture's border: part of the page may be outside
    method: str  # "edges", "brightness" or "min_area_rect"

    def shift(self, other: PageOutline) -> float:
        """Largest corner movement to `other`, pixels."""
        return float(np.max(np.linalg.norm(self.corners - other.corners, axis=1)))


# -- finding ---------------------------------------------------------------------------------------
def order_corners(points: np.ndarray, portrait: bool = True) -> np.ndarray:
    """Four points as the page's tl, tr, br, bl: top towards the picture's top (see module notes)."""
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen (y down), starting anywhere
    start = int(np.argmin(pts.sum(axis=1)))  # the corner nearest the picture's top-left
    pts = np.roll(pts, -start, axis=0)
    width = (np.linalg.norm(pts[1] - pts[0]) + np.linalg.norm(pts[2] - pts[3])) / 2
    height = (np.linalg.norm(pts[3] - pts[0]) + np.linalg.norm(pts[2] - pts[1])) / 2
    if portrait != (height >= width):
        # the corner nearest the picture's top-left was the wrong one of two: near 45 degrees
        # that is a neighbour either way, so take the one whose top edge runs most to the
        # right; laid sideways (a tie), its top is the picture's left side
        back, ahead = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        pts = ahead if _rightward(ahead) > _rightward(back) + 0.05 else back
    return pts


def _rightward(pts: np.ndarray) -> float:
    """How much the edge from the first to the second corner points to the picture's right (-1..1)."""
    edge = pts[1] - pts[0]
    return float(edge[0] / (np.linalg.norm(edge) + 1e-9))


def _quad(contour: np.ndarray) -> np.ndarray | None:
    perimeter = cv2.arcLength(contour, True)
    approx = cv2.approxPolyDP(contour, 0.02 * perimeter, True)
    if len(approx) == 4 and cv2.isContourConvex(approx):
        return approx.reshape(4, 2).astype(np.float32)
    return None


def _touches(points: np.ndarray, width: int, height: int) -> bool:
    margin = max(2.0, EDGE_MARGIN * width)
    xs, ys = points[:, 0], points[:, 1]
    return bool((xs <= margin).any() or (ys <= margin).any() or (xs >= width - 1 - margin).any()
                or (ys >= height - 1 - margin).any())


def _bright_region(grey: np.ndarray, min_area: float) -> np.ndarray | None:
    """The largest region clearly brighter than the rest (Otsu), or None: paper on a base."""
    _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    inside, outside = cv2.mean(grey, bright)[0], cv2.mean(grey, cv2.bitwise_not(bright))[0]
    if inside + outside <= 0 or (inside - outside) / (inside + outside) < MIN_CONTRAST:
        return None  # no sheet stands out: an empty base, or a page on a desk as bright as itself
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    if area < min_area * grey.size or area > 0.98 * grey.size:
        return None
    return contour


def _edge_quad(grey: np.ndarray, min_area: float) -> np.ndarray | None:
    """The largest convex four-cornered outline among Canny edges, or None."""
    edges = cv2.dilate(cv2.Canny(grey, 30, 90), np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
        if cv2.contourArea(contour) < min_area * grey.size:
            return None
        quad = _quad(contour)
        if quad is not None:
            return quad
    return None


def find_page(image: np.ndarray, min_area: float = 0.02, portrait: bool = True) -> PageOutline | None:
    """The sheet of paper in `image` (BGR or grey), or None when there is none.

    The edge outline is preferred (its corners are exact); the bright region wins when it
    is clearly larger, as when the page runs out of the picture and its outline cannot
    close, and Canny finds only something printed on it (a table)."""
    width = image.shape[1]
    scale = DETECT_WIDTH / width if width > DETECT_WIDTH else 1.0
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    grey = cv2.GaussianBlur(grey, (5, 5), 0)
    sh, sw = grey.shape

    quad = _edge_quad(grey, min_area)
    region = _bright_region(grey, min_area)
    outline: np.ndarray | None = None
    method = "edges"
    if region is not None and (quad is None or cv2.contourArea(quad) < 0.7 * cv2.contourArea(region)):
        outline = region.reshape(-1, 2).astype(np.float32)
        quad = _quad(region)
        method = "brightness"
        if quad is None:
            quad = cv2.boxPoints(cv2.minAreaRect(region)).astype(np.float32)
            method = "min_area_rect"
    if quad is None:
        return None
    touches = _touches(quad, sw, sh) or (outline is not None and _touches(outline, sw, sh))
    corners = order_corners(quad / scale, portrait)
    if not touches and scale < 1:  # found on a small copy: place the edges exactly on the full picture
        full = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        corners = refine_corners(full, corners, search=2.5 / scale)
    return PageOutline(corners, float(cv2.contourArea(quad)) / (sh * sw), touches, method)


def _line_through_edge(grey: np.ndarray, a: np.ndarray, b: np.ndarray, search: float,
                       samples: int = 48) -> tuple[np.ndarray, np.ndarray] | None:
    """The page edge between corners a and b, to a fraction of a pixel: (point, direction).

    Across the edge at `samples` places, the strongest grey-level step within `search`
    pixels is taken (parabola through the peak), and a line fitted to those points."""
    along = b - a
    length = float(np.linalg.norm(along))
    if length < 10:
        return None
    unit = along / length
    normal = np.array([-unit[1], unit[0]], np.float32)
    t = np.linspace(0.1, 0.9, samples, dtype=np.float32)[:, None]
    offsets = np.arange(-search, search + 1.0, 1.0, dtype=np.float32)[None, :]
    base = a[None, :] + t * along[None, :]
    xs = (base[:, 0:1] + offsets * normal[0]).astype(np.float32)
    ys = (base[:, 1:2] + offsets * normal[1]).astype(np.float32)
    profiles = cv2.remap(grey, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    profiles = cv2.GaussianBlur(profiles, (5, 1), 0)  # along each profile only
    step = np.abs(np.diff(profiles, axis=1))
    peak = np.argmax(step, axis=1)
    inner = (peak > 0) & (peak < step.shape[1] - 1) & (step[np.arange(samples), peak] > 8)
    if np.count_nonzero(inner) < samples // 3:
        return None
    rows = np.nonzero(inner)[0]
    p = peak[rows]
    left, mid, right = step[rows, p - 1], step[rows, p], step[rows, p + 1]
    denom = left - 2 * mid + right
    frac = np.where(np.abs(denom) > 1e-6, 0.5 * (left - right) / denom, 0.0)
    offset = offsets[0, p] + 0.5 + frac  # a diff sits between two samples
    points = base[rows] + offset[:, None] * normal[None, :]
    vx, vy, x0, y0 = cv2.fitLine(points.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    return np.array([x0, y0], np.float32), np.array([vx, vy], np.float32)


def _intersect(l1: tuple[np.ndarray, np.ndarray], l2: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    (p1, d1), (p2, d2) = l1, l2
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < 1e-6:
        return None
    t = ((p2[0] - p1[0]) * d2[1] - (p2[1] - p1[1]) * d2[0]) / cross
    return p1 + t * d1


def refine_corners(grey: np.ndarray, corners: np.ndarray, search: float = 5.0) -> np.ndarray:
    """Corners (tl, tr, br, bl) moved onto the page's edges in `grey` at full resolution; a
    corner whose edges cannot be measured, or that would move further than `search`
    pixels, stays where it was."""
    search = float(max(2.0, search))
    edges = [_line_through_edge(grey, corners[i], corners[(i + 1) % 4], search) for i in range(4)]
    refined = corners.copy()
    for i in range(4):  # corner i is where edge i-1 (coming in) meets edge i (going out)
        before, after = edges[i - 1], edges[i]
        if before is None or after is None:
            continue
        point = _intersect(before, after)
        if point is not None and float(np.linalg.norm(point - corners[i])) <= search * 1.5:
            refined[i] = point
    return refined.astype(np.float32)


# -- straightening ---------------------------------------------------------------------------------
def correct_perspective(image: np.ndarray, corners: np.ndarray, aspect: float = A4_PORTRAIT,
                        height: int | None = None) -> np.ndarray:
    """The page inside `corners` (tl, tr, br, bl) as a flat, upright picture.

    `aspect` is width/height of the sheet; `height` defaults to the page's longer side in
    the picture, so the page keeps the resolution the camera gave it."""
    tl, tr, br, bl = np.asarray(corners, np.float32)
    if height is None:
        height = int(round(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))))
    height = max(16, height)
    width = max(16, int(round(height * aspect)))
    target = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float32)
    matrix = cv2.getPerspectiveTransform(np.array([tl, tr, br, bl], np.float32), target)
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def effective_dpi(page: np.ndarray, page_height_mm: float = 297.0) -> float:
    """Pixels per inch of a straightened page whose height is `page_height_mm`."""
    return page.shape[0] / (page_height_mm / 25.4)


# -- trimming a flatbed scan -----------------------------------------------------------------------
def trim_scan(image: np.ndarray, dark_border: float = 60.0) -> np.ndarray:
    """Cut a scanner's dark background (black lid or feeder backing) away from the page.

    Only when the scan's border is dark and a bright page lies inside it; a scan that is
    all page (white lid, page filling the glass) is returned as is, never cropped into
    its own margins."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    h, w = grey.shape
    band = max(2, min(h, w) // 100)
    border = np.concatenate([grey[:band].ravel(), grey[-band:].ravel(), grey[:, :band].ravel(),
                             grey[:, -band:].ravel()])
    if float(border.mean()) > dark_border:
        return image
    outline = find_page(image, min_area=0.2)
    if outline is None or outline.area_fraction > 0.97:
        return image
    x, y, bw, bh = cv2.boundingRect(outline.corners.astype(np.float32))
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + bw), min(h, y + bh)
    if (x1 - x0) * (y1 - y0) < 0.2 * h * w:
        return image
    return image[y0:y1, x0:x1].copy()


# -- readability -----------------------------------------------------------------------------------
def measure(page: np.ndarray) -> dict[str, float]:
    """The numbers readability is judged on (see module notes); page BGR or grey."""
    grey = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY) if page.ndim == 3 else page
    h, w = grey.shape
    if w != MEASURE_WIDTH:
        size = (MEASURE_WIDTH, max(8, int(round(h * MEASURE_WIDTH / w))))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if w > MEASURE_WIDTH else cv2.INTER_LINEAR)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    th, tw = lap.shape[0] // TILES, lap.shape[1] // TILES
    tiles = lap[:th * TILES, :tw * TILES].reshape(TILES, th, TILES, tw)
    tile_var = tiles.var(axis=(1, 3))
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel()
    total = float(hist.sum())
    cumulative = np.cumsum(hist) / total
    mean, std = cv2.meanStdDev(grey)
    return {
        "sharpness": float(np.percentile(tile_var, 90)),
        "white_level": float(np.searchsorted(cumulative, 0.95)),  # the 95th percentile, from the histogram
        "mean": float(mean[0, 0]),
        "dark_fraction": float(hist[:DARK_LEVEL].sum()) / total,
        "clipped_fraction": float(hist[CLIPPED_LEVEL:].sum()) / total,
        "spread": float(std[0, 0]),
    }


def judge(measures: dict[str, float], limits: ReadabilityLimits, outline: PageOutline | None = None,
          located: bool = True) -> Readability:
    """The verdict on measured numbers. `located` False: the page was looked for and not
    found. The problems are ordered by what the citizen should fix first."""
    numbers = dict(measures)
    problems: list[Problem] = []
    if not located:
        return Readability((Problem.NO_PAGE,), numbers)
    if outline is not None:
        numbers["area_fraction"] = outline.area_fraction
        numbers["touches_edge"] = float(outline.touches_edge)
        if outline.touches_edge:
            problems.append(Problem.CUT_OFF)
        if limits.min_area_fraction is not None and outline.area_fraction < limits.min_area_fraction:
            problems.append(Problem.TOO_SMALL)
    spread = numbers.get("spread")
    if limits.blank_spread is not None and spread is not None and spread < limits.blank_spread:
        white = numbers.get("white_level", 255.0)
        if limits.min_white_level is not None and white < limits.min_white_level:
            problems.append(Problem.TOO_DARK)  # uniformly dark: a lamp or a lid, not an empty glass
        else:
            problems.append(Problem.NO_PAGE)
        return Readability(tuple(problems), numbers)
    if limits.min_white_level is not None and numbers["white_level"] < limits.min_white_level:
        problems.append(Problem.TOO_DARK)
    if limits.max_clipped_fraction is not None and numbers["clipped_fraction"] > limits.max_clipped_fraction:
        problems.append(Problem.GLARE)
    if limits.min_sharpness is not None and numbers["sharpness"] < limits.min_sharpness:
        problems.append(Problem.BLURRED)
    return Readability(tuple(problems), numbers)


def assess(page: np.ndarray, limits: ReadabilityLimits, outline: PageOutline | None = None) -> Readability:
    """measure() then judge()."""
    return judge(measure(page), limits, outline)
