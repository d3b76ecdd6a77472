"""The help layer (求助): over any screen, says whether staff were reached and how else to get
help; closing it returns to the same place of the visit."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import Controller
from screens.layer import Layer


class HelpOverlay(Layer):
    title = StringProperty("")
    text = StringProperty("")
    close_text = StringProperty("")

    def __init__(self, controller: Controller, hotline: str, **kwargs: Any) -> None:
        self.hotline = hotline
        super().__init__(controller, **kwargs)

    def show(self, view: View, texts: Texts) -> None:
        call = view.help
        assert call is not None
        lang = view.language
        self.title = texts.get("help.title", lang)
        self.text = texts.get(f"help.{call.state}", lang, ticket=call.ticket, hotline=call.hotline or self.hotline)
        self.close_text = texts.get("help.close", lang)
        self.reveal()


Builder.load_file(str(Path(__file__).with_name("help.kv")))
