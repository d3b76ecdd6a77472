"""Make Kivy draw Simplified Chinese: register a CJK font as its default font.

Kivy's default font (Roboto) has no Chinese glyphs and shows empty boxes ("tofu").
`register_chinese_font` must run before any widget is built; every Label that does
not name a font then uses the Chinese one.

Debian's `NotoSansCJK-*.ttc` collections are refused: Kivy loads only the first face
of a collection, and there it is the Japanese one (直, 令, 户 come out in Japanese
forms). WenQuanYi Micro Hei (Debian package `fonts-wqy-microhei`) is the default.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

INSTALL_HINT = ("install the Debian package fonts-wqy-microhei (apt-get install fonts-wqy-microhei) "
                "or set ui.font in the terminal's config to a TrueType font with Simplified-Chinese glyphs")


class FontError(RuntimeError):
    """No usable Simplified-Chinese font: the message names every path tried and the fix."""


def _refused(path: Path) -> str | None:
    """Why a font file must not be used, or None when it is fine."""
    name = path.name.lower()
    if name.startswith("notosanscjk") or name.startswith("notoserifcjk"):
        if name.endswith(".ttc"):
            return "a Noto CJK collection whose first face is Japanese (wrong glyph forms)"
    return None


def find_chinese_font(path_or_empty: str | None, candidates: Iterable[str]) -> str:
    """The first usable font: the configured one, else the first candidate that exists."""
    tried: list[str] = []
    paths = ([path_or_empty] if path_or_empty else []) + [c for c in candidates if c]
    for raw in paths:
        path = Path(raw).expanduser()
        refused = _refused(path)
        if refused:
            tried.append(f"{raw} (refused: {refused})")
            log.warning("font %s refused: %s", raw, refused)
            continue
        if not path.is_file():
            tried.append(f"{raw} (missing)")
            if raw == path_or_empty:
                log.warning("configured font %s does not exist; trying the candidates", raw)
            continue
        return str(path)
    listed = "; ".join(tried) if tried else "none (ui.font is empty and ui.font_candidates is empty)"
    raise FontError(f"no Simplified-Chinese font found. Tried: {listed}. Fix: {INSTALL_HINT}.")


def register_chinese_font(path_or_empty: str | None, candidates: Iterable[str]) -> str:
    """Register the font as Kivy's DEFAULT_FONT (regular and bold); return its path.

    Call before any widget is built. Raises FontError naming the paths tried.
    """
    path = find_chinese_font(path_or_empty, candidates)
    from kivy.core.text import DEFAULT_FONT, LabelBase  # late: importing Kivy has side effects

    LabelBase.register(DEFAULT_FONT, fn_regular=path, fn_italic=path, fn_bold=path, fn_bolditalic=path)
    log.info("Chinese font registered as %s: %s", DEFAULT_FONT, path)
    return path
