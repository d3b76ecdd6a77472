"""The service catalogue as data: "一件事" bundles, services, certificates, lookups, appointments.

国发〔2024〕3号 (四) asks for related services to be merged into one "一件事": one lead
department with named cooperating departments, one merged form ("多表合一"), materials
submitted once, e-licences instead of paper ((九)), and materials that may be promised
later ("告知承诺+容缺办理", (五)). All of that lives in TOML under `data/`, so a new
service is a data change, never a code change.

Files: `data/catalogue.toml` and/or every `data/catalogue/*.toml` (read in name order).
Each may hold `[[item]]` tables and the registries the items refer to:
`[departments]` (id -> {zh-CN, en}), `[licence_types]` (id -> {zh-CN, en}) and
`[life_events]` (zh-CN name -> en name). A malformed file fails at load with a message
naming the file, the item and the field.

`load_catalogue()` returns the JSON-ready form served at GET /v1/catalogue; departments
are expanded to {"id", "zh-CN", "en"} so the platform can fan out by id and terminals
can show the names.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import threading
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from govplatform.residents import CODED_SOURCES, source_problem

DATA_DIR = Path(__file__).resolve().parent / "data"
log = logging.getLogger("govplatform.catalogue")

KINDS = ("bundle", "service", "certificate", "lookup", "appointment")
CATEGORIES = ("个人", "企业")
FIELD_TYPES = ("text", "date", "phone", "choice", "number")


class CatalogueError(ValueError):
    """The catalogue data is malformed; the message names the file, the item and the field."""


# -- models --------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Text(_Strict):
    """A user-facing text: zh-CN first, English beside it. Both are required."""

    zh_CN: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)


class Choice(_Strict):
    value: str = Field(min_length=1)
    label: Text


class FormField(_Strict):
    """One field of the merged form; `source` says where its value is prefilled from ("" = typed)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    type: Literal["text", "date", "phone", "choice", "number"]
    required: bool = True
    source: str  # required on purpose: every field states whether the state already knows it
    choices: list[Choice] | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, value: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("licence_types")
        problem = source_problem(value, known)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _choices(self) -> "FormField":
        if self.type == "choice":
            if not self.choices or len(self.choices) < 2:
                raise ValueError(f"key {self.key!r}: a choice field needs at least two choices")
            values = [c.value for c in self.choices]
            if len(set(values)) != len(values):
                raise ValueError(f"key {self.key!r}: choices repeat a value")
        elif self.choices is not None:
            raise ValueError(f"key {self.key!r}: choices are only for type = \"choice\"")
        if CODED_SOURCES.match(self.source) and self.type != "choice":
            raise ValueError(f"key {self.key!r}: source {self.source!r} gives a code, so the field must be a choice")
        return self


class Material(_Strict):
    """A material the application needs; an e-licence may replace it, or a promise may defer it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: Text
    e_licence: str | None = None  # a key of [licence_types]: the e-licence that replaces the paper
    promise_allowed: bool = False  # may be handed in later under a signed commitment (告知承诺+容缺办理)
    commitment: Text | None = None
    required: bool = True

    @field_validator("e_licence")
    @classmethod
    def _e_licence(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = (info.context or {}).get("licence_types")
        if value is not None and known is not None and value not in known:
            raise ValueError(f"unknown licence type {value!r}; known: {', '.join(sorted(known))}")
        return value

    @model_validator(mode="after")
    def _commitment(self) -> "Material":
        if self.promise_allowed and self.commitment is None:
            raise ValueError(f"material {self.id!r}: commitment (zh-CN and en) is required when promise_allowed = true")
        if not self.promise_allowed and self.commitment is not None:
            raise ValueError(f"material {self.id!r}: commitment is given but promise_allowed is false")
        return self


class Included(_Strict):
    """One of the services a bundle merges, and the department that handles it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: Text
    department: str


def _check_known(info: ValidationInfo, registry: str, value: str, what: str, hint: str = "known") -> None:
    """Refuse a value the catalogue's registry (departments, life events) does not list."""
    known = (info.context or {}).get(registry)
    if known is not None and value not in known:
        raise ValueError(f"unknown {what} {value!r}; {hint}: {', '.join(sorted(known))}")


class Item(_Strict):
    """A catalogue entry: a "一件事" bundle or a single service, certificate, lookup or appointment."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    kind: Literal["bundle", "service", "certificate", "lookup", "appointment"]
    title: Text
    category: Literal["个人", "企业"]
    life_event: str
    summary: Text
    notice: Text
    steps: list[Text] = Field(min_length=1)
    form: list[FormField] = Field(min_length=1)
    materials: list[Material] = []
    lead_department: str
    cooperating_departments: list[str] = []
    time_limit_days: int = Field(ge=0, le=365)  # 0: done on the spot (即办)
    includes: list[Included] = []

    @field_validator("life_event")
    @classmethod
    def _life_event(cls, value: str, info: ValidationInfo) -> str:
        _check_known(info, "life_events", value, "life event", "add it to [life_events] or use one of")
        return value

    @field_validator("lead_department")
    @classmethod
    def _lead(cls, value: str, info: ValidationInfo) -> str:
        _check_known(info, "departments", value, "department")
        return value

    @field_validator("cooperating_departments")
    @classmethod
    def _cooperating(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for dep in value:
            _check_known(info, "departments", dep, "department")
        if len(set(value)) != len(value):
            raise ValueError("a department is listed twice")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "Item":
        keys = [f.key for f in self.form]
        if len(set(keys)) != len(keys):
            raise ValueError(f"field form: two fields share a key ({', '.join(sorted({k for k in keys if keys.count(k) > 1}))})")
        ids = [m.id for m in self.materials]
        if len(set(ids)) != len(ids):
            raise ValueError("field materials: two materials share an id")
        if self.lead_department in self.cooperating_departments:
            raise ValueError("field cooperating_departments: the lead department is listed as cooperating too")
        involved = {self.lead_department, *self.cooperating_departments}
        for n, inc in enumerate(self.includes):
            if inc.department not in involved:
                raise ValueError(f"field includes[{n}].department: {inc.department!r} is neither the lead "
                                 "nor a cooperating department")
        if self.kind == "bundle":
            if len(self.includes) < 2:
                raise ValueError("field includes: a bundle merges at least two services")
            if not self.cooperating_departments:
                raise ValueError("field cooperating_departments: a bundle names its cooperating departments")
            if not self.materials:
                raise ValueError("field materials: a bundle lists its materials")
        return self


class Registry(_Strict):
    """What items refer to by id, collected from every catalogue file."""

    departments: dict[str, Text] = {}
    licence_types: dict[str, Text] = {}
    life_events: dict[str, str] = {}  # zh-CN name -> en name

    @field_validator("departments", "licence_types")
    @classmethod
    def _ids(cls, value: dict[str, Text]) -> dict[str, Text]:
        for key in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", key):
                raise ValueError(f"id {key!r} must be lower-case ASCII letters, digits and _")
        return value


# -- loading ------------------------------------------------------------------------------------
_extra_dir: Path | None = None  # a province's own items, beside the shipped ones (setting catalogue_dir)


def use_extra_dir(path: Path | None) -> None:
    """Serve the `*.toml` files of `path` too (read again whenever one changes); None: none."""
    global _extra_dir
    with _lock:
        _extra_dir = Path(path) if path is not None else None
        _cache.clear()


def catalogue_files(root: Path | None = None) -> list[Path]:
    """The TOML files making up the catalogue: `catalogue.toml` and `catalogue/*.toml` under `root`
    (the shipped data when None, plus the extra folder's `*.toml`)."""
    extra = sorted(_extra_dir.glob("*.toml")) if root is None and _extra_dir is not None else []
    root = Path(root) if root is not None else DATA_DIR
    if root.is_file():
        return [root]
    files = [root / "catalogue.toml"] if (root / "catalogue.toml").is_file() else []
    if (root / "catalogue").is_dir():
        files += sorted((root / "catalogue").glob("*.toml"))
    return (files or sorted(root.glob("*.toml"))) + extra


def _loc(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _problems(exc: ValidationError) -> str:
    """Pydantic errors as 'field <path>: <message>' (or the message when it names the field itself)."""
    out = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = _loc(tuple(err["loc"]))
        out.append(f"field {loc}: {msg}" if loc else msg)
    return "; ".join(out)


def _dump_text(text: Text) -> dict[str, str]:
    return {"zh-CN": text.zh_CN, "en": text.en}


def _department(dep_id: str, registry: Registry) -> dict[str, str]:
    return {"id": dep_id, **_dump_text(registry.departments[dep_id])}


def _dump_item(item: Item, registry: Registry) -> dict[str, Any]:
    """The JSON-ready form of an item: texts as {zh-CN, en}, departments expanded."""
    form = []
    for f in item.form:
        field: dict[str, Any] = {"key": f.key, "label": _dump_text(f.label), "type": f.type,
                                 "required": f.required, "source": f.source}
        if f.choices is not None:
            field["choices"] = [{"value": c.value, "label": _dump_text(c.label)} for c in f.choices]
        form.append(field)
    return {
        "id": item.id,
        "kind": item.kind,
        "title": _dump_text(item.title),
        "category": item.category,
        "life_event": item.life_event,
        "summary": _dump_text(item.summary),
        "notice": _dump_text(item.notice),
        "steps": [_dump_text(s) for s in item.steps],
        "form": form,
        "materials": [
            {"id": m.id, "title": _dump_text(m.title), "e_licence": m.e_licence,
             "promise_allowed": m.promise_allowed,
             "commitment": _dump_text(m.commitment) if m.commitment else None, "required": m.required}
            for m in item.materials
        ],
        "lead_department": _department(item.lead_department, registry),
        "cooperating_departments": [_department(d, registry) for d in item.cooperating_departments],
        "time_limit_days": item.time_limit_days,
        "includes": [{"id": i.id, "title": _dump_text(i.title), "department": _department(i.department, registry)}
                     for i in item.includes],
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read: {exc}") from None


def _build(root: Path | None) -> tuple[dict[str, Any], Registry]:
    files = catalogue_files(root)
    if not files:
        raise CatalogueError(f"{root or DATA_DIR}: no catalogue files (catalogue.toml or catalogue/*.toml)")
    raw_files = [(path, _read(path)) for path in files]

    # 1. registries from every file, so an item may refer to an id defined in another file
    merged: dict[str, dict[str, Any]] = {"departments": {}, "licence_types": {}, "life_events": {}}
    for path, raw in raw_files:
        unknown = set(raw) - {"item", *merged}
        if unknown:
            raise CatalogueError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                                 f"expected [[item]], {', '.join('[' + k + ']' for k in merged)}")
        for name in merged:
            table = raw.get(name, {})
            if not isinstance(table, dict):
                raise CatalogueError(f"{path}: [{name}] must be a table")
            for key, value in table.items():
                if key in merged[name]:
                    raise CatalogueError(f"{path}: [{name}] {key!r} is defined twice")
                merged[name][key] = value
            try:
                Registry.model_validate({name: table})
            except ValidationError as exc:
                raise CatalogueError(f"{path}: [{name}]: {_problems(exc)}") from None
    registry = Registry.model_validate(merged)
    context = {"departments": set(registry.departments), "licence_types": set(registry.licence_types),
               "life_events": set(registry.life_events)}

    # 2. items, each validated against the registries
    items: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for path, raw in raw_files:
        entries = raw.get("item", [])
        if not isinstance(entries, list):
            raise CatalogueError(f"{path}: items must be [[item]] tables")
        for n, entry in enumerate(entries):
            item_id = entry.get("id") if isinstance(entry, dict) else None
            where = f"{path}: item {item_id!r}" if item_id else f"{path}: item #{n + 1} (no id)"
            try:
                item = Item.model_validate(entry, context=context)
            except ValidationError as exc:
                raise CatalogueError(f"{where}: {_problems(exc)}") from None
            if item.id in seen:
                raise CatalogueError(f"{where}: field id: {item.id!r} is already used in {seen[item.id]}")
            seen[item.id] = path
            items.append(_dump_item(item, registry))
    if not items:
        raise CatalogueError(f"{root or DATA_DIR}: the catalogue holds no [[item]]")
    digest = hashlib.sha256(json.dumps(items, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    return {"version": digest[:16], "items": items}, registry


_Built = tuple[dict[str, Any], Registry, dict[str, dict[str, Any]]]
_cache: dict[Path, tuple[tuple[tuple[str, int], ...], _Built]] = {}
_lock = threading.Lock()


def _signature(root: Path | None) -> tuple[tuple[str, int], ...]:
    """Which files, as last changed: a new or edited file is read again, nothing else."""
    out = []
    for path in catalogue_files(root):
        try:
            out.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            out.append((str(path), -1))
    return tuple(out)


def _cached(root: Path | None) -> _Built:
    key = Path(root).resolve() if root is not None else DATA_DIR
    with _lock:
        signature = _signature(root)
        known = _cache.get(key)
        if known is None or known[0] != signature:
            try:
                catalogue, registry = _build(root)
            except CatalogueError:
                if known is None:
                    raise
                # a half-written or broken file must not take the service down: keep serving
                # the last good catalogue, and say why in the log until the file is fixed
                log.error("catalogue not reloaded, the last good one is served", exc_info=True)
                _cache[key] = (signature, known[1])
                return known[1]
            _cache[key] = (signature, (catalogue, registry, {item["id"]: item for item in catalogue["items"]}))
            if known is not None:
                log.info("catalogue reloaded: version %s, %d items", catalogue["version"], len(catalogue["items"]))
        return _cache[key][1]


def load_catalogue(root: Path | None = None) -> dict[str, Any]:
    """{"version": content hash, "items": [...]}, JSON-ready; read once, then served from memory.

    `root` is a data directory (holding catalogue.toml and/or catalogue/), a directory of
    catalogue TOML files, or one file; tests use it, the platform leaves it out. The
    answer is a copy: callers may change it without touching the cache.
    """
    return copy.deepcopy(_cached(root)[0])


def get_item(item_id: str, root: Path | None = None) -> dict[str, Any] | None:
    """One catalogue item (a copy), or None when there is no such id."""
    item = _cached(root)[2].get(item_id)
    return copy.deepcopy(item) if item is not None else None


def licence_types(root: Path | None = None) -> dict[str, dict[str, str]]:
    """E-licence type -> title {zh-CN, en}."""
    return {k: _dump_text(v) for k, v in _cached(root)[1].licence_types.items()}


def departments(root: Path | None = None) -> dict[str, dict[str, str]]:
    """Department id -> name {zh-CN, en}."""
    return {k: _dump_text(v) for k, v in _cached(root)[1].departments.items()}


def life_events(root: Path | None = None) -> dict[str, dict[str, str]]:
    """Life event (zh-CN, as items carry it) -> {zh-CN, en}."""
    return {k: {"zh-CN": k, "en": v} for k, v in _cached(root)[1].life_events.items()}


def reload_catalogue() -> None:
    """Forget every cached catalogue (after the data files changed)."""
    with _lock:
        _cache.clear()


__all__ = ["CatalogueError", "catalogue_files", "departments", "get_item", "licence_types", "life_events",
           "load_catalogue", "reload_catalogue"]
