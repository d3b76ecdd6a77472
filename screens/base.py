"""The base of every step screen: it shows a View and forwards touches, nothing more.

A screen is built once and reused for every visit (the kiosk runs for days). `show`
puts the texts of a View into properties the `.kv` layout binds to; `clear` drops
whatever personal data the widgets still hold once the visit has left the step.
Touches go to the controller (the app), which calls the Visit's actions.
"""
from __future__ import annotations

from typing import Any, Protocol

from kivy.properties import StringProperty
from kivy.uix.screenmanager import Screen

from config.texts import Texts
from kiosk.visit import View


class Controller(Protocol):
    def act(self, action: str, *args: Any) -> None:
        """Forward a touch to the visit (start, choose, confirm, back, cancel, ...)."""


class KioskScreen(Screen):
    step = ""  # the Step value this screen shows; also the screen's name

    title_text = StringProperty("")
    prompt_text = StringProperty("")
    message_text = StringProperty("")
    cancel_text = StringProperty("")

    def __init__(self, controller: Controller, **kwargs: Any) -> None:
        self.controller = controller
        super().__init__(name=self.step, **kwargs)

    def show(self, view: View, texts: Texts) -> None:
        """Render `view` (always of this screen's step)."""
        def t(key: str, **values: Any) -> str:
            return texts.get(key, view.language, **values)

        self.title_text = t(view.title_key, **view.title_values)
        self.prompt_text = t(view.prompt_key) if view.prompt_key else ""
        self.message_text = t(view.message_key) if view.message_key else ""
        self.cancel_text = t("common.cancel")

    def clear(self) -> None:
        """The visit left this step: forget what was shown (names, numbers)."""
        self.title_text = ""
        self.message_text = ""

    def act(self, action: str, *args: Any) -> None:
        self.controller.act(action, *args)


def text_or_none(texts: Texts, key: str, language: str, **values: Any) -> str | None:
    """A text that may not be in the catalogue yet (the screen then leaves it out)."""
    if key not in texts.keys():
        return None
    return texts.get(key, language, **values)
