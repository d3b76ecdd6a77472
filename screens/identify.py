"""The identify screen: asks for the ID card and shows why a card was refused."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder

from screens.base import KioskScreen


class IdentifyScreen(KioskScreen):
    step = "identify"

    def on_enter(self, *_args: object) -> None:
        self._card().play()  # the animated instruction runs only while this screen is shown

    def on_leave(self, *_args: object) -> None:
        self._card().stop()

    def _card(self):  # type: ignore[no-untyped-def]
        from screens.widgets import CardIllustration

        return next(w for w in self.walk(restrict=True) if isinstance(w, CardIllustration))


Builder.load_file(str(Path(__file__).with_name("identify.kv")))
