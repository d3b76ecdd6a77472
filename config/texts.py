"""The text catalogue: what the citizen reads and hears, in zh-CN with English beside it."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

TEXTS_FILE = Path(__file__).with_name("texts.toml")
LANGUAGES = ("zh-CN", "en")


class MissingText(KeyError):
    """A key the code asked for is not in the catalogue: a packaging or spelling fault."""


class Texts:
    def __init__(self, entries: dict[str, dict[str, str]]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: Path = TEXTS_FILE) -> "Texts":
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        entries: dict[str, dict[str, str]] = {}

        def walk(node: dict[str, Any], prefix: str) -> None:
            if any(lang in node for lang in LANGUAGES):
                entries[prefix] = {lang: node[lang] for lang in LANGUAGES if lang in node}
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
            raise MissingText(f"text {key!r} is not in {TEXTS_FILE}") from None
        text = entry.get(lang) or entry["zh-CN"]
        return text.format(**values) if values else text
