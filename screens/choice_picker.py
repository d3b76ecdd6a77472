"""Picking one value of a choice field (与新生儿关系: 父亲 / 母亲): big buttons, nothing typed."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from kivy.lang import Builder
from kivy.properties import StringProperty

from screens.layer import Layer
from screens.widgets import KioskButton, show_pooled, touch_targets_in


class ChoiceButton(KioskButton):
    value = StringProperty("")


class ChoicePicker(Layer):
    label = StringProperty("")
    cancel_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._buttons: list[ChoiceButton] = []
        self._on_done: Callable[[str], None] | None = None

    def pick(self, label: str, choices: tuple[tuple[str, str], ...], current: str,
             on_done: Callable[[str], None], cancel_text: str) -> None:
        self.label, self.cancel_text, self._on_done = label, cancel_text, on_done
        buttons = show_pooled(self.ids.choices, self._buttons, len(choices), self._button)
        for button, (value, text) in zip(buttons, choices):
            button.value, button.text = value, ("✓ " if value == current else "") + text
            button.variant = "primary" if value == current else "secondary"
            button.action = f"pick:{value}"
        self.reveal()

    def _button(self) -> ChoiceButton:
        button = ChoiceButton()
        button.bind(on_release=lambda b: self._picked(b.value))
        return button

    def _picked(self, value: str) -> None:
        on_done, self._on_done = self._on_done, None
        self.close()
        if on_done is not None:
            on_done(value)

    def close(self) -> None:
        self._on_done = None
        self.hide()

    def touch_targets(self) -> dict[str, tuple[int, int]]:
        return touch_targets_in(self) if self.is_open else {}


Builder.load_file(str(Path(__file__).with_name("choice_picker.kv")))
