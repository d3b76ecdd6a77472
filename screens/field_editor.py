"""The field editor: one form field filled in with the on-screen keyboard, over the screen.

Shows the field's name, the value being typed in a large box (a bar marks where typing
goes on), a hint or an error line (an icon and words, never colour alone) and the
keyboard. Built once and reused for every field of every visit (the kiosk runs for
days); closing it forgets the value, which may be personal.

    editor.edit("身份证号码", "", ["digits"], on_done, language="zh-CN",
                hint="18 位", max_length=18, extra_keys="X")

On 确定 the editor calls `on_done(text)` and then closes, unless `on_done` called
`set_error(...)` (the value is not acceptable: the citizen corrects it) or `edit(...)`
(the next field). 取消 just closes.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.modalview import ModalView

from screens.keyboard import MODES, OnScreenKeyboard
from screens.widgets import touch_targets_in

log = logging.getLogger(__name__)

WIDE = 1.0  # width of a Chinese character, in em
NARROW = 0.58  # digits and Latin letters, roughly, in the kiosk's font


def text_width_em(text: str) -> float:
    """About how wide `text` is, in em (for fitting the value box without measuring)."""
    return sum(NARROW if ord(c) < 0x2E80 else WIDE for c in text)


class FieldEditor(ModalView):
    label = StringProperty("")
    hint = StringProperty("")
    error = StringProperty("")
    shown_value = StringProperty("")  # the value, its start cut off when it does not fit
    value_font = NumericProperty(52)
    is_open = BooleanProperty(False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("auto_dismiss", False)  # a tap beside it must not lose the typing
        super().__init__(**kwargs)
        self.auto_dismiss = False
        self._on_done: Callable[[str], None] | None = None
        self._edits = 0  # counts edit() calls: on_done may open the next field itself
        self.keyboard: OnScreenKeyboard = self.ids.keyboard.__self__
        self.keyboard.bind(text=self._on_text, on_enter=self._on_enter, on_cancel=self._on_cancel)
        self.ids.value_box.bind(width=lambda *_a: self._fit_value())

    def edit(self, label: str, value: str, modes: list[str], on_done: Callable[[str], None], *,
             language: str, hint: str = "", max_length: int = 0, extra_keys: str = "") -> None:
        """Open the editor on a field; `modes[0]` is the first way of typing offered."""
        wanted = [m for m in modes if m in MODES]
        if not wanted:
            raise ValueError(f"no keyboard mode among {modes!r}; choose from {MODES}")
        keyboard = self.keyboard
        keyboard.reset()
        keyboard.language = language
        keyboard.max_length = max_length
        keyboard.extra_keys = extra_keys
        keyboard.modes = wanted
        keyboard.mode = wanted[0]
        keyboard.text = value[:max_length] if max_length else value
        self.label = label
        self.hint = hint
        self.error = ""
        self._on_done = on_done
        self._edits += 1
        self._fit_value()
        if not self.is_open:
            self.open(animation=False)
            self.is_open = True

    def set_error(self, text: str) -> None:
        """Show why the value cannot be taken (cleared by the next edit of the value)."""
        self.error = text

    def close(self) -> None:
        """Close and forget the value."""
        self._on_done = None
        self.keyboard.reset()
        self.label = self.hint = self.error = ""
        if self.is_open:
            self.dismiss(animation=False)
            self.is_open = False

    def on_dismiss(self) -> None:
        self.is_open = False

    def touch_targets(self) -> dict[str, tuple[int, int]]:
        """Its visible keys by action, as (x, y) window pixels from the top-left corner."""
        return touch_targets_in(self) if self.is_open else {}

    # -- the keyboard ----------------------------------------------------------------------------
    def _on_text(self, _keyboard: Any, _text: str) -> None:
        self.error = ""  # the citizen is correcting it
        self._fit_value()

    def _on_enter(self, _keyboard: Any, text: str) -> None:
        on_done, edit = self._on_done, self._edits
        self.error = ""
        if on_done is not None:
            try:
                on_done(text)
            except Exception:
                log.exception("field editor: on_done failed")
        if not self.error and self._edits == edit:  # not refused, and no next field opened
            self.close()

    def _on_cancel(self, _keyboard: Any) -> None:
        self.close()

    def _fit_value(self) -> None:
        """The value in the largest type that fits (down to body size), else its tail."""
        from kivy.app import App

        theme = App.get_running_app().theme
        text = self.keyboard.text
        room = max(1.0, self.ids.value_box.width - 2 * theme.gap - 12)
        em = text_width_em(text)
        size = max(theme.body, min(theme.title * 1.1, room / em if em else theme.title * 1.1))
        shown = text
        while shown and text_width_em(shown) * size > room:
            shown = shown[1:]
        if shown != text:
            shown = "…" + shown[2:]
        self.value_font = round(size)
        self.shown_value = shown


Builder.load_file(str(Path(__file__).with_name("field_editor.kv")))
