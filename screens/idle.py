"""The idle warning: a layer over the current screen with the countdown and "继续办理".

Any touch anywhere already counts as "still here" (the app forwards every touch as
keep_alive); the big button is there so nobody has to guess where to touch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import Controller
from screens.layer import Layer


class IdleOverlay(Layer):
    text = StringProperty("")
    continue_text = StringProperty("")

    def __init__(self, controller: Controller, **kwargs: Any) -> None:
        super().__init__(controller, **kwargs)

    def show(self, view: View, texts: Texts) -> None:
        self.text = texts.get("idle.warning", view.language, seconds=view.warning_seconds)
        self.continue_text = texts.get("idle.continue", view.language)
        self.reveal()


Builder.load_file(str(Path(__file__).with_name("idle.kv")))
