"""The choose screen: filters (category, life event), search, and one big button per item."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen, text_or_none
from screens.widgets import ChipButton, ServiceButton, show_pooled


class ChooseScreen(KioskScreen):
    step = "choose"
    notice_text = StringProperty("")  # what the printers cannot do just now
    search_text = StringProperty("")
    search_hint = StringProperty("")
    query_text = StringProperty("")  # "results for ..." while a search is on
    clear_text = StringProperty("")
    back_text = StringProperty("")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._buttons: list[ServiceButton] = []  # pools: buttons are reused, never rebuilt
        self._chips: list[ChipButton] = []
        self.query = ""

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language
        self.notice_text = "\n".join(texts.get(key, lang) for key in view.notices)
        self.search_text = texts.get("choose.search", lang)
        self.search_hint = texts.get("choose.search_hint", lang)
        self.clear_text = texts.get("choose.clear_search", lang)
        self.back_text = texts.get("common.back", lang)
        self.query = view.query
        self.query_text = texts.get("choose.searching", lang, query=view.query) if view.query else ""
        chips = show_pooled(self.ids.filters, self._chips, len(view.filters), self._chip)
        for chip, (kind, value, label) in zip(chips, view.filters):
            chip.kind, chip.value = kind, value
            if kind == "all":
                chip.text = texts.get("choose.all", lang)
            else:  # catalogue words; an English name when the text catalogue has one
                chip.text = (text_or_none(texts, f"choose.{kind}.{value}", lang) or label) if lang != "zh-CN" else label
            chip.chosen = (kind, value) == tuple(view.active_filter)
            chip.action = f"filter:{kind}:{value}"
        buttons = show_pooled(self.ids.grid, self._buttons, len(view.services), self._service_button)
        for button, (service_id, title) in zip(buttons, view.services):
            button.service_id, button.text = service_id, title
            button.action = f"choose:{service_id}"

    def _chip(self) -> ChipButton:
        chip = ChipButton()
        chip.bind(on_release=lambda c: self.act("filter_services", c.kind, c.value))
        return chip

    def _service_button(self) -> ServiceButton:
        button = ServiceButton(action="choose")
        button.bind(on_release=lambda b: self.act("choose", b.service_id))
        return button

    def open_search(self) -> None:
        """Search by typing: pinyin, handwriting or letters on the on-screen keyboard."""
        self.controller.edit_text(self.search_text, self.query, ["pinyin", "handwriting", "letters"],
                                  lambda text: self.act("search", text), hint=self.search_hint, max_length=20)


Builder.load_file(str(Path(__file__).with_name("choose.kv")))
