"""The finish screen: the outcome, then one button that ends the visit.

There is no cancel button here: the application has already been handed over (or
could not be), and "取消办理" would wrongly suggest that it can still be withdrawn.
"""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import BooleanProperty, ObjectProperty, StringProperty

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen, text_or_none
from screens.qr import qr_texture


class FinishScreen(KioskScreen):
    step = "finish"

    done_text = StringProperty("")
    receipt_text = StringProperty("")
    handout_text = StringProperty("")  # how printing goes, or the other way offered
    qr_caption = StringProperty("")
    qr = ObjectProperty(None, allownone=True)  # a texture of the link's QR code, when offered
    sms_text = StringProperty("")
    sms_offered = BooleanProperty(False)

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
        self._show_handout(view, texts)

    def _show_handout(self, view: View, texts: Texts) -> None:
        handout = view.handout
        if handout is None:
            self.handout_text, self.sms_offered, self.qr, self._qr_data = "", False, None, None
            return
        key = {"sending": "handout.sms_sending", "failed": "handout.sms_failed"}.get(handout.sms,
                                                                                   handout.message_key)
        self.handout_text = texts.get(key, view.language, **handout.values)
        if handout.qr != getattr(self, "_qr_data", None):
            self._qr_data = handout.qr
            self.qr = qr_texture(handout.qr) if handout.qr else None
        self.qr_caption = texts.get("handout.qr_caption", view.language)
        self.sms_text = texts.get("handout.sms", view.language)
        self.sms_offered = handout.sms in ("offer", "failed")

    def clear(self) -> None:
        super().clear()
        self.receipt_text = ""
        self.handout_text, self.sms_offered, self.qr, self._qr_data = "", False, None, None


class TicketScreen(FinishScreen):
    """预约取号: the queue number and the ticket's printing, laid out like the finish screen."""

    step = "ticket"

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        ticket = view.handout.values.get("ticket") if view.handout is not None else None
        self.receipt_text = texts.get("ticket.number", view.language, ticket=ticket) if ticket else ""


Builder.load_file(str(Path(__file__).with_name("finish.kv")))
