"""Scanned pages as the bytes an application carries: a JPEG of bounded size, or one PDF.

Government platforms cap attachments (typically a few hundred KB per page), so
`page_jpeg` brings a page to at most `target_dpi` (never enlarging it: that adds bytes,
not detail) and then picks the highest JPEG quality that fits `max_bytes`, scaling the
page down further only when even `min_quality` does not fit. Grey or colour: colour is
kept only when the page has real colour in it (a red seal, a photo), measured as the
share of clearly chromatic pixels; grey pages are a third the size at the same quality.
The resolution is written into the JPEG (JFIF density), so the page prints and converts
at its true size.

`pages_pdf` wraps JPEGs into one PDF with img2pdf, which copies the JPEG data as is
(DCTDecode): no second lossy encoding, and each PDF page has the paper's size.

Everything is returned as bytes, in memory: pages are citizens' documents and the
terminal never writes them to disk (the caller attaches or encrypts them).
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import img2pdf
import numpy as np
from PIL import Image

from devices.scanner.interface import ScannedPage

DEFAULT_MAX_BYTES = 500_000
DEFAULT_DPI = 200
CHROMA_LEVEL = 48  # max - min channel at which a pixel counts as clearly coloured
QUALITY_STEP = 5
COLOUR_SHARE = 0.002  # a seal on an A4 page is ~0.5% of it; JPEG noise on grey stays far below


class PageTooLarge(ValueError):
    """No quality or size brings the page under the byte limit (the limit is absurdly small)."""


def is_colourful(image: np.ndarray) -> bool:
    """True when the page has colour worth keeping (see module notes)."""
    if image.ndim == 2:
        return False
    small = image[::4, ::4].astype(np.int16)
    chroma = small.max(axis=2) - small.min(axis=2)
    return float(np.count_nonzero(chroma >= CHROMA_LEVEL)) / chroma.size >= COLOUR_SHARE


def _encode(pil: Image.Image, quality: int, dpi: float, optimize: bool = False) -> bytes:
    out = io.BytesIO()
    pil.save(out, "JPEG", quality=quality, optimize=optimize, dpi=(round(dpi), round(dpi)))
    return out.getvalue()


def page_jpeg(page: ScannedPage | np.ndarray, dpi: float | None = None, *, target_dpi: float = DEFAULT_DPI,
              max_bytes: int = DEFAULT_MAX_BYTES, colour: bool | None = None, min_quality: int = 40,
              max_quality: int = 90) -> bytes:
    """The page as a JPEG of at most `max_bytes` (see module notes).

    `page` is a ScannedPage, or an image (BGR or grey) with its `dpi`. `colour` None
    decides by the page's content; True/False forces it."""
    if isinstance(page, ScannedPage):
        image, dpi = page.image, page.dpi if dpi is None else dpi
    else:
        image = page
    if dpi is None or dpi <= 0:
        raise ValueError("give the page's resolution (dpi)")
    if not 10_000 <= max_bytes:
        raise PageTooLarge(f"a page limit of {max_bytes} bytes is too small for a readable page")
    if colour is None:
        colour = is_colourful(image)
    if image.ndim == 3 and colour:
        pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    else:
        pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image)
    if dpi > target_dpi:
        factor = target_dpi / dpi
        pil = pil.resize((max(1, round(pil.width * factor)), max(1, round(pil.height * factor))),
                         Image.Resampling.LANCZOS)
        dpi = target_dpi
    qualities = list(range(max_quality, min_quality - 1, -QUALITY_STEP))
    while True:
        best = None
        low, high = 0, len(qualities) - 1
        while low <= high:  # the highest quality that fits, in steps of QUALITY_STEP
            middle = (low + high) // 2
            if len(_encode(pil, qualities[middle], dpi)) <= max_bytes:
                best, high = qualities[middle], middle - 1
            else:
                low = middle + 1
        if best is not None:  # optimised Huffman tables only make it smaller
            return _encode(pil, best, dpi, optimize=True)
        if pil.width < 200:
            raise PageTooLarge(f"cannot bring the page under {max_bytes} bytes")
        pil = pil.resize((round(pil.width * 0.8), round(pil.height * 0.8)), Image.Resampling.LANCZOS)
        dpi *= 0.8


def pages_pdf(pages: Sequence[ScannedPage | bytes], **jpeg_options: object) -> bytes:
    """One PDF with a page per scanned page; ScannedPages are made JPEGs first (page_jpeg
    with `jpeg_options`), JPEG bytes are embedded as they are."""
    if not pages:
        raise ValueError("no pages to put into a PDF")
    jpegs = [p if isinstance(p, bytes) else page_jpeg(p, **jpeg_options) for p in pages]  # type: ignore[arg-type]
    return img2pdf.convert(jpegs)
