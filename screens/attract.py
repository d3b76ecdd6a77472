"""The attract screen: what a passer-by sees; one large button starts a visit."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen


class AttractScreen(KioskScreen):
    step = "attract"

    subtitle_text = StringProperty("")
    start_text = StringProperty("")

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        self.subtitle_text = texts.get("attract.subtitle", view.language)
        self.start_text = texts.get("attract.start", view.language)

    def clear(self) -> None:
        self.message_text = ""  # the title is not personal; keep it drawn


Builder.load_file(str(Path(__file__).with_name("attract.kv")))
