"""The text catalogue: what the citizen reads and hears, in zh-CN with English beside it."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

TEXTS_FILE = Path(__file__).with_name("texts.toml")
# more catalogue files beside it, one per part of the UI (texts_keyboard.toml, ...)
TEXTS_GLOB = "texts_*.toml"
LANGUAGES = ("zh-CN", "en")


class MissingText(KeyError):
    """A key the code asked for is not in the catalogue: a packaging or spelling fault."""


class Texts:
    def __init__(self, entries: dict[str, dict[str, str]]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: Path = TEXTS_FILE) -> Texts:
        """`path` and, for the default catalogue, every texts_*.toml beside it; a key defined
        in two files is a packaging fault and fails here, naming both files."""
        paths = [path]
        if path == TEXTS_FILE:
            paths += sorted(path.parent.glob(TEXTS_GLOB))
        entries: dict[str, dict[str, str]] = {}
        origin: dict[str, Path] = {}
        for one in paths:
            with one.open("rb") as fh:
                raw = tomllib.load(fh)

            def walk(node: dict[str, Any], prefix: str, one: Path = one) -> None:
                if any(lang in node for lang in LANGUAGES):
                    nested = [k for k, v in node.items() if isinstance(v, dict)]
                    if nested:
                        raise ValueError(f"{one.name}: text {prefix!r} also holds texts "
                                         f"({', '.join(nested)}): give them a key of their own")
                    if prefix in origin:
                        raise ValueError(f"text {prefix!r} is defined in both {origin[prefix].name} and {one.name}")
                    entries[prefix] = {lang: node[lang] for lang in LANGUAGES if lang in node}
                    origin[prefix] = one
                    return
                for key, value in node.items():
                    if isinstance(value, dict):
                        walk(value, f"{prefix}.{key}" if prefix else key)

            walk(raw, "")
        return cls(entries)

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def get(self, key: str, lang: str = "zh-CN", **values: Any) -> str:
        """The text in `lang`, falling back to zh-CN, with `{placeholders}` filled in."""
        try:
            entry = self._entries[key]
        except KeyError:
            raise MissingText(f"text {key!r} is not in {TEXTS_FILE} or {TEXTS_GLOB} beside it") from None
        text = entry.get(lang) or entry["zh-CN"]
        return text.format(**values) if values else text
