"""The citizen's own page: benefits they receive or may apply for, applications in progress,
and the way on to start a service."""
from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout

from config.texts import Texts
from kiosk.visit import View
from screens.base import KioskScreen, text_or_none
from screens.widgets import show_pooled


class BenefitRow(BoxLayout):
    title = StringProperty("")
    detail = StringProperty("")  # why, and whether granted automatically
    item_id = StringProperty("")  # "" when nothing can be applied for here
    apply_text = StringProperty("")


class ApplicationRow(BoxLayout):
    title = StringProperty("")
    detail = StringProperty("")  # status, receipt number and date


class HomeScreen(KioskScreen):
    step = "home"

    benefits_title = StringProperty("")
    applications_title = StringProperty("")
    state_text = StringProperty("")  # loading / could not be asked / nothing there
    apps_state_text = StringProperty("")
    browse_text = StringProperty("")
    notice_text = StringProperty("")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._benefits: list[BenefitRow] = []
        self._applications: list[ApplicationRow] = []

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language

        def t(key: str, **values: str) -> str:
            return texts.get(key, lang, **values)

        self.benefits_title = t("home.benefits")
        self.applications_title = t("home.applications")
        self.browse_text = t("home.browse")
        self.notice_text = "\n".join(t(key) for key in view.notices)
        home = view.home
        benefits = home.benefits if home else ()
        applications = home.applications if home else ()
        state = home.state if home else "loading"
        self.state_text = {"loading": t("home.loading"), "unavailable": t("home.unavailable")}.get(
            state, "" if benefits else t("home.no_benefits"))
        self.apps_state_text = "" if applications or state != "ready" else t("home.no_applications")
        rows = show_pooled(self.ids.benefits, self._benefits, len(benefits), self._benefit_row)
        for row, benefit in zip(rows, benefits):
            row.title = benefit.title
            status = t("home.granted") if benefit.status == "granted_automatically" else t("home.eligible")
            row.detail = f"{benefit.reason} · {status}" if benefit.reason else status
            offered = benefit.status == "eligible" and benefit.item_id
            row.item_id = (benefit.item_id or "") if offered else ""
            row.apply_text = t("home.apply")
        rows = show_pooled(self.ids.applications, self._applications, len(applications), ApplicationRow)
        for row, app in zip(rows, applications):
            row.title = app.title
            status = text_or_none(texts, f"home.status.{app.status}", lang) or app.status
            row.detail = f"{status} · " + t("home.receipt", receipt=app.receipt_number, date=app.accepted_on)

    def _benefit_row(self) -> BenefitRow:
        row = BenefitRow()
        row.ids.apply.bind(on_release=lambda _b: self.act("choose", row.item_id))
        return row

    def clear(self) -> None:
        super().clear()
        for row in self._benefits:
            row.title = row.detail = row.item_id = ""
        for row in self._applications:
            row.title = row.detail = ""


Builder.load_file(str(Path(__file__).with_name("home.kv")))
