"""Receipt templates (config/receipts.toml) filled into printable documents.

The templates say what a receipt holds and in which order, zh-CN first with English
beside it; this module checks them when they are loaded (an unknown placeholder or a bad
block is an error naming the template and the block), and fills one with the visit's
values for one language into a devices.receipt_printer.document.Document, which any
receipt printer driver prints.

Placeholders are a fixed, documented set (`PLACEHOLDERS`): a value the code passes that
is not one of them, or a placeholder a template uses that the code does not pass, is a
`ReceiptValuesError` naming both, so a renamed key fails at once in tests, not on paper.

No Kivy here: the handout worker and the tests use it without a screen.
"""
from __future__ import annotations

import datetime
import functools
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

import config
from devices.receipt_printer.document import (
    Align,
    Document,
    ErrorCorrection,
    text_columns,
)

RECEIPTS_FILE = Path(config.__file__).with_name("receipts.toml")
LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True)
class Placeholder:
    kind: Literal["text", "list", "flag"]
    meaning: str
    fields: tuple[str, ...] = ()  # a list's item fields; a plain string item fills the first


PLACEHOLDERS: dict[str, Placeholder] = {
    "terminal_id": Placeholder("text", "the terminal's enrolled identity"),
    "location": Placeholder("text", "where the terminal stands"),
    "printed_at": Placeholder("text", "when the receipt is printed (a datetime is formatted)"),
    "accepted_at": Placeholder("text", "when the application was accepted (a datetime is formatted)"),
    "receipt_number": Placeholder("text", "the application's receipt number (受理编号)"),
    "service_title": Placeholder("text", "the service applied for, in the receipt's language"),
    "applicant": Placeholder("text", "the applicant's name, masked (张*三)"),
    "departments": Placeholder("list", "the departments that handle the application", ("department",)),
    "commitments": Placeholder("list", "materials promised for later (告知承诺), with their deadlines",
                               ("material", "deadline")),
    "progress_url": Placeholder("text", "the page where the citizen follows the application (the QR code)"),
    "queued": Placeholder("flag", "true while the application waits in the terminal's outbox"),
    "ticket_number": Placeholder("text", "the queue number (排队号)"),
    "waiting_ahead": Placeholder("text", "how many people wait before this ticket"),
    "counter": Placeholder("text", "the window or area where the number is called"),
    "status": Placeholder("text", "the application's current state, in words"),
    "steps": Placeholder("list", "the application's history", ("time", "step")),
    "printer_settings": Placeholder("text", "a test print: the port and settings the printer was driven with"),
    "check_code": Placeholder("text", "a test print: what a technician's phone must show on scanning its QR code"),
}
ITEM_EXTRAS = ("n",)  # also available inside a list item: its number, from 1


class ReceiptTemplateError(ValueError):
    """config/receipts.toml is wrong; the message names the template and block."""


class ReceiptValuesError(ValueError):
    """The values given to fill a template do not match its placeholders."""


# -- the template format ---------------------------------------------------------------------
class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    when: str | None = Field(default=None, description="print only when this placeholder is true/non-empty")
    unless: str | None = Field(default=None, description="print only when this placeholder is false/empty")


class _Words(_Block):
    zh_cn: str = Field(alias="zh-CN")
    en: str


class TextBlock(_Words):
    type: Literal["text"]
    align: Align = Align.LEFT
    bold: bool = False
    underline: Literal[0, 1, 2] = 0
    size: Literal["normal", "wide", "tall", "double"] = "normal"
    indent: int | Literal["label"] = Field(
        default=0, description="hanging indent of continuation lines: columns, or 'label' to align them "
        "after the first '：' or ': '")


class _Fallback(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    zh_cn: str = Field(alias="zh-CN")
    en: str


class ListBlock(_Words):
    type: Literal["list"]
    items: str
    fallback: _Fallback | None = Field(
        default=None, description="the item text when a field the main text uses is empty for that item")
    indent: int | Literal["label"] = 0
    align: Align = Align.LEFT


class RuleBlock(_Block):
    type: Literal["rule"]
    char: str = "-"


class QrBlock(_Block):
    type: Literal["qr"]
    data: str
    module_size: int = Field(default=6, ge=1, le=16)
    error_correction: ErrorCorrection = ErrorCorrection.M
    align: Align = Align.CENTER


class FeedBlock(_Block):
    type: Literal["feed"]
    lines: int = Field(default=1, ge=1, le=20)


class CutBlock(_Block):
    type: Literal["cut"]
    partial: bool = True


AnyBlock = Union[TextBlock, ListBlock, RuleBlock, QrBlock, FeedBlock, CutBlock]
_BLOCK_TYPES: dict[str, type[BaseModel]] = {
    "text": TextBlock, "list": ListBlock, "rule": RuleBlock, "qr": QrBlock, "feed": FeedBlock, "cut": CutBlock,
}


@dataclass(frozen=True)
class Template:
    name: str
    title: dict[str, str]
    blocks: tuple[AnyBlock, ...]

    def placeholders(self) -> set[str]:
        """The values filling this template needs."""
        used: set[str] = set()
        for block in self.blocks:
            used |= _block_placeholders(block)
        return used


def _fields(text: str) -> list[str]:
    """Placeholder names in a str.format text; only plain names are allowed."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} must be a plain name such as {{receipt_number}}")
        names.append(name)
    return names


def _texts(block: AnyBlock) -> list[str]:
    if isinstance(block, ListBlock):
        fallback = [block.fallback.zh_cn, block.fallback.en] if block.fallback else []
        return [block.zh_cn, block.en, *fallback]
    if isinstance(block, TextBlock):
        return [block.zh_cn, block.en]
    if isinstance(block, QrBlock):
        return [block.data]
    return []


def _block_placeholders(block: AnyBlock) -> set[str]:
    used = {name for name in (block.when, block.unless) if name}
    if isinstance(block, ListBlock):
        used.add(block.items)
        item_fields = set(PLACEHOLDERS[block.items].fields) | set(ITEM_EXTRAS)
        for text in _texts(block):
            used |= {name for name in _fields(text) if name not in item_fields}
        return used
    for text in _texts(block):
        used |= set(_fields(text))
    return used


def _check_block(block: AnyBlock) -> None:
    """Placeholder rules beyond the schema; ValueError says what is wrong."""
    for name in (block.when, block.unless):
        if name is not None and name not in PLACEHOLDERS:
            raise ValueError(f"'when'/'unless' names unknown placeholder {name!r}; known: {', '.join(PLACEHOLDERS)}")
    if isinstance(block, ListBlock):
        if PLACEHOLDERS.get(block.items, Placeholder("text", "")).kind != "list":
            lists = [k for k, v in PLACEHOLDERS.items() if v.kind == "list"]
            raise ValueError(f"items = {block.items!r} is not a list placeholder; lists: {', '.join(lists)}")
        allowed = set(PLACEHOLDERS[block.items].fields) | set(ITEM_EXTRAS)
    else:
        allowed = set()
    if isinstance(block, RuleBlock) and not (len(block.char) == 1 and block.char.isascii()
                                             and block.char.isprintable()):
        raise ValueError(f"a rule is drawn with one printable ASCII character, not {block.char!r}")
    for text in _texts(block):
        for name in _fields(text):
            if name in allowed:
                continue
            known = PLACEHOLDERS.get(name)
            if known is None:
                hint = f"; in this list also {', '.join(sorted(allowed))}" if allowed else ""
                raise ValueError(f"unknown placeholder {{{name}}}; known: {', '.join(PLACEHOLDERS)}{hint}")
            if known.kind == "list":
                raise ValueError(f"{{{name}}} is a list: print it with a block of type = \"list\", items = \"{name}\"")
            if isinstance(block, QrBlock) and known.kind != "text":
                raise ValueError(f"QR data can only hold text placeholders, not {{{name}}}")


def _describe(index: int, raw: Any) -> str:
    kind = raw.get("type") if isinstance(raw, dict) else None
    return f"block {index}" + (f" (type {kind})" if kind else "")


def parse_templates(raw: dict[str, Any], source: str = str(RECEIPTS_FILE)) -> dict[str, Template]:
    """Validate the receipts file's contents; every problem names template and block."""
    receipts = raw.get("receipt")
    if not isinstance(receipts, dict) or not receipts:
        raise ReceiptTemplateError(f"{source}: no [receipt.<name>] tables")
    unknown_top = set(raw) - {"receipt"}
    if unknown_top:
        raise ReceiptTemplateError(f"{source}: unknown top-level keys {', '.join(sorted(unknown_top))}")
    templates: dict[str, Template] = {}
    for name, table in receipts.items():
        where = f"{source}: receipt template {name!r}"
        if not isinstance(table, dict):
            raise ReceiptTemplateError(f"{where} must be a table")
        extra = set(table) - {"title", "blocks"}
        if extra:
            raise ReceiptTemplateError(f"{where}: unknown keys {', '.join(sorted(extra))}; a template has "
                                       "title and blocks")
        title = table.get("title")
        if not isinstance(title, dict) or set(title) != set(LANGUAGES) or not all(
                isinstance(v, str) and v for v in title.values()):
            raise ReceiptTemplateError(f"{where}: title must have exactly zh-CN and en texts")
        raw_blocks = table.get("blocks")
        if not isinstance(raw_blocks, list) or not raw_blocks:
            raise ReceiptTemplateError(f"{where}: no blocks (add [[receipt.{name}.blocks]] tables)")
        blocks: list[AnyBlock] = []
        for index, item in enumerate(raw_blocks, start=1):
            label = f"{where}, {_describe(index, item)}"
            if not isinstance(item, dict) or item.get("type") not in _BLOCK_TYPES:
                raise ReceiptTemplateError(f"{label}: type must be one of {', '.join(_BLOCK_TYPES)}")
            try:
                block = _BLOCK_TYPES[item["type"]].model_validate(item)
                _check_block(block)  # type: ignore[arg-type]
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'block'}: {e['msg']}" for e in exc.errors())
                raise ReceiptTemplateError(f"{label}: {problems}") from None
            except ValueError as exc:
                raise ReceiptTemplateError(f"{label}: {exc}") from None
            blocks.append(block)  # type: ignore[arg-type]
        if not isinstance(blocks[-1], CutBlock):
            raise ReceiptTemplateError(f"{where}: the last block must be type = \"cut\", or receipts run together")
        templates[name] = Template(name, dict(title), tuple(blocks))
    return templates


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime: float) -> dict[str, Template]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ReceiptTemplateError(f"{path}: not valid TOML ({exc})") from None
    return parse_templates(raw, str(path))


def load(path: Path = RECEIPTS_FILE) -> dict[str, Template]:
    """The templates, validated (cached until the file changes)."""
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise ReceiptTemplateError(f"{path} does not exist (it ships with the config package)") from None
    return _load_cached(path, mtime)


# -- filling ----------------------------------------------------------------------------------
def _as_text(name: str, value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ReceiptValuesError(f"{name} must be text, not {type(value).__name__}")
    return str(value)


def _items(name: str, value: Any) -> list[dict[str, str]]:
    fields = PLACEHOLDERS[name].fields
    if not isinstance(value, (list, tuple)):
        raise ReceiptValuesError(f"{name} must be a list, not {type(value).__name__}")
    items = []
    for i, item in enumerate(value, start=1):
        if isinstance(item, dict):
            unknown = set(item) - set(fields)
            if unknown:
                raise ReceiptValuesError(f"{name} item {i} has unknown fields {', '.join(sorted(unknown))}; "
                                         f"fields: {', '.join(fields)}")
            items.append({f: _as_text(f"{name} item {i} {f}", item.get(f, "")) for f in fields})
        else:
            first = _as_text(f"{name} item {i}", item)
            items.append({f: (first if f == fields[0] else "") for f in fields})
    return items


def _normalise(template: Template, values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(PLACEHOLDERS)
    if unknown:
        raise ReceiptValuesError(
            f"receipt {template.name!r}: unknown placeholder values {', '.join(sorted(unknown))}; "
            f"known: {', '.join(PLACEHOLDERS)}")
    missing = template.placeholders() - set(values)
    if missing:
        raise ReceiptValuesError(f"receipt {template.name!r} needs values for {', '.join(sorted(missing))}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        kind = PLACEHOLDERS[name].kind
        if kind == "list":
            out[name] = _items(name, value)
        elif kind == "flag":
            if not isinstance(value, bool):
                raise ReceiptValuesError(f"{name} must be true or false, not {value!r}")
            out[name] = value
        else:
            out[name] = _as_text(name, value)
    return out


def _label_indent(text: str) -> int:
    """Columns up to the end of the first '：' or ': ' label, for a hanging indent."""
    for mark in ("：", ": "):
        at = text.find(mark)
        if at >= 0:
            return text_columns(text[: at + len(mark)])
    return 0


def _shown(block: AnyBlock, values: dict[str, Any]) -> bool:
    if block.when is not None and not values[block.when]:
        return False
    return not (block.unless is not None and values[block.unless])


_SIZES = {"normal": (False, False), "wide": (True, False), "tall": (False, True), "double": (True, True)}


def fill(template: Template, values: dict[str, Any], language: str = "zh-CN") -> Document:
    """The receipt for these values in `language` ("zh-CN" or "en")."""
    if language not in LANGUAGES:
        raise ReceiptValuesError(f"language {language!r} unknown; receipts exist in {', '.join(LANGUAGES)}")
    data = _normalise(template, values)
    doc = Document()
    lang = "zh_cn" if language == "zh-CN" else "en"
    for block in template.blocks:
        if not _shown(block, data):
            continue
        if isinstance(block, TextBlock):
            text = getattr(block, lang).format(**data)
            wide, tall = _SIZES[block.size]
            indent = _label_indent(text) if block.indent == "label" else block.indent
            doc.text(text, align=block.align, bold=block.bold, underline=block.underline,
                     double_width=wide, double_height=tall, indent=indent)
        elif isinstance(block, ListBlock):
            for n, item in enumerate(data[block.items], start=1):
                fields = {**data, **item, "n": str(n)}
                main = getattr(block, lang)
                if block.fallback is not None and any(not item.get(f) for f in _fields(main) if f in item):
                    main = getattr(block.fallback, lang)
                text = main.format(**fields)
                indent = _label_indent(text) if block.indent == "label" else block.indent
                doc.text(text, align=block.align, indent=indent)
        elif isinstance(block, RuleBlock):
            doc.rule(block.char)
        elif isinstance(block, QrBlock):
            doc.qr(block.data.format(**data), module_size=block.module_size,
                   error_correction=block.error_correction, align=block.align)
        elif isinstance(block, FeedBlock):
            doc.feed(block.lines)
        elif isinstance(block, CutBlock):
            doc.cut(block.partial)
    return doc


def build(name: str, values: dict[str, Any], language: str = "zh-CN", path: Path = RECEIPTS_FILE) -> Document:
    """Load (cached) and fill the template `name` ("acceptance", "queue_ticket", "progress")."""
    templates = load(path)
    try:
        template = templates[name]
    except KeyError:
        raise ReceiptValuesError(f"no receipt template {name!r} in {path}; known: {', '.join(templates)}") from None
    return fill(template, values, language)
