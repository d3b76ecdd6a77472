"""The choose screen: one big button per service of the catalogue."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen
from screens.widgets import ServiceButton


class ChooseScreen(KioskScreen):
    step = "choose"
    notice_text = StringProperty("")  # what the printers cannot do just now

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._buttons: list[ServiceButton] = []  # a pool: buttons are reused, never rebuilt

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        self.notice_text = "\n".join(texts.get(key, view.language) for key in view.notices)
        grid = self.ids.grid
        while len(self._buttons) < len(view.services):
            button = ServiceButton(action="choose")
            button.bind(on_release=self._chosen)
            self._buttons.append(button)
        for n, button in enumerate(self._buttons):
            wanted = n < len(view.services)
            if wanted:
                button.service_id, button.text = view.services[n]
                button.action = f"choose:{button.service_id}"
            if wanted and button.parent is None:
                grid.add_widget(button)
            elif not wanted and button.parent is not None:
                grid.remove_widget(button)

    def _chosen(self, button: ServiceButton) -> None:
        self.act("choose", button.service_id)


Builder.load_file(str(Path(__file__).with_name("choose.kv")))
