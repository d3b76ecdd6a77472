"""The page pipeline on synthetic pictures: find, straighten, judge; and the output bytes.

Pictures come from the document camera's scene (devices.scanner.document_scene) through
a JPEG round trip at the camera emulator's quality. Upright and straight are checked
without reading: the printed corner marker, and the form's ruled table lines falling on
single rows and columns. Readability thresholds are checked against the measured numbers
(the figures behind page.py's defaults).
"""
from __future__ import annotations

import functools
import io
import re

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from scanner_harness import A4_ASPECT, as_sent, aspect, is_upright, table_lines_straight

from devices.scanner import output, page
from devices.scanner.document_scene import (
    DocumentScene,
    Placement,
    page_corners,
    render_document,
)
from devices.scanner.interface import Problem, ScannedPage

WIDTH, HEIGHT = 1600, 1200


@pytest.fixture(scope="module")
def scene() -> DocumentScene:
    return DocumentScene(WIDTH, HEIGHT)


def straighten(frame: np.ndarray) -> tuple[page.PageOutline, np.ndarray]:
    outline = page.find_page(frame)
    assert outline is not None, "no page found"
    return outline, page.correct_perspective(frame, outline.corners)


def corner_error(outline: page.PageOutline, truth: np.ndarray) -> float:
    return float(np.max(np.linalg.norm(outline.corners - truth, axis=1)))


# -- finding and straightening ----------------------------------------------------------------------
@pytest.mark.parametrize("document", ["form", "notice"])
@pytest.mark.parametrize("angle,tilt,size", [(0, 0, 0.88), (12, 0, 0.78), (-25, 10, 0.7), (35, 20, 0.62),
                                              (-40, 0, 0.6), (4, 25, 0.85)])
def test_page_found_and_straightened_upright(scene: DocumentScene, document: str, angle: float, tilt: float,
                                             size: float) -> None:
    scene.place(document, angle=angle, tilt=tilt, size=size)
    frame = as_sent(scene.render())
    outline, flat = straighten(frame)
    assert outline.method == "edges"
    assert not outline.touches_edge
    assert corner_error(outline, scene.corners) < 0.006 * WIDTH  # < 10 px in a 1600-wide picture
    assert aspect(flat) == pytest.approx(A4_ASPECT, rel=0.01)
    assert is_upright(flat)
    verdict = page.assess(flat, page.CAMERA_LIMITS, outline)
    assert verdict.ok, verdict.describe()
    if document == "form":
        rows, cols = table_lines_straight(flat)
        assert rows > 0.6 and cols > 0.6, f"table lines spread over several rows/columns: {rows:.2f}, {cols:.2f}"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(angle=st.floats(-40, 40), tilt=st.floats(0, 20), dx=st.floats(-0.08, 0.08), dy=st.floats(-0.03, 0.03))
def test_any_placement_within_the_outline_comes_out_upright(scene: DocumentScene, angle: float, tilt: float,
                                                             dx: float, dy: float) -> None:
    # the largest page that stays in the picture at this angle
    rad = np.radians(abs(angle))
    size = 0.9 / (np.cos(rad) + A4_ASPECT * np.sin(rad)) * 0.92
    scene.place("form", angle=angle, tilt=tilt, x=0.5 + dx, y=0.5 + dy, size=float(size))
    outline, flat = straighten(as_sent(scene.render()))
    assert corner_error(outline, scene.corners) < 0.006 * WIDTH
    assert is_upright(flat)
    rows, cols = table_lines_straight(flat)
    assert rows > 0.6 and cols > 0.6


def test_corners_are_ordered_from_the_pages_top_left_whatever_the_input_order() -> None:
    truth = page_corners(Placement(angle=30), WIDTH, HEIGHT)
    for shift in range(4):
        shuffled = np.roll(truth, shift, axis=0)[::-1 if shift % 2 else 1]
        assert np.allclose(page.order_corners(shuffled), truth)


def test_a_page_laid_sideways_still_comes_out_portrait(scene: DocumentScene) -> None:
    scene.place("form", angle=90, size=0.6)
    _, flat = straighten(as_sent(scene.render()))
    assert flat.shape[0] > flat.shape[1]


def test_straightening_keeps_the_cameras_resolution(scene: DocumentScene) -> None:
    scene.place("form", size=0.88)
    _, flat = straighten(as_sent(scene.render()))
    assert flat.shape[0] == pytest.approx(0.88 * HEIGHT, rel=0.02)
    assert page.effective_dpi(flat) == pytest.approx(0.88 * HEIGHT / (297 / 25.4), rel=0.02)


# -- readability ------------------------------------------------------------------------------------
def _judge(scene: DocumentScene) -> tuple[page.PageOutline | None, object]:
    frame = as_sent(scene.render())
    outline = page.find_page(frame)
    if outline is None:
        return None, page.judge({}, page.CAMERA_LIMITS, located=False)
    flat = page.correct_perspective(frame, outline.corners)
    return outline, page.assess(flat, page.CAMERA_LIMITS, outline)


@pytest.mark.parametrize("state,problem", [
    ("blur", Problem.BLURRED), ("dark", Problem.TOO_DARK), ("glare", Problem.GLARE),
    ("cut_off", Problem.CUT_OFF),
])
@pytest.mark.parametrize("angle", [0, 20])
def test_unreadable_pictures_are_flagged_with_their_problem(scene: DocumentScene, state: str, problem: Problem,
                                                            angle: float) -> None:
    scene.place("form", angle=angle, size=0.75)
    _, before = _judge(scene)
    assert before.ok  # type: ignore[attr-defined]
    getattr(scene, state)()
    _, verdict = _judge(scene)
    assert verdict.problems[0] == problem, verdict.describe()  # type: ignore[attr-defined]


def test_no_page_on_the_base_is_no_page(scene: DocumentScene) -> None:
    scene.remove()
    assert page.find_page(as_sent(scene.render())) is None
    scene.dark()  # an empty base in a dim room must not become a page either
    assert page.find_page(as_sent(scene.render())) is None


def test_a_page_far_away_is_too_small(scene: DocumentScene) -> None:
    scene.place("notice", size=0.3)
    outline, verdict = _judge(scene)
    assert outline is not None and outline.area_fraction < page.CAMERA_LIMITS.min_area_fraction
    assert verdict.problems[0] == Problem.TOO_SMALL  # type: ignore[attr-defined]


def test_cut_off_page_is_found_by_brightness_and_touches_the_edge(scene: DocumentScene) -> None:
    scene.place("form")
    scene.cut_off()
    outline = page.find_page(as_sent(scene.render()))
    assert outline is not None and outline.touches_edge and outline.method != "edges"


def test_thresholds_sit_between_the_measured_sharp_and_blurred_pages(scene: DocumentScene) -> None:
    """The numbers behind page.py's defaults, re-measured: a margin of 3x on both sides."""
    sharp, blurred = [], []
    for document in ("form", "notice"):
        for angle, size in ((0, 0.88), (30, 0.65)):
            scene.place(document, angle=angle, size=size)
            sharp.append(_judge(scene)[1].measures["sharpness"])  # type: ignore[attr-defined]
            scene.blur()
            blurred.append(_judge(scene)[1].measures["sharpness"])  # type: ignore[attr-defined]
    limit = page.CAMERA_LIMITS.min_sharpness
    assert limit is not None
    assert min(sharp) > 3 * limit, sharp
    assert max(blurred) < limit / 1.5, blurred
    scene.place("form")
    lit = _judge(scene)[1].measures  # type: ignore[attr-defined]
    scene.dark()
    dim = _judge(scene)[1].measures  # type: ignore[attr-defined]
    scene.normal()
    scene.glare()
    glare = _judge(scene)[1].measures  # type: ignore[attr-defined]
    assert dim["white_level"] < page.CAMERA_LIMITS.min_white_level < lit["white_level"]  # type: ignore[operator]
    assert lit["clipped_fraction"] < page.CAMERA_LIMITS.max_clipped_fraction < glare["clipped_fraction"]  # type: ignore[operator]


def test_flatbed_limits_accept_a_white_page_but_flag_a_blank_or_black_scan() -> None:
    doc = render_document("form")
    assert page.assess(doc, page.FLATBED_LIMITS).ok  # paper at 246 and no glare check on a scanner
    blank = np.full((800, 600), 255, np.uint8)
    assert page.assess(blank, page.FLATBED_LIMITS).problems == (Problem.NO_PAGE,)
    black = np.zeros((800, 600), np.uint8)
    assert page.assess(black, page.FLATBED_LIMITS).problems == (Problem.TOO_DARK,)


# -- trimming a flatbed scan ----------------------------------------------------------------------
def test_dark_scanner_background_is_trimmed_to_the_page() -> None:
    doc = render_document("form")
    scan = np.full((doc.shape[0] + 200, doc.shape[1] + 160, 3), 20, np.uint8)  # a black feeder backing
    scan[60:60 + doc.shape[0], 90:90 + doc.shape[1]] = doc
    trimmed = page.trim_scan(scan)
    assert abs(trimmed.shape[0] - doc.shape[0]) <= 6 and abs(trimmed.shape[1] - doc.shape[1]) <= 6
    assert is_upright(trimmed)


def test_a_scan_that_is_all_page_is_not_cropped_into_its_margins() -> None:
    doc = render_document("notice")
    assert page.trim_scan(doc) is doc
    grid = np.kron((np.indices((20, 20)).sum(axis=0) % 2 * 255).astype(np.uint8), np.ones((59, 59), np.uint8))
    assert page.trim_scan(grid) is grid


# -- output -----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _a4_300dpi(document: str) -> np.ndarray:
    doc = cv2.resize(render_document(document), (2480, 3508), interpolation=cv2.INTER_CUBIC)
    noise = np.empty(doc.shape, np.int16)
    cv2.randn(noise, 0, 5)  # paper texture and sensor noise: hard to compress
    return np.clip(doc.astype(np.int16) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("max_bytes", [500_000, 150_000])
def test_jpeg_fits_the_bound_at_200_dpi_with_its_resolution_written_in(max_bytes: int) -> None:
    data = output.page_jpeg(_a4_300dpi("form"), 300, max_bytes=max_bytes)
    assert len(data) <= max_bytes
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert img.mode == "RGB"  # the form's red seal keeps it in colour
        assert img.info["dpi"][0] == pytest.approx(img.width / (210 / 25.4), rel=0.02)
        assert img.width <= 1654 and img.height <= 2339  # never above 200 dpi


def test_grey_pages_are_sent_grey_and_colour_can_be_forced() -> None:
    notice = _a4_300dpi("notice")
    with Image.open(io.BytesIO(output.page_jpeg(notice, 300))) as img:
        assert img.mode == "L"
    with Image.open(io.BytesIO(output.page_jpeg(notice, 300, colour=True))) as img:
        assert img.mode == "RGB"


def test_a_low_resolution_page_is_not_enlarged() -> None:
    small = render_document("form")  # 150 dpi
    with Image.open(io.BytesIO(output.page_jpeg(small, 150))) as img:
        assert img.size == (small.shape[1], small.shape[0])


def test_three_pages_become_one_pdf_with_the_jpegs_embedded_as_they_are() -> None:
    verdict = page.assess(render_document("form"), page.FLATBED_LIMITS)
    pages = [ScannedPage(render_document(d), 150.0, verdict, "flatbed") for d in ("form", "notice", "form")]
    jpegs = [output.page_jpeg(p) for p in pages]
    pdf = output.pages_pdf(jpegs)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 3
    for box in re.findall(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*\]", pdf):
        assert float(box[2]) == pytest.approx(595.3, abs=2) and float(box[3]) == pytest.approx(841.9, abs=2)
    for jpeg in jpegs:  # img2pdf copies the JPEG stream: no second lossy encoding
        assert jpeg in pdf
    assert output.pages_pdf(pages)[:5] == b"%PDF-"  # ScannedPages are encoded on the way


def test_scanned_page_repr_shows_no_pixels() -> None:
    doc = render_document("form")
    shown = repr(ScannedPage(doc, 150.0, page.assess(doc, page.FLATBED_LIMITS), "flatbed"))
    assert "1240x1754" in shown and "[" not in shown


@pytest.mark.parametrize("shift", range(4))
def test_near_45_degrees_the_top_left_corner_is_still_the_pages(shift: int) -> None:
    # a page turned 40 degrees and tilted: its top and left corners are almost equally near
    # the picture's top-left (sums 991 and 999), so the first guess may be the wrong one
    top, right, bottom, left = (857.1, 134.5), (1248.5, 462.9), (783.6, 1117.6), (293.1, 706.0)
    truth = np.array([top, right, bottom, left], np.float32)
    assert np.allclose(page.order_corners(np.roll(truth, shift, axis=0)), truth)
