"""The rating screen (好差评): five large answers, best first, and a way to skip.

The visit has already wiped everything personal; only the receipt and the item are rated."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import NumericProperty, StringProperty

from config.texts import Texts
from kiosk.visit import RATING_LEVELS, View
from screens.base import KioskScreen
from screens.widgets import KioskButton


class RatingButton(KioskButton):
    level = NumericProperty(0)


class RatingScreen(KioskScreen):
    step = "rating"
    skip_text = StringProperty("")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for level in RATING_LEVELS:
            button = RatingButton(level=level, action=f"rate:{level}")
            button.bind(on_release=lambda b: self.act("rate", int(b.level)))
            self.ids.levels.add_widget(button)

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        self.skip_text = texts.get("rating.skip", view.language)
        for button in self.ids.levels.children:
            stars = "★" * int(button.level) + "☆" * (5 - int(button.level))
            button.text = f"{stars}\n{texts.get(f'rating.level.{int(button.level)}', view.language)}"


Builder.load_file(str(Path(__file__).with_name("rating.kv")))
