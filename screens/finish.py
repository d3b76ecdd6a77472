"""The finish screen: the outcome, then one button that ends the visit.

There is no cancel button here: the application has already been handed over (or
could not be), and "取消办理" would wrongly suggest that it can still be withdrawn.
"""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen, text_or_none


class FinishScreen(KioskScreen):
    step = "finish"

    done_text = StringProperty("")
    receipt_text = StringProperty("")

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        # "finish.done" (a button that ends the visit) is not in the catalogue yet:
        # until it is, the button says "确认" (review.confirm).
        self.done_text = (text_or_none(texts, "finish.done", view.language)
                          or texts.get("review.confirm", view.language))
        receipt = ""
        if view.receipt:
            receipt = text_or_none(texts, "finish.receipt", view.language, receipt=view.receipt) or ""
        self.receipt_text = receipt

    def clear(self) -> None:
        super().clear()
        self.receipt_text = ""


Builder.load_file(str(Path(__file__).with_name("finish.kv")))
