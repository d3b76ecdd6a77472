"""The help layer (求助): over any screen, says whether staff were reached and how else to get
help; closing it returns to the same place of the visit."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.modalview import ModalView

from config.texts import Texts
from kiosk.visit import View
from screens.base import Controller


class HelpOverlay(ModalView):
    title = StringProperty("")
    text = StringProperty("")
    close_text = StringProperty("")

    def __init__(self, controller: Controller, hotline: str, **kwargs: Any) -> None:
        self.controller = controller
        self.hotline = hotline
        super().__init__(auto_dismiss=False, **kwargs)

    @property
    def is_open(self) -> bool:
        return bool(self._is_open)

    def show(self, view: View, texts: Texts) -> None:
        call = view.help
        assert call is not None
        lang = view.language
        self.title = texts.get("help.title", lang)
        self.text = texts.get(f"help.{call.state}", lang, ticket=call.ticket, hotline=call.hotline or self.hotline)
        self.close_text = texts.get("help.close", lang)
        if not self.is_open:
            self.open(animation=False)

    def hide(self) -> None:
        if self.is_open:
            self.dismiss(animation=False)

    def act(self, action: str, *args: Any) -> None:
        self.controller.act(action, *args)


Builder.load_file(str(Path(__file__).with_name("help.kv")))
