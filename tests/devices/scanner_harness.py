"""Shared by the scanner tests: camera-like pictures of test pages, and checks of a page's pose.

A picture "as the camera sends it" is the scene's frame through a JPEG round trip at the
emulator's quality, so the page pipeline sees the same artefacts as through the MJPEG
stream. Whether a straightened page is upright and straight is judged without reading
it: the black marker printed in the document's top-left corner must be there (and not
in the other corners), and the form's ruled table lines must each fall on one row or
column of pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from devices.camera.emulator import JPEG_QUALITY
from devices.scanner.document_scene import A4_MM, marker_box


def as_sent(frame: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def corner_marker_levels(page: np.ndarray) -> list[float]:
    """Mean grey inside the marker's box at the page's tl, tr, br, bl corners."""
    g = grey(page)
    h, w = g.shape
    x0, y0, x1, y1 = marker_box(g.shape)
    pad = max(1, (x1 - x0) // 5)  # the inner part: a few pixels of misplacement must not matter
    boxes = [(x0, y0), (w - x1, y0), (w - x1, h - y1), (x0, h - y1)]
    side_x, side_y = x1 - x0, y1 - y0
    return [float(g[y + pad:y + side_y - pad, x + pad:x + side_x - pad].mean()) for x, y in boxes]


def is_upright(page: np.ndarray) -> bool:
    """The marker is in the top-left corner, and only there."""
    levels = corner_marker_levels(page)
    return levels[0] < 90 and all(level > 150 for level in levels[1:])


def aspect(page: np.ndarray) -> float:
    h, w = page.shape[:2]
    return w / h


A4_ASPECT = A4_MM[0] / A4_MM[1]


def table_lines_straight(page: np.ndarray) -> tuple[float, float]:
    """How straight the form's ruled lines are: the best share of one 2-pixel band of rows
    (within the table's width) that is dark, and the same for columns. A line skewed by one
    degree over the table's 170 mm spreads over ~10 rows, and the share drops below 0.3."""
    g = grey(page)
    h, w = g.shape
    dark = (g < 140).astype(np.float32)
    mm_x, mm_y = w / A4_MM[0], h / A4_MM[1]
    y0, y1 = int(150 * mm_y), int(225 * mm_y)  # the form's table lies between these (see document_scene)
    rows = dark[y0:y1, int(22 * mm_x):int((A4_MM[0] - 22) * mm_x)].mean(axis=1)
    cols = dark[y0 + 5:y1 - 5, int(15 * mm_x):int(60 * mm_x)].mean(axis=0)  # its first two verticals
    best_row = float(np.maximum(rows[:-1], rows[1:]).max())
    best_col = float(np.maximum(cols[:-1], cols[1:]).max())
    return best_row, best_col
