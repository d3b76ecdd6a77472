"""Certificates (and the technicians' A4 test page) rendered to PDF for the A4 printer.

The platform sends a certificate as plain data (see `parse_certificate` for the keys);
this module lays it out on A4 with fpdf2: a title in Chinese with English beneath, a
verification QR code (segno, drawn as vector squares so it prints sharp at any
resolution) holding the platform's verification URL, the holder, a summary, a detail
table that breaks across pages with its header row repeated, notes, the issuer, and on
every page a footer with the terminal, the print time and 第 N 页 共 M 页.

Every word around the data (labels, footers, the test page's texts, fonts, sizes) comes
from config/certificates.toml, so a department changes wording without touching code.

Fonts: the first font of the layout that exists is embedded (subset) for all text;
characters it lacks (rare characters in names) are drawn from the next fonts. When no
configured font has a character, rendering stops with MissingGlyphs rather than print a
box on an official document.

Privacy: the PDF holds personal data. It is returned as bytes and never written to disk
or logged here; the ID number must arrive masked (the renderer refuses one that is
not); error messages name fields, never their values. The PDF's metadata holds only the
title and the kind of document.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno
from fpdf import FPDF
from fpdf.enums import TableHeadingsDisplay, WrapMode
from fpdf.fonts import FontFace

LAYOUT_FILE = Path(__file__).resolve().parent.parent / "config" / "certificates.toml"
LANGUAGES = ("zh-CN", "en")
A4_W, A4_H = 210.0, 297.0
_FAMILY = "cjk"

REQUIRED_LABELS = ("holder_name", "id_number", "summary", "table", "notes", "issuer", "issued_at",
                   "verification_code", "verify", "continued")
REQUIRED_FOOTER = ("terminal", "printed_at", "page")
REQUIRED_TEST_PAGE = ("title", "terminal", "location", "printed_at", "font", "sample", "square", "frames",
                      "grey", "check")
_KEYS = {"kind", "title", "holder", "issuer", "issued_at", "verification_code", "verify_url", "summary", "table",
         "notes"}
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_CODE = re.compile(r"[A-Za-z0-9-]{4,64}")


class CertificateError(ValueError):
    """Base of the certificate renderer's errors."""


class CertificateDataError(CertificateError):
    """The certificate data is unusable; `field` names the key (e.g. "table.rows[3]")."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"certificate field {field!r}: {problem}")


class MissingGlyphs(CertificateDataError):
    """A character no configured font can draw; `field` names where, never the text itself."""


class LayoutError(CertificateError):
    """config/certificates.toml is incomplete or names no usable font."""


# -- layout (config/certificates.toml) ------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    fonts: tuple[Path, ...]  # existing font files, most preferred first
    font_index: int
    margin_mm: float
    title_pt: float
    subtitle_pt: float
    body_pt: float
    table_pt: float
    small_pt: float
    qr_mm: float
    time_format: str
    bilingual: str
    labels: dict[str, dict[str, str]]
    footer: dict[str, dict[str, str]]
    test_page: dict[str, dict[str, str]]
    source: Path = field(default=LAYOUT_FILE)

    def text(self, section: str, key: str, lang: str, **values: Any) -> str:
        entry = getattr(self, section)[key]
        text = entry.get(lang) or entry["zh-CN"]
        return text.format(**values) if values else text

    def label(self, key: str, section: str = "labels", **values: Any) -> str:
        """zh-CN with English beside it, as `bilingual` says."""
        zh = self.text(section, key, "zh-CN", **values)
        en = self.text(section, key, "en", **values)
        return self.bilingual.format(zh=zh, en=en) if en else zh


def load_layout(path: Path = LAYOUT_FILE) -> Layout:
    """Read and check the layout; LayoutError names the file, the key and the fix."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LayoutError(f"cannot read the certificate layout {path}: {exc}") from None
    page = raw.get("page", {})

    def number(key: str) -> float:
        value = page.get(key)
        if not isinstance(value, (int, float)) or value <= 0:
            raise LayoutError(f"{path}: [page] {key} must be a positive number")
        return float(value)

    listed = [Path(p) for p in page.get("fonts", [])]
    fonts = tuple(p for p in listed if p.is_file())
    if not fonts:
        named = ", ".join(map(str, listed)) or "none listed"
        raise LayoutError(f"{path}: none of the fonts in [page] fonts exists ({named}); "
                          "install fonts-wqy-microhei (apt-get install fonts-wqy-microhei)")

    def texts(section: str, required: Sequence[str]) -> dict[str, dict[str, str]]:
        table = raw.get(section, {})
        out: dict[str, dict[str, str]] = {}
        for key in required:
            entry = table.get(key)
            if not isinstance(entry, dict) or not isinstance(entry.get("zh-CN"), str):
                raise LayoutError(f"{path}: [{section}.{key}] needs a zh-CN text (and en beside it)")
            out[key] = {lang: str(entry[lang]) for lang in LANGUAGES if lang in entry}
        return out

    return Layout(
        fonts=fonts,
        font_index=int(page.get("font_index", 0)),
        margin_mm=number("margin_mm"),
        title_pt=number("title_pt"),
        subtitle_pt=number("subtitle_pt"),
        body_pt=number("body_pt"),
        table_pt=number("table_pt"),
        small_pt=number("small_pt"),
        qr_mm=number("qr_mm"),
        time_format=str(page.get("time_format", "%Y-%m-%d %H:%M")),
        bilingual=str(page.get("bilingual", "{zh} {en}")),
        labels=texts("labels", REQUIRED_LABELS),
        footer=texts("footer", REQUIRED_FOOTER),
        test_page=texts("test_page", REQUIRED_TEST_PAGE),
        source=path,
    )


@functools.lru_cache(maxsize=1)
def default_layout() -> Layout:
    return load_layout()


@functools.lru_cache(maxsize=8)
def _cmap(path: Path, index: int) -> frozenset[int]:
    """The code points a font can draw (read once per font file)."""
    from fontTools.ttLib import TTFont

    kwargs: dict[str, Any] = {"lazy": True}
    if path.suffix.lower() in (".ttc", ".otc"):
        kwargs["fontNumber"] = index
    font = TTFont(str(path), **kwargs)
    try:
        return frozenset(font.getBestCmap() or {})
    finally:
        font.close()


# -- the data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    kind: str
    title_zh: str
    title_en: str
    holder_name: str
    id_number: str
    issuer: str
    issued_at: dt.datetime
    verification_code: str
    verify_url: str
    summary: list[tuple[str, str]]
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]

    def texts(self) -> list[tuple[str, str]]:
        """(field, text) of everything printed from the data, for the glyph check."""
        out = [("title.zh-CN", self.title_zh), ("title.en", self.title_en), ("holder.name", self.holder_name),
               ("holder.id_number", self.id_number), ("issuer", self.issuer),
               ("verification_code", self.verification_code)]
        out += [(f"summary[{i}]", f"{k}{v}") for i, (k, v) in enumerate(self.summary)]
        out += [(f"table.columns[{i}]", c) for i, c in enumerate(self.columns)]
        out += [(f"table.rows[{i}]", "".join(r)) for i, r in enumerate(self.rows)]
        out += [(f"notes[{i}]", n) for i, n in enumerate(self.notes)]
        return out


def _text(value: Any, name: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise CertificateDataError(name, f"must be text, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise CertificateDataError(name, "is empty")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise CertificateDataError(name, "holds control characters")
    return value


def _cell(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise CertificateDataError(name, "must be text or a number, not a boolean")
    if isinstance(value, (int, float)):
        return f"{value:.2f}" if isinstance(value, float) else str(value)
    return _text(value, name, required=False)


def _mapping(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    if key not in data:
        raise CertificateDataError(prefix + key, "is missing")
    value = data[key]
    if not isinstance(value, Mapping):
        raise CertificateDataError(prefix + key, f"must be a table of keys, not {type(value).__name__}")
    return value


def _time(value: Any, name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CertificateDataError(name, "must be an ISO 8601 time such as 2026-11-27T10:00:00+08:00")


def parse_certificate(data: Mapping[str, Any]) -> Certificate:
    """Check the platform's certificate data; CertificateDataError names the first bad field.

    Keys: kind (the catalogue item id, lower-case, also the print job's title), title {zh-CN, en},
    holder {name, id_number (masked, e.g. 110101********1234)}, issuer, issued_at (ISO
    8601), verification_code, verify_url (https), and optionally summary [[label, value],
    ...], table {columns [...], rows [[...], ...]} and notes [...].
    """
    if not isinstance(data, Mapping):
        raise CertificateDataError("(certificate)", f"must be a table of keys, not {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise CertificateDataError(unknown[0], f"is not a certificate key (known: {', '.join(sorted(_KEYS))})")
    for key in ("kind", "issuer", "issued_at", "verification_code", "verify_url"):
        if key not in data:
            raise CertificateDataError(key, "is missing")
    kind = data["kind"]
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise CertificateDataError("kind", "must be a lower-case identifier (the catalogue item id) such as social-insurance-record")
    title = _mapping(data, "title")
    holder = _mapping(data, "holder")
    for key in holder:
        if key not in ("name", "id_number"):
            raise CertificateDataError(f"holder.{key}", "is not a holder key (known: name, id_number)")
    if "name" not in holder:
        raise CertificateDataError("holder.name", "is missing")
    if "id_number" not in holder:
        raise CertificateDataError("holder.id_number", "is missing")
    id_number = _text(holder["id_number"], "holder.id_number")
    if "*" not in id_number:
        raise CertificateDataError("holder.id_number", "must arrive masked (e.g. 110101********1234): "
                                   "certificates never print a full ID number")
    code = _text(data["verification_code"], "verification_code")
    if not _CODE.fullmatch(code):
        raise CertificateDataError("verification_code", "must be 4-64 ASCII letters, digits or '-'")
    url = _text(data["verify_url"], "verify_url")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise CertificateDataError("verify_url", "must be an http(s) URL of the platform's verification page")

    summary: list[tuple[str, str]] = []
    raw_summary = data.get("summary") or []
    if not isinstance(raw_summary, Sequence) or isinstance(raw_summary, str):
        raise CertificateDataError("summary", "must be a list of [label, value] pairs")
    for i, pair in enumerate(raw_summary):
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise CertificateDataError(f"summary[{i}]", "must be a [label, value] pair")
        summary.append((_text(pair[0], f"summary[{i}][0]"), _cell(pair[1], f"summary[{i}][1]")))

    columns: list[str] = []
    rows: list[list[str]] = []
    if data.get("table") is not None:
        table = _mapping(data, "table")
        for key in table:
            if key not in ("columns", "rows"):
                raise CertificateDataError(f"table.{key}", "is not a table key (known: columns, rows)")
        raw_columns = table.get("columns")
        if not isinstance(raw_columns, Sequence) or isinstance(raw_columns, str) or not raw_columns:
            raise CertificateDataError("table.columns", "must be a non-empty list of column names")
        columns = [_text(c, f"table.columns[{i}]") for i, c in enumerate(raw_columns)]
        raw_rows = table.get("rows", [])
        if not isinstance(raw_rows, Sequence) or isinstance(raw_rows, str):
            raise CertificateDataError("table.rows", "must be a list of rows")
        for i, row in enumerate(raw_rows):
            if not isinstance(row, Sequence) or isinstance(row, str):
                raise CertificateDataError(f"table.rows[{i}]", "must be a list of cells")
            if len(row) != len(columns):
                raise CertificateDataError(f"table.rows[{i}]", f"has {len(row)} cells but table.columns "
                                           f"names {len(columns)}")
            rows.append([_cell(c, f"table.rows[{i}][{j}]") for j, c in enumerate(row)])

    raw_notes = data.get("notes") or []
    if not isinstance(raw_notes, Sequence) or isinstance(raw_notes, str):
        raise CertificateDataError("notes", "must be a list of texts")
    notes = [_text(n, f"notes[{i}]") for i, n in enumerate(raw_notes)]

    return Certificate(
        kind=kind,
        title_zh=_text(title.get("zh-CN"), "title.zh-CN"),
        title_en=_text(title.get("en"), "title.en", required=False),
        holder_name=_text(holder["name"], "holder.name"),
        id_number=id_number,
        issuer=_text(data["issuer"], "issuer"),
        issued_at=_time(data["issued_at"], "issued_at"),
        verification_code=code,
        verify_url=url,
        summary=summary,
        columns=columns,
        rows=rows,
        notes=notes,
    )


def job_title(data: Mapping[str, Any]) -> str:
    """The print job's title: the document's kind, never anything personal."""
    return parse_certificate(data).kind


# -- drawing --------------------------------------------------------------------------------------------
class _Document(FPDF):
    """An A4 page set with the layout's fonts, a footer on every page and an optional running header."""

    def __init__(self, layout: Layout, terminal_id: str, printed_at: dt.datetime,
                 texts: Sequence[tuple[str, str]]) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.layout = layout
        self.terminal_id = terminal_id
        self.printed_at = printed_at
        self.running_left = ""
        self.running_right = ""
        self.show_footer = True
        m = layout.margin_mm
        self.set_margins(m, m, m)
        self.set_auto_page_break(True, margin=m)
        self.alias_nb_pages()
        self.c_margin = 1.0
        self.set_creation_date(printed_at if printed_at.tzinfo else printed_at.astimezone())
        self.set_creator("kiosk (24 小时不打烊 self-service terminal)")
        self._add_fonts(texts)

    def _add_fonts(self, texts: Sequence[tuple[str, str]]) -> None:
        """The first font always; the others only when the text needs characters it lacks."""
        layout = self.layout
        primary = layout.fonts[0]
        self.add_font(_FAMILY, fname=str(primary), collection_font_number=self._index(primary))
        missing: dict[int, str] = {}
        covered = _cmap(primary, self._index(primary))
        for name, text in texts:
            for ch in text:
                if not ch.isspace() and ord(ch) not in covered:
                    missing.setdefault(ord(ch), name)
        fallbacks: list[str] = []
        for n, path in enumerate(layout.fonts[1:], start=1):
            if not missing:
                break
            cmap = _cmap(path, self._index(path))
            if any(cp in cmap for cp in missing):
                family = f"{_FAMILY}{n}"
                self.add_font(family, fname=str(path), collection_font_number=self._index(path))
                fallbacks.append(family)
                missing = {cp: name for cp, name in missing.items() if cp not in cmap}
        if missing:
            cp, name = next(iter(missing.items()))
            raise MissingGlyphs(name, f"character U+{cp:04X} is in none of the fonts of {layout.source} "
                                "[page] fonts; add a font that has it (e.g. fonts-droid-fallback)")
        if fallbacks:
            self.set_fallback_fonts(fallbacks, exact_match=False)

    def _index(self, path: Path) -> int:
        return self.layout.font_index if path.suffix.lower() in (".ttc", ".otc") else 0

    def header(self) -> None:
        if self.page_no() == 1 or not self.running_left:
            return
        m, layout = self.layout.margin_mm, self.layout
        self.set_font(_FAMILY, size=layout.small_pt)
        self.set_text_color(90)
        self.set_xy(m, m - 9)
        self.cell(A4_W - 2 * m, 4, self.running_left, align="L")
        self.set_xy(m, m - 9)
        self.cell(A4_W - 2 * m, 4, self.running_right, align="R")
        self.set_draw_color(160)
        self.set_line_width(0.2)
        self.line(m, m - 4, A4_W - m, m - 4)
        self.set_text_color(0)
        self.set_xy(m, m)

    def footer(self) -> None:
        if not self.show_footer:
            return
        m, layout = self.layout.margin_mm, self.layout
        when = self.printed_at.strftime(layout.time_format)
        width = A4_W - 2 * m
        self.set_draw_color(160)
        self.set_line_width(0.2)
        self.line(m, A4_H - m + 3, A4_W - m, A4_H - m + 3)
        self.set_font(_FAMILY, size=layout.small_pt)
        self.set_text_color(60)
        for row, lang in enumerate(LANGUAGES):
            y = A4_H - m + 4.5 + row * 3.8
            left = (f"{layout.text('footer', 'terminal', lang, terminal_id=self.terminal_id)}  "
                    f"{layout.text('footer', 'printed_at', lang, printed_at=when)}")
            right = layout.text("footer", "page", lang, page=self.page_no(), pages=self.str_alias_nb_pages)
            self.set_xy(m, y)
            self.cell(width, 3.5, left, align="L")
            self.set_xy(m, y)
            self.cell(width, 3.5, right, align="R")
        self.set_text_color(0)

    def bold_cell(self, w: float, h: float, text: str, align: str = "C") -> None:
        """Faux bold (fill + thin stroke): the Chinese fonts here have no bold face."""
        with self.local_context(text_mode="FILL_STROKE", line_width=0.18):
            self.multi_cell(w, h, text, align=align, new_x="LMARGIN", new_y="NEXT")

    def qr(self, data: str, x: float, y: float, size: float) -> None:
        """A QR code as filled squares (merged along rows), with its 4-module quiet zone inside `size`."""
        code = segno.make(data, error="m", micro=False)
        rows = [list(r) for r in code.matrix_iter(scale=1, border=4)]
        module = size / len(rows)
        self.set_fill_color(0)
        for r, row in enumerate(rows):
            c = 0
            while c < len(row):
                if row[c]:
                    start = c
                    while c < len(row) and row[c]:
                        c += 1
                    # a hair taller than a module, so rasterisers leave no seams between rows
                    self.rect(x + start * module, y + r * module, (c - start) * module, module + 0.02, style="F")
                else:
                    c += 1


def _when(value: dt.datetime | str, name: str) -> dt.datetime:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise CertificateError(f"{name} must be an ISO 8601 time, not {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise CertificateError(f"{name} must be a datetime")
    return value


def _terminal(terminal_id: str) -> str:
    if not isinstance(terminal_id, str) or not terminal_id.strip():
        raise CertificateError("terminal_id must be the terminal's id as enrolled (non-empty text)")
    return terminal_id.strip()


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+%?", text))


def _column_widths(pdf: FPDF, columns: Sequence[str], rows: Sequence[Sequence[str]], total: float) -> list[float]:
    """Each column as wide as its widest text (first 200 rows), scaled to the usable width."""
    widths = [pdf.get_string_width(c) for c in columns]
    for row in rows[:200]:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], pdf.get_string_width(cell))
    widths = [w + 4 for w in widths]
    scale = total / sum(widths)
    return [w * scale for w in widths]


def render_certificate(data: Mapping[str, Any], terminal_id: str, printed_at: dt.datetime | str,
                       layout: Layout | None = None) -> bytes:
    """The certificate as PDF bytes (see the module notes); CertificateDataError for bad data."""
    cert = parse_certificate(data)
    layout = layout or default_layout()
    terminal_id = _terminal(terminal_id)
    printed = _when(printed_at, "printed_at")
    pdf = _Document(layout, terminal_id, printed, cert.texts() + [("terminal_id", terminal_id)])
    pdf.set_title(cert.title_zh)
    pdf.set_subject(cert.kind)
    m = layout.margin_mm
    width = A4_W - 2 * m
    pdf.running_left = f"{cert.title_zh}（{layout.label('continued')}）"
    pdf.running_right = f"{layout.label('verification_code')} {cert.verification_code}"
    pdf.add_page()

    # title, centred between the QR code's column and its mirror on the left
    qr = layout.qr_mm
    pdf.qr(cert.verify_url, A4_W - m - qr, m, qr)
    pdf.set_font(_FAMILY, size=layout.small_pt)
    pdf.set_xy(A4_W - m - qr - 6, m + qr)
    pdf.cell(qr + 6, 3.5, f"{layout.text('labels', 'verification_code', 'zh-CN')} {cert.verification_code}",
             align="C")
    title_w = width - 2 * (qr + 4)
    pdf.set_xy(m + qr + 4, m + 5)
    pdf.set_font(_FAMILY, size=layout.title_pt)
    pdf.bold_cell(title_w, layout.title_pt * 0.5, cert.title_zh)
    if cert.title_en:
        pdf.set_x(m + qr + 4)
        pdf.set_font(_FAMILY, size=layout.subtitle_pt)
        pdf.set_text_color(70)
        pdf.multi_cell(title_w, layout.subtitle_pt * 0.5, cert.title_en, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    pdf.set_y(max(pdf.get_y(), m + qr + 4) + 4)

    # holder and summary: label | value | label | value
    pairs = [(layout.label("holder_name"), cert.holder_name), (layout.label("id_number"), cert.id_number)]
    pairs += cert.summary
    _caption(pdf, layout, "summary")
    pdf.set_font(_FAMILY, size=layout.body_pt)
    label_style = FontFace(emphasis="", fill_color=(238, 238, 238))
    with pdf.table(col_widths=(27, 23, 27, 23), width=width, first_row_as_headings=False,
                   line_height=layout.body_pt * 0.55, text_align="LEFT", wrapmode=WrapMode.CHAR,
                   padding=(1.2, 1.5)) as table:
        for i in range(0, len(pairs), 2):
            row = table.row()
            for label, value in pairs[i:i + 2]:
                row.cell(label, style=label_style)
                row.cell(value)
            if len(pairs[i:i + 2]) == 1:
                row.cell("", style=label_style)
                row.cell("")
    pdf.ln(4)

    if cert.columns:
        _caption(pdf, layout, "table")
        pdf.set_font(_FAMILY, size=layout.table_pt)
        widths = _column_widths(pdf, cert.columns, cert.rows, width)
        numeric = [bool(cert.rows) and all(_is_number(r[i]) or not r[i] for r in cert.rows)
                   for i in range(len(cert.columns))]
        align = tuple("RIGHT" if n else "CENTER" for n in numeric)
        with pdf.table(col_widths=widths, width=width, text_align=align, wrapmode=WrapMode.CHAR,
                       line_height=layout.table_pt * 0.55, padding=(1, 1.2),
                       repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
                       headings_style=FontFace(emphasis="", fill_color=(225, 225, 225))) as table:
            heading = table.row()
            for name in cert.columns:
                heading.cell(name, align="CENTER")
            for cells in cert.rows:
                row = table.row()
                for cell in cells:
                    row.cell(cell)
        pdf.ln(4)

    if cert.notes:
        _caption(pdf, layout, "notes")
        pdf.set_font(_FAMILY, size=layout.body_pt)
        for n, note in enumerate(cert.notes, start=1):
            pdf.multi_cell(width, layout.body_pt * 0.55, f"{n}. {note}", new_x="LMARGIN", new_y="NEXT",
                           wrapmode=WrapMode.CHAR)
        pdf.ln(3)

    # issuer and verification, kept together on one page
    pdf.set_font(_FAMILY, size=layout.body_pt)
    line = layout.body_pt * 0.6
    needed = 3 * line + 2 * layout.small_pt * 0.5 + 6
    if pdf.get_y() + needed > A4_H - m:
        pdf.add_page()
    pdf.ln(2)
    issued = cert.issued_at.strftime(layout.time_format)
    pdf.cell(width, line, f"{layout.label('issuer')}：{cert.issuer}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(width, line, f"{layout.label('issued_at')}：{issued}", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    host = urlsplit(cert.verify_url).netloc
    pdf.set_font(_FAMILY, size=layout.small_pt)
    pdf.set_text_color(60)
    for lang in LANGUAGES:
        pdf.multi_cell(width, layout.small_pt * 0.5, layout.text("labels", "verify", lang, host=host),
                       new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR if lang == "zh-CN" else WrapMode.WORD)
    pdf.set_text_color(0)
    return bytes(pdf.output())


def _caption(pdf: _Document, layout: Layout, key: str) -> None:
    if pdf.get_y() + 20 > A4_H - layout.margin_mm:  # a caption never sits alone at a page's foot
        pdf.add_page()
    pdf.set_font(_FAMILY, size=layout.body_pt + 1)
    pdf.bold_cell(A4_W - 2 * layout.margin_mm, layout.body_pt * 0.6, layout.label(key), align="L")
    pdf.ln(1)


# -- the technicians' test page -------------------------------------------------------------------------
def test_page(terminal_id: str, location: str, printed_at: dt.datetime | str, layout: Layout | None = None) -> bytes:
    """One A4 page to judge a printer by: frames at 5 and 10 mm, rulers, a 100 mm square,
    Chinese text at several sizes, a grey scale and a QR code naming the terminal and time."""
    layout = layout or default_layout()
    terminal_id = _terminal(terminal_id)
    printed = _when(printed_at, "printed_at")
    location = location.strip() if isinstance(location, str) else ""
    texts = [(f"test_page.{k}", layout.label(k, "test_page")) for k in layout.test_page]
    texts += [("location", location), ("terminal_id", terminal_id)]
    pdf = _Document(layout, terminal_id, printed, texts)
    pdf.set_title(layout.text("test_page", "title", "zh-CN"))
    pdf.set_subject("a4_test_page")
    pdf.set_auto_page_break(False)
    pdf.show_footer = False  # the page states terminal and time itself; a footer would cross the frames
    pdf.add_page()
    def t(key: str) -> str:
        return layout.label(key, "test_page")

    # frames 5 and 10 mm inside the paper's edges, with corner marks on the inner one
    pdf.set_draw_color(0)
    pdf.set_line_width(0.3)
    pdf.rect(5, 5, A4_W - 10, A4_H - 10)
    pdf.set_line_width(0.15)
    pdf.rect(10, 10, A4_W - 20, A4_H - 20)
    pdf.set_line_width(0.4)
    for cx, dx in ((10, 1), (A4_W - 10, -1)):
        for cy, dy in ((10, 1), (A4_H - 10, -1)):
            pdf.line(cx, cy, cx + 8 * dx, cy)
            pdf.line(cx, cy, cx, cy + 8 * dy)

    # rulers: along the top (x from 10 to 200 mm) and down the left side (y from 20 to 280 mm)
    pdf.set_font(_FAMILY, size=5.5)
    pdf.set_line_width(0.12)
    for mm in range(10, 201):
        tick = 4 if mm % 10 == 0 else 2.5 if mm % 5 == 0 else 1.5
        pdf.line(mm, 10, mm, 10 + tick)
        if mm % 10 == 0 and 10 < mm < 200:
            pdf.set_xy(mm - 3, 14.2)
            pdf.cell(6, 2.2, str(mm), align="C")
    for mm in range(20, 281):
        tick = 4 if mm % 10 == 0 else 2.5 if mm % 5 == 0 else 1.5
        pdf.line(10, mm, 10 + tick, mm)
        if mm % 10 == 0 and mm < 280:
            pdf.set_xy(14.3, mm - 1.1)
            pdf.cell(6, 2.2, str(mm), align="L")

    left, width = 24.0, A4_W - 24.0 - 14.0
    pdf.set_xy(left, 22)
    pdf.set_font(_FAMILY, size=layout.title_pt)
    pdf.bold_cell(width, layout.title_pt * 0.5, t("title"), align="L")
    pdf.ln(2)
    pdf.set_font(_FAMILY, size=layout.body_pt)
    when = printed.strftime(layout.time_format)
    font_name = f"{layout.fonts[0].name} (#{layout.font_index})" if layout.fonts[0].suffix.lower() == ".ttc" \
        else layout.fonts[0].name
    for key, value in (("terminal", terminal_id), ("location", location or "-"), ("printed_at", when),
                       ("font", font_name)):
        pdf.set_x(left)
        pdf.cell(width - layout.qr_mm - 6, layout.body_pt * 0.6, f"{t(key)}：{value}", new_x="LMARGIN", new_y="NEXT")
    qr_text = f"KIOSK-A4-TEST terminal={terminal_id} printed={printed.isoformat(timespec='seconds')}"
    pdf.qr(qr_text, A4_W - 14 - layout.qr_mm, 22, layout.qr_mm)

    # Chinese at several sizes, English once
    pdf.set_xy(left, max(pdf.get_y() + 2, 56))
    for size in (8, 10, 12):
        pdf.set_font(_FAMILY, size=size)
        pdf.set_x(left)
        pdf.multi_cell(width, size * 0.48, f"{size} pt  {layout.text('test_page', 'sample', 'zh-CN')}",
                       wrapmode=WrapMode.CHAR, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(0.8)
    pdf.set_font(_FAMILY, size=10)
    pdf.set_x(left)
    pdf.multi_cell(width, 4.8, layout.text("test_page", "sample", "en"), align="L", new_x="LMARGIN", new_y="NEXT")

    # a 100 mm square centred on the page: its sides prove the scaling, the cross marks the centre
    side = 100.0
    sx, sy = (A4_W - side) / 2, (A4_H - side) / 2
    pdf.set_line_width(0.3)
    pdf.rect(sx, sy, side, side)
    pdf.set_line_width(0.15)
    pdf.line(A4_W / 2 - 6, A4_H / 2, A4_W / 2 + 6, A4_H / 2)
    pdf.line(A4_W / 2, A4_H / 2 - 6, A4_W / 2, A4_H / 2 + 6)
    pdf.set_font(_FAMILY, size=layout.body_pt)
    pdf.set_y(sy + 12)
    for key in ("square", "frames"):
        for lang in LANGUAGES:
            pdf.set_x(sx + 5)
            pdf.multi_cell(side - 10, layout.body_pt * 0.55, layout.text("test_page", key, lang), align="C",
                           new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    # grey scale: ten steps from light grey to black
    gy = sy + side + 8
    pdf.set_font(_FAMILY, size=layout.small_pt)
    pdf.set_xy(left, gy)
    pdf.cell(30, 8, t("grey"))
    step = (width - 32) / 10
    pdf.set_line_width(0.1)
    for i in range(10):
        level = round(255 * (1 - (i + 1) / 10))
        pdf.set_fill_color(level)
        pdf.rect(left + 32 + i * step, gy, step, 8, style="DF")

    pdf.set_xy(left, gy + 14)
    pdf.set_font(_FAMILY, size=layout.body_pt)
    pdf.multi_cell(width, layout.body_pt * 0.55, layout.text("test_page", "check", "zh-CN"), wrapmode=WrapMode.CHAR,
                   align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_x(left)
    pdf.multi_cell(width, layout.body_pt * 0.55, layout.text("test_page", "check", "en"), align="L",
                   new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


test_page.__test__ = False  # type: ignore[attr-defined]  # a page for technicians, not a pytest test
