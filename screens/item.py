"""The screens of handling one chosen item: notice, form, materials and review.

They share a frame: the item's title, "第 n 步，共 m 步", cancel on the left, back and the
way forward on the right. Each screen fills its own middle part.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from config.texts import Texts
from kiosk.view import FieldView, MaterialView
from kiosk.visit import View
from screens.base import KioskScreen
from screens.widgets import WrapLabel, show_pooled


class ItemScreen(KioskScreen):
    position_text = StringProperty("")
    back_text = StringProperty("")
    next_text = StringProperty("")
    next_action = "next"

    def on_pre_enter(self, *_args: Any) -> None:
        """Each step opens at the top of its list, not where the last citizen left it."""
        scroll = self.ids.get("scroll")
        if scroll is not None:
            scroll.scroll_y = 1

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        n, m = view.position
        self.position_text = texts.get("header.position", view.language, n=n, m=m) if m else ""
        self.back_text = texts.get("common.back", view.language)
        self.next_text = texts.get("common.next", view.language)
        self.message_text = (texts.get(view.message_key, view.language, **view.message_values)
                             if view.message_key else "")


# -- notice -------------------------------------------------------------------------------------
class NoticeScreen(ItemScreen):
    step = "notice"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lines: list[WrapLabel] = []

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language
        self.next_text = texts.get("notice.accept", lang)
        item = view.item
        if item is None:
            return
        # the document, as (style, text) lines: a section title or a paragraph
        doc: list[tuple[str, str]] = []
        if item.summary:
            doc.append(("lead", item.summary))
        if item.notice:
            doc.append(("box", item.notice))
        if item.steps:
            doc.append(("head", texts.get("notice.how", lang)))
            doc += [("text", f"{n}. {step}") for n, step in enumerate(item.steps, 1)]
        if item.includes:
            doc.append(("head", texts.get("notice.includes", lang)))
            doc += [("text", f"· {name}") for name in item.includes]
        if item.departments:
            doc.append(("head", texts.get("notice.departments", lang)))
            doc.append(("text", "、".join(item.departments) if lang == "zh-CN" else "; ".join(item.departments)))
        if item.time_limit_days:
            doc.append(("text", texts.get("notice.time_limit", lang, days=item.time_limit_days)))
        lines = show_pooled(self.ids.doc, self._lines, len(doc), WrapLabel)
        for label, (style, text) in zip(lines, doc):
            label.text = text
            label.bold = style == "head"
            label.font_size = self._size(style)
            label.color = self._colour(style)

    def _size(self, style: str) -> float:
        from kivy.app import App

        theme = App.get_running_app().theme
        return theme.subtitle if style in ("head", "lead") else theme.body

    def _colour(self, style: str) -> list[float]:
        from kivy.app import App

        theme = App.get_running_app().theme
        return list(theme.blue_title if style == "head" else theme.notice_text if style == "box" else theme.text)

    def clear(self) -> None:
        super().clear()
        for label in self._lines:
            label.text = ""


# -- form ---------------------------------------------------------------------------------------
class FieldRow(BoxLayout):
    key = StringProperty("")
    label = StringProperty("")
    value = StringProperty("")
    tag = StringProperty("")  # 必填
    source = StringProperty("")  # 来自身份证 / 来自政务数据共享
    problem = StringProperty("")
    button_text = StringProperty("")
    editable = BooleanProperty(False)


class FormScreen(ItemScreen):
    step = "form"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: list[FieldRow] = []
        self.fields: tuple[FieldView, ...] = ()
        self.language = "zh-CN"

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language
        self.fields, self.language = view.fields, lang
        rows = show_pooled(self.ids.table, self._rows, len(view.fields), self._row)
        for row, f in zip(rows, view.fields):
            row.key, row.label, row.value = f.key, f.label, f.value
            row.tag = texts.get("common.required", lang) if f.required else ""
            row.source = texts.get(f"form.from_{f.source}", lang) if f.source else ""
            row.problem = texts.get(f.problem, lang) if f.problem else ""
            row.editable = f.editable
            row.button_text = texts.get("form.edit" if f.raw else "form.fill", lang)
        wrong = next((row for row, f in zip(rows, view.fields) if f.problem), None)
        if wrong is not None and view.reason in ("missing", "invalid"):
            # the field to fix, in sight: after the layout has placed the rows
            Clock.schedule_once(lambda _dt: self._bring_into_sight(wrong), 0)

    def _bring_into_sight(self, row: Any) -> None:
        scroll = self.ids.scroll
        scroll.scroll_to(row, padding=20, animate=False)
        # Kivy sets scroll_y but leaves its scroll effect where the list was: the citizen's next
        # drag would start from there and the list would jump back. The effect follows.
        scroll._update_effect_bounds()

    def _row(self) -> FieldRow:
        row = FieldRow()
        row.ids.edit.bind(on_release=lambda _b: self.edit(row.key))
        return row

    def edit(self, key: str) -> None:
        """Open the keyboard (or the list of choices) for one field."""
        field = next((f for f in self.fields if f.key == key), None)
        if field is None or not field.editable:
            return
        self.controller.edit_field(field, self.language)

    def clear(self) -> None:
        super().clear()
        self.fields = ()
        for row in self._rows:
            row.value = row.label = ""  # names, ID numbers and addresses leave with the visit


# -- materials ----------------------------------------------------------------------------------
class MaterialRow(BoxLayout):
    material_id = StringProperty("")
    title = StringProperty("")
    tag = StringProperty("")
    status = StringProperty("")
    provided = StringProperty("")
    commitment = StringProperty("")
    scan_text = StringProperty("")  # "" when scanning is not offered
    remove_text = StringProperty("")  # "" when there is no scan to remove
    promise_text = StringProperty("")  # "" when it cannot be promised
    promise_action = StringProperty("promise")


class MaterialsScreen(ItemScreen):
    step = "materials"
    scanning_text = StringProperty("")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: list[MaterialRow] = []

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language

        def t(key: str, **values: Any) -> str:
            return texts.get(key, lang, **values)

        self.scanning_text = t("materials.scanning") if view.scanning else ""
        rows = show_pooled(self.ids.table, self._rows, len(view.materials), self._row)
        for row, m in zip(rows, view.materials):
            row.material_id, row.title, row.provided = m.id, m.title, m.provided
            row.tag = t("common.required") if m.required else t("common.optional")
            row.status = self._status(m, t)
            # the commitment is read before promising, and while promised; not once the paper is there
            row.commitment = (t("materials.commitment", text=m.commitment)
                              if m.commitment and m.promise_allowed and m.provided in ("", "promise") else "")
            offered = m.can_scan and m.provided != "e_licence" and view.scanning is None
            row.scan_text = (t("materials.rescan") if m.provided == "scan" else t("materials.scan")) if offered else ""
            row.remove_text = t("materials.remove_scan") if m.provided == "scan" and view.scanning is None else ""
            if m.promise_allowed and m.provided in ("", "promise"):
                row.promise_action = "withdraw_promise" if m.provided == "promise" else "promise"
                row.promise_text = t("materials.withdraw") if m.provided == "promise" else t("materials.promise")
            else:
                row.promise_text = ""

    @staticmethod
    def _status(m: MaterialView, t: Any) -> str:
        if m.provided == "e_licence":
            return t("materials.e_licence", licence=m.licence_title or m.title)
        return {"scan": t("materials.scanned"), "promise": t("materials.promised")}.get(
            m.provided, t("materials.not_provided"))

    def _row(self) -> MaterialRow:
        row = MaterialRow()
        row.ids.scan.bind(on_release=lambda _b: self.act("scan", row.material_id))
        row.ids.unscan.bind(on_release=lambda _b: self.act("detach_scan", row.material_id))
        row.ids.promise.bind(on_release=lambda _b: self.act(row.promise_action, row.material_id))
        return row


# -- review -------------------------------------------------------------------------------------
class ReviewRow(BoxLayout):
    """One line of the application: its label on the left, the value on the right."""

    key = StringProperty("")
    label = StringProperty("")
    value = StringProperty("")


class ReviewScreen(ItemScreen):
    step = "review"
    next_action = "confirm"
    fields_title = StringProperty("")
    materials_title = StringProperty("")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rows: list[ReviewRow] = []
        self._material_rows: list[ReviewRow] = []

    def show(self, view: View, texts: Texts) -> None:
        super().show(view, texts)
        lang = view.language
        self.next_text = texts.get("review.confirm", lang)
        self.fields_title = view.item.title if view.item else ""
        self.materials_title = texts.get("review.materials", lang) if view.materials else ""
        rows = show_pooled(self.ids.table, self._rows, len(view.fields), ReviewRow)
        for row, f in zip(rows, view.fields):
            row.key, row.label, row.value = f.key, f.label, f.value
        rows = show_pooled(self.ids.materials, self._material_rows, len(view.materials), ReviewRow)
        for row, m in zip(rows, view.materials):
            row.key, row.label = m.id, m.title
            row.value = MaterialsScreen._status(m, lambda key, **v: texts.get(key, lang, **v))

    def clear(self) -> None:
        super().clear()
        for row in self._rows + self._material_rows:
            row.value = ""  # names, ID numbers and addresses leave the widgets with the visit


Builder.load_file(str(Path(__file__).with_name("item.kv")))
