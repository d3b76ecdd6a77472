"""The review screen: the prefilled form, one row per field, then confirm or go back."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen


class ReviewRow(BoxLayout):
    """One field: its label on the left, the value on the right."""

    key = StringProperty("")
    label = StringProperty("")
    value = StringProperty("")


class ReviewScreen(KioskScreen):
    step = "review"

    confirm_text = StringProperty("")
    back_text = StringProperty("")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._rows: list[ReviewRow] = []  # a pool: rows are reused, never rebuilt

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        self.confirm_text = texts.get("review.confirm", view.language)
        self.back_text = texts.get("common.back", view.language)
        table = self.ids.table
        while len(self._rows) < len(view.fields):
            self._rows.append(ReviewRow())
        for n, row in enumerate(self._rows):
            wanted = n < len(view.fields)
            if wanted:
                row.key, row.label, row.value = view.fields[n]
            else:
                row.key = row.label = row.value = ""
            if wanted and row.parent is None:
                table.add_widget(row)
            elif not wanted and row.parent is not None:
                table.remove_widget(row)

    def clear(self) -> None:
        super().clear()
        for row in self._rows:
            row.value = ""  # names, ID numbers and addresses leave the widgets with the visit


Builder.load_file(str(Path(__file__).with_name("review.kv")))
