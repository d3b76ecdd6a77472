"""Services as data: what a visit can choose, and where each form field's value comes from."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govapi.form_values import FIELD_TYPES, value_problem
from kiosk.govclient import (
    MalformedAnswer,
    expect_list,
    expect_object,
    expect_objects,
    expect_text,
    expect_translations,
)

Text = dict[str, str]  # {"zh-CN": ..., "en": ...}

CATALOGUE_FILE = Path(__file__).resolve().parent.parent / "config" / "catalogue.toml"
# the kinds of item a visit can carry out (fill in, submit); progress lookups and
# appointments need flows of their own and are not offered until they exist
OFFERED_KINDS = ("bundle", "service", "certificate")


class CatalogueError(ValueError):
    """The catalogue data is malformed; the message names the service and the field."""


def text_in(text: Text | None, lang: str) -> str:
    """A catalogue text in `lang`, falling back to zh-CN (every text has zh-CN)."""
    if not text:
        return ""
    return text.get(lang) or text.get("zh-CN", "")


@dataclass(frozen=True)
class Field:
    key: str
    label: Text
    source: str  # "identity.<attr>", "profile.<attr>" (the platform fills it), or "" (the citizen)
    required: bool = False
    type: str = "text"  # one of govapi.form_values.FIELD_TYPES
    choices: tuple[tuple[str, Text], ...] = ()  # (value, label) for type "choice"

    def prefill(self, identity: Any) -> str:
        """The card's value for this field; for a choice, the choice whose code or label it is
        (the card says 女, the form stores "2")."""
        if identity is None or not self.source.startswith("identity."):
            return ""
        attr = self.source.split(".", 1)[1]
        value = getattr(identity, attr, "")
        if attr == "address":  # a newer address the card carries (30 03) replaces the printed one
            value = getattr(identity, "appended_address", "") or value
        value = "" if value is None else str(value)
        for code, label in self.choices:
            if value == code or value in label.values():
                return code
        return value

    @property
    def editable(self) -> bool:
        """Values read from the ID card are the card's: shown, never retyped or changed."""
        return not self.source.startswith("identity.")

    def can_change(self, current: str) -> bool:
        """Editable, or a card field the card left empty or gave in a form the platform would
        refuse: the citizen must never be stuck on a field they may not touch."""
        return self.editable or not current.strip() or self.problem(current) is not None

    def problem(self, value: str) -> str | None:
        """Why `value` would be refused by the platform (the same rules), or None."""
        if not value.strip():
            return "required" if self.required else None
        return value_problem(self.type, value.strip(), (v for v, _ in self.choices))

    def shown(self, value: str, lang: str) -> str:
        """What the citizen reads for a stored value: a choice's label, not its code."""
        for choice, label in self.choices:
            if choice == value:
                return text_in(label, lang)
        return value


@dataclass(frozen=True)
class Material:
    id: str
    title: Text
    e_licence: str | None  # an e-licence type that may replace the paper
    promise_allowed: bool  # "告知承诺+容缺办理": may be promised and handed in later
    required: bool
    commitment: Text | None = None  # what the citizen promises when they hand it in later


@dataclass(frozen=True)
class Service:
    id: str
    category: str
    title: Text
    fields: tuple[Field, ...]
    materials: tuple[Material, ...] = ()
    kind: str = "service"
    life_event: str = ""
    summary: Text | None = None
    notice: Text | None = None  # 办事须知: read and accepted before the form
    steps: tuple[Text, ...] = ()  # how it is handled, shown with the notice
    departments: tuple[Text, ...] = ()  # the lead department first, then the cooperating ones
    time_limit_days: int = 0
    includes: tuple[Text, ...] = ()  # the services a bundle ("一件事") handles together

    def title_in(self, lang: str) -> str:
        return text_in(self.title, lang)

    def material(self, material_id: str) -> Material:
        for m in self.materials:
            if m.id == material_id:
                return m
        raise CatalogueError(f"service {self.id!r} asks for no material {material_id!r}")

    def matches(self, query: str) -> bool:
        """Search on the choose step: any word of the query in a title, summary or included
        service, in either language (case-insensitive)."""
        words = query.casefold().split()
        if not words:
            return True
        hay = " ".join(text_in(t, lang) for t in (self.title, self.summary, *self.includes)
                       for lang in ("zh-CN", "en")).casefold()
        return all(word in hay for word in words)


class Catalogue:
    def __init__(self, services: list[Service], version: str = "") -> None:
        self.version = version  # the platform's catalogue version; "" for a local one
        self._services = {s.id: s for s in services}
        if len(self._services) != len(services):
            raise CatalogueError("two services share one id")

    @classmethod
    def load(cls, path: Path = CATALOGUE_FILE) -> Catalogue:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        return cls.from_data(raw.get("service", []), str(path))

    @classmethod
    def from_data(cls, items: list[dict[str, Any]], where: str = "catalogue") -> Catalogue:
        services = []
        for n, item in enumerate(items):
            try:
                fields = tuple(Field(f["key"], dict(f["label"]), f.get("source", ""), bool(f.get("required")))
                               for f in item.get("fields", []))
                services.append(Service(item["id"], item.get("category", ""), dict(item["title"]), fields))
            except (KeyError, TypeError) as exc:
                raise CatalogueError(f"{where}: service #{n + 1} lacks {exc}") from None
        return cls(services)

    @classmethod
    def from_platform(cls, data: Any) -> Catalogue:
        """The platform's catalogue (GET /v1/catalogue, or the copy kept on disk) as the visit's
        services. It comes from outside: any other shape is a CatalogueError naming the part."""
        try:
            items = expect_objects(expect_object(data, "catalogue").get("items", []), "items")
        except MalformedAnswer as exc:
            raise CatalogueError(f"platform catalogue: {exc}") from None
        services = []
        for n, item in enumerate(items):
            try:
                services.append(_service_from_platform(item))
            except MalformedAnswer as exc:
                raise CatalogueError(f"platform catalogue: item #{n + 1}: {exc}") from None
            except (KeyError, TypeError, ValueError, OverflowError) as exc:  # a part missing; int() of the days
                raise CatalogueError(f"platform catalogue: item #{n + 1} lacks or garbles {exc}") from None
        return cls(services, str(data.get("version", "")))

    def services(self) -> list[Service]:
        """What the choose step offers, in catalogue order."""
        return [s for s in self._services.values() if s.kind in OFFERED_KINDS]

    def get(self, service_id: str) -> Service:
        try:
            return self._services[service_id]
        except KeyError:
            raise CatalogueError(f"no service {service_id!r} in the catalogue") from None

    def add(self, service: Service) -> None:
        self._services[service.id] = service


def _department(data: Any, where: str) -> Text:
    """A department as the platform names it: {"id", "zh-CN", "en"}, or only its name."""
    if isinstance(data, str):
        return {"zh-CN": data}
    data = expect_object(data, where)
    return {"zh-CN": expect_text(data["zh-CN"], f"{where}.zh-CN"),
            "en": expect_text(data.get("en"), f"{where}.en", optional=True)}


def _text(data: dict[str, Any], key: str, where: str) -> Text | None:
    """An optional text of the catalogue (summary, notice...): None when missing or empty."""
    value = data.get(key)
    return dict(expect_translations(value, f"{where}.{key}")) if value else None


def _service_from_platform(item: dict[str, Any]) -> Service:
    """One item, its shape checked part by part (MalformedAnswer names the part, KeyError a
    part that is missing): the screens show its texts as they are."""
    sid = expect_text(item["id"], "id")
    at = f"item {sid}"

    def text(value: Any, where: str) -> Text:
        return dict(expect_translations(value, f"{at} {where}"))

    def word(key: str, default: str, data: dict[str, Any] = item, where: str = at) -> str:
        return expect_text(data.get(key), f"{where} {key}", optional=True) or default

    fields = []
    for n, f in enumerate(expect_objects(item.get("form", []), f"{at} form")):
        key = expect_text(f["key"], f"{at} form[{n}].key")
        kind = word("type", "text", f, f"{at} field {key}")
        if kind not in FIELD_TYPES:
            raise CatalogueError(f"platform catalogue: {at} field {key} has an unknown "
                                 f"type {kind!r} (known: {', '.join(FIELD_TYPES)})")
        choices = tuple((str(c["value"]), text(c["label"], f"field {key} choice"))
                        for c in expect_objects(f.get("choices") or [], f"{at} field {key} choices"))
        fields.append(Field(key, text(f["label"], f"field {key} label"), word("source", "", f, f"{at} field {key}"),
                            bool(f.get("required")), kind, choices))
    materials = tuple(Material(expect_text(m["id"], f"{at} material id"), text(m["title"], "material title"),
                               expect_text(m.get("e_licence"), f"{at} material e_licence", optional=True) or None,
                               bool(m.get("promise_allowed")), bool(m.get("required", True)),
                               _text(m, "commitment", f"{at} material"))
                      for m in expect_objects(item.get("materials", []), f"{at} materials"))
    departments = []
    if item.get("lead_department"):
        departments.append(_department(item["lead_department"], f"{at} lead_department"))
    departments += [_department(d, f"{at} cooperating_departments")
                    for d in expect_list(item.get("cooperating_departments", []), f"{at} cooperating_departments")]
    return Service(sid, word("category", ""), text(item["title"], "title"), tuple(fields), materials,
                   word("kind", "service"), word("life_event", ""),
                   _text(item, "summary", at), _text(item, "notice", at),
                   tuple(text(s, "steps") for s in expect_objects(item.get("steps", []), f"{at} steps")),
                   tuple(departments), int(item.get("time_limit_days") or 0),
                   tuple(text(i["title"], "includes title")
                         for i in expect_objects(item.get("includes", []), f"{at} includes")))
