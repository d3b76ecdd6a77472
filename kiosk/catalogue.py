"""Services as data: what a visit can choose, and where each form field's value comes from."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATALOGUE_FILE = Path(__file__).resolve().parent.parent / "config" / "catalogue.toml"
# the kinds of item a visit can carry out (fill in, submit); progress lookups and
# appointments need flows of their own and are not offered until they exist
OFFERED_KINDS = ("bundle", "service", "certificate")


class CatalogueError(ValueError):
    """The catalogue data is malformed; the message names the service and the field."""


@dataclass(frozen=True)
class Field:
    key: str
    label: dict[str, str]
    source: str  # "identity.<attr>", "profile.<attr>" (the platform fills it), or "" (the citizen)
    required: bool = False

    def prefill(self, identity: Any) -> str:
        if identity is None or not self.source.startswith("identity."):
            return ""
        value = getattr(identity, self.source.split(".", 1)[1], "")
        return "" if value is None else str(value)


@dataclass(frozen=True)
class Material:
    id: str
    title: dict[str, str]
    e_licence: str | None  # an e-licence type that may replace the paper
    promise_allowed: bool  # "告知承诺+容缺办理": may be promised and handed in later
    required: bool


@dataclass(frozen=True)
class Service:
    id: str
    category: str
    title: dict[str, str]
    fields: tuple[Field, ...]
    materials: tuple[Material, ...] = ()
    kind: str = "service"

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title["zh-CN"]


class Catalogue:
    def __init__(self, services: list[Service], version: str = "") -> None:
        self.version = version  # the platform's catalogue version; "" for a local one
        self._services = {s.id: s for s in services}
        if len(self._services) != len(services):
            raise CatalogueError("two services share one id")

    @classmethod
    def load(cls, path: Path = CATALOGUE_FILE) -> "Catalogue":
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        return cls.from_data(raw.get("service", []), str(path))

    @classmethod
    def from_data(cls, items: list[dict[str, Any]], where: str = "catalogue") -> "Catalogue":
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
    def from_platform(cls, data: dict[str, Any]) -> "Catalogue":
        """The platform's catalogue (GET /v1/catalogue) as the visit's services."""
        services = []
        for n, item in enumerate(data.get("items", [])):
            try:
                fields = tuple(Field(f["key"], dict(f["label"]), f.get("source") or "", bool(f.get("required")))
                               for f in item.get("form", []))
                materials = tuple(Material(m["id"], dict(m["title"]), m.get("e_licence"),
                                           bool(m.get("promise_allowed")), bool(m.get("required", True)))
                                  for m in item.get("materials", []))
                services.append(Service(item["id"], item.get("category", ""), dict(item["title"]),
                                        fields, materials, item.get("kind", "service")))
            except (KeyError, TypeError) as exc:
                raise CatalogueError(f"platform catalogue: item #{n + 1} lacks {exc}") from None
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
