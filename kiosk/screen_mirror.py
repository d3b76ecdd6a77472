"""The kiosk's screen as data, for the help desk during a help call (`up/screen`).

The staff member sees what the citizen sees: the texts exactly as the screen renders them from
the text catalogue and the View, the form, the materials, the services, where the touch targets
are. Personal values are hidden unless the citizen consented on screen, and hiding fails
closed: every form value, every value put into a title or message that is not known to be
harmless (the citizen's name, a receipt number), the receipt numbers of their applications and
anything shaped like an ID or mobile number in any text. Values known to be personal are also
scrubbed wherever else they turn up. An item hidden this way says `"masked": true`; the console
shows it as ●●●. The face step never carries the camera picture (a View has none).

The mirror (a JSON object; texts in the visit's language)::

    {"step": "form", "language": "zh-CN", "masked": true,     # personal values hidden
     "title": {"text": "填写信息：新生儿出生一件事", "masked": false},
     "prompt": {"text": "...", "masked": false} | null,
     "message": {"text": "...", "masked": false} | null,
     "position": [2, 4] | null, "position_text": "第 2 步，共 4 步",
     "item": {"id": "newborn", "title": "...", "summary", "notice", "steps": [...],
              "departments": [...], "time_limit_days", "includes": [...]} | null,
     "services": [{"id": "...", "title": "..."}], "query": {"text": "", "masked": false},
     "fields": [{"key", "label", "value", "type", "source", "required", "editable", "problem",
                 "masked"}],
     "materials": [{"id", "title", "required", "provided", "licence_title"}],
     "home": {"state", "benefits": [{"title", "reason", "status"}],
              "applications": [{"receipt_number", "title", "status", "accepted_on", "masked"}]} | null,
     "notices": ["..."], "warning_seconds": 12 | null, "warning": {"text", "masked"} | null,
     "receipt": {"text", "masked"} | null, "handout": {"text", "masked"} | null,
     "help": {"state", "staff", "consent", "messages": [...], "minimized"} | null,
     "pointer": [x, y, seq] | null,          # fractions from the top-left
     "layout": {"target": [x, y, w, h]} | null,  # touch targets, fractions from the top-left
     "labels": {"target": "下一步"} | null,       # the words on them, scrubbed like any text
     "elder": false, "voice_on": true}
"""
from __future__ import annotations

import math
import string
from typing import Any

from config.texts import MissingText, Texts
from kiosk.privacy import mask_text
from kiosk.view import View

MASK = "●●●"
# values put into titles and messages that never hold anything personal (catalogue words, counts)
SAFE_VALUES = frozenset({"item", "field", "materials", "licence", "n", "m", "seconds", "days", "waiting",
                         "counter"})
_MIN_SECRET = 2  # a one-character value (a choice like 男) is hidden in its field, not searched for in texts


class _Blank(dict):  # type: ignore[type-arg]
    """A placeholder the view does not fill stays as the screen would show it."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(texts: Texts, key: str | None, language: str, values: dict[str, Any] | None = None) -> str:
    """A catalogue text with its placeholders filled; "" for a key the catalogue lacks."""
    if not key:
        return ""
    try:
        template = texts.get(key, language)
    except MissingText:
        return ""
    try:
        return string.Formatter().vformat(template, (), _Blank(values or {}))
    except (ValueError, IndexError, AttributeError):
        return template


class _Masker:
    """Hides personal values when the citizen has not consented (fail-closed), else passes all."""

    def __init__(self, view: View, consent: bool) -> None:
        self.on = not consent
        secrets: set[str] = set()
        if self.on:
            for f in view.fields:
                secrets.update((f.value, f.raw))
            for values in (view.title_values, view.message_values):
                secrets.update(str(v) for k, v in values.items() if k not in SAFE_VALUES)
            if view.handout is not None:
                secrets.update(str(v) for k, v in view.handout.values.items() if k not in SAFE_VALUES)
            if view.receipt:
                secrets.add(view.receipt)
            if view.home is not None:
                secrets.update(a.receipt_number for a in view.home.applications)
            secrets.add(view.query)
        self.secrets = sorted((s.strip() for s in secrets if len(s.strip()) >= _MIN_SECRET), key=len, reverse=True)

    def values(self, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Template values to render with, and whether any was hidden."""
        if not self.on:
            return dict(values), False
        out = {k: (v if k in SAFE_VALUES or v in ("", None) else MASK) for k, v in values.items()}
        return out, any(k not in SAFE_VALUES and v not in ("", None) for k, v in values.items())

    def text(self, text: str) -> tuple[str, bool]:
        """`text` with every known personal value and every ID/mobile number hidden."""
        if not self.on or not text:
            return text, False
        scrubbed = text
        for secret in self.secrets:
            scrubbed = scrubbed.replace(secret, MASK)
        scrubbed = mask_text(scrubbed)  # ID and mobile numbers, and the visit's registered secrets
        return scrubbed, scrubbed != text

    def plain(self, text: str) -> str:
        return self.text(text)[0]


def mirror(view: View, texts: Texts, *, consent: bool, layout: dict[str, Any] | None) -> dict[str, Any]:
    """The screen of `view` as data; personal values hidden unless `consent` (the citizen's
    "granted" on screen). `layout`: the touch targets' boxes from the Kivy app, None headless."""
    lang = view.language
    m = _Masker(view, consent)

    def shown(key: str | None, values: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if not key:
            return None
        filled, hidden = m.values(values or {})
        text, scrubbed = m.text(render(texts, key, lang, filled))
        return {"text": text, "masked": hidden or scrubbed}

    n, total = view.position
    out: dict[str, Any] = {
        "step": view.step.value,
        "language": lang,
        "masked": m.on,
        "title": shown(view.title_key, view.title_values),
        "prompt": shown(view.prompt_key),
        "message": shown(view.message_key, view.message_values),
        "position": [n, total] if total else None,
        "position_text": m.plain(render(texts, "header.position", lang, {"n": n, "m": total})) if total else "",
        "item": _item(view, m),
        "services": [{"id": sid, "title": m.plain(title)} for sid, title in view.services],
        "query": _query(view.query, m),
        "fields": [_field(f, texts, lang, m) for f in view.fields],
        "materials": [{"id": mt.id, "title": m.plain(mt.title), "required": mt.required, "provided": mt.provided,
                       "licence_title": m.plain(mt.licence_title)} for mt in view.materials],
        "home": _home(view, m),
        "notices": [m.plain(render(texts, key, lang)) for key in view.notices],
        "warning_seconds": view.warning_seconds,
        "warning": (shown("idle.warning", {"seconds": view.warning_seconds})
                    if view.warning_seconds is not None else None),
        "receipt": _receipt(view, texts, m),
        "handout": shown(view.handout.message_key, view.handout.values) if view.handout is not None else None,
        "help": _help(view, m),
        "pointer": list(view.help.pointer) if view.help is not None and view.help.pointer else None,
        "layout": _layout(layout),
        "labels": _labels(layout, m),
        "elder": view.elder,
        "voice_on": view.voice_on,
    }
    return out


def _item(view: View, m: _Masker) -> dict[str, Any] | None:
    """The chosen item as the notice step shows it (catalogue words; scrubbed all the same)."""
    item = view.item
    if item is None:
        return None
    return {"id": item.id, "title": m.plain(item.title), "summary": m.plain(item.summary),
            "notice": m.plain(item.notice), "steps": [m.plain(x) for x in item.steps],
            "departments": [m.plain(x) for x in item.departments], "time_limit_days": item.time_limit_days,
            "includes": [m.plain(x) for x in item.includes]}


def _query(query: str, m: _Masker) -> dict[str, Any]:
    if m.on and query:
        return {"text": MASK, "masked": True}
    return {"text": query, "masked": False}


def _field(f: Any, texts: Texts, lang: str, m: _Masker) -> dict[str, Any]:
    hidden = m.on and bool(f.value or f.raw)
    return {"key": f.key, "label": m.plain(f.label), "value": MASK if hidden else ("" if m.on else f.value),
            "type": f.type, "source": f.source, "required": f.required, "editable": f.editable,
            "problem": m.plain(render(texts, f.problem, lang)) if f.problem else None, "masked": hidden}


def _home(view: View, m: _Masker) -> dict[str, Any] | None:
    home = view.home
    if home is None:
        return None
    return {"state": home.state,
            "benefits": [{"title": m.plain(b.title), "reason": m.plain(b.reason), "status": b.status}
                         for b in home.benefits],
            "applications": [{"receipt_number": MASK if m.on and a.receipt_number else a.receipt_number,
                              "title": m.plain(a.title), "status": a.status, "accepted_on": m.plain(a.accepted_on),
                              "masked": m.on and bool(a.receipt_number)} for a in home.applications]}


def _receipt(view: View, texts: Texts, m: _Masker) -> dict[str, Any] | None:
    if not view.receipt:
        return None
    if m.on:
        return {"text": render(texts, "finish.receipt", view.language, {"receipt": MASK}), "masked": True}
    return {"text": render(texts, "finish.receipt", view.language, {"receipt": view.receipt}), "masked": False}


def _help(view: View, m: _Masker) -> dict[str, Any] | None:
    call = view.help
    if call is None:
        return None
    return {"state": call.state, "staff": call.staff, "consent": call.consent,
            "messages": [m.plain(text) for text in call.messages], "minimized": call.minimized}


def _labels(layout: dict[str, Any] | None, m: _Masker) -> dict[str, str] | None:
    """The words on the buttons, when the app gave them ({"box": ..., "label": ...} entries)."""
    if not layout:
        return None
    out = {str(target)[:80]: m.plain(str(entry.get("label") or ""))[:60]
           for target, entry in layout.items() if isinstance(entry, dict) and entry.get("label")}
    return out or None


def _layout(layout: dict[str, Any] | None) -> dict[str, list[float]] | None:
    """The app's boxes, kept only when well-formed: [x, y, w, h] finite fractions (given as they
    are, or as {"box": [...], "label": ...})."""
    if not layout:
        return None
    out: dict[str, list[float]] = {}
    for target, box in layout.items():
        if isinstance(box, dict):
            box = box.get("box")
        try:
            numbers = [float(v) for v in box]
        except (TypeError, ValueError):
            continue
        if len(numbers) == 4 and all(math.isfinite(v) for v in numbers):
            out[str(target)[:80]] = [round(min(max(v, 0.0), 1.0), 4) for v in numbers]
    return out
