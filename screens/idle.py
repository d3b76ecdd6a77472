"""The idle warning: a layer over the current screen with the countdown and "继续办理".

Any touch anywhere already counts as "still here" (the app forwards every touch as
keep_alive); the big button is there so nobody has to guess where to touch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.modalview import ModalView

from config.texts import Texts
from kiosk.visit import View
from screens.base import Controller


class IdleOverlay(ModalView):
    text = StringProperty("")
    continue_text = StringProperty("")

    def __init__(self, controller: Controller, **kwargs: Any) -> None:
        self.controller = controller
        super().__init__(auto_dismiss=False, **kwargs)

    @property
    def is_open(self) -> bool:
        return bool(self._is_open)

    def show(self, view: View, texts: Texts) -> None:
        self.text = texts.get("idle.warning", view.language, seconds=view.warning_seconds)
        self.continue_text = texts.get("idle.continue", view.language)
        if not self.is_open:
            self.open(animation=False)

    def hide(self) -> None:
        if self.is_open:
            self.dismiss(animation=False)

    def act(self, action: str, *args: Any) -> None:
        self.controller.act(action, *args)


Builder.load_file(str(Path(__file__).with_name("idle.kv")))
