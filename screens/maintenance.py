"""The technician's way in and the maintenance screen, as layers over the kiosk.

- `PinPadLayer`: a card over the dimmed attract screen: the PIN typed as dots (never digits),
  the keys 0-9, 清除, 确定, 取消, and a line saying a technician card may be placed instead.
- `MaintenanceLayer`: the whole window: the devices with their status and faults in words
  (重启 on each), the self-test with its progress and the pass/fail table, the test print, the
  outbox backlog, 退出.

Both only render `kiosk.maintenance.MaintenanceView`s and forward touches to the app's
`maintain()`, which calls the Maintenance; no rule lives here. The hidden gesture that asks
for the PIN pad is `in_corner` (where) plus kiosk.maintenance.CornerTaps (how many, how fast).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.graphics import Color, Ellipse, Line
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from config.texts import LANGUAGES, Texts
from kiosk.maintenance import CheckRow, DeviceRow, MaintenanceView
from screens.base import text_or_none
from screens.layer import Layer
from screens.theme import Theme
from screens.widgets import show_pooled

FAULT_CHARS = 160  # a fault longer than this is cut in the device list (the self-test shows it whole)
CORNER = 120  # the hidden gesture's corner, pixels at 1280 x 800 (the header title's left end)
# kiosk.device_checks' progress words -> text keys
_PROGRESS = {"self-test": "maintenance.progress.self_test", "printing a test page": "maintenance.progress.printing",
             "passed": "maintenance.checks.passed", "FAILED": "maintenance.checks.failed"}
# outcomes that went well: shown with a tick on green rather than as a warning
_GOOD = {"maintenance.self_test_passed", "maintenance.printed", "maintenance.restarted"}
_MEDIA_KIND = {"receipt_printer": "paper", "a4_printer": "paper", "idcard": "card", "smartcard": "card",
               "scanner": "document"}


def in_corner(x: float, y: float, window_height: float, scale: float) -> bool:
    """A touch at window pixels (x, y) (Kivy's: y from the bottom) in the top-left corner."""
    size = CORNER * scale
    return x <= size and y >= window_height - size


def device_label(texts: Texts, language: str, device_class: str, name: str) -> str:
    """"凭条打印机" for a device of a known class, its config name otherwise."""
    return text_or_none(texts, f"maintenance.class.{device_class}", language) or name


class Controller:  # what the layers need of the app (screens/app.py KioskApp)
    def maintain(self, action: str, *args: Any) -> None: ...


class PinDots(Widget):
    """The PIN as dots: one filled dot per digit typed, in a box; never the digits."""

    count = NumericProperty(0)
    maximum = NumericProperty(12)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        redraw = Clock.create_trigger(self._draw)  # once per frame, after the layout has placed it
        self.bind(count=redraw, maximum=redraw, pos=redraw, size=redraw)

    def _draw(self, *_args: Any) -> None:
        self.canvas.clear()
        if self.height <= 2:
            return
        shown = max(int(self.count), 4)  # four empty places before anything is typed
        d = min(self.height * 0.42, (self.width * 0.9) / max(1, shown * 1.6))
        step = d * 1.6
        x0 = self.x + 2  # from the left, under the prompt
        with self.canvas:
            for n in range(shown):
                x, y = x0 + n * step, self.center_y - d / 2
                if n < self.count:
                    Color(*Theme.blue_title)
                    Ellipse(pos=(x, y), size=(d, d))
                else:
                    Color(*Theme.line_standard)
                    Line(circle=(x + d / 2, y + d / 2, d / 2 - 1), width=1.6)


class PinPadLayer(Layer):
    title = StringProperty("")
    prompt = StringProperty("")
    hint = StringProperty("")  # "a technician card can be used instead" (when cards are configured)
    message = StringProperty("")
    clear_text = StringProperty("")
    ok_text = StringProperty("")
    cancel_text = StringProperty("")
    count = NumericProperty(0)
    maximum = NumericProperty(12)
    can_type = BooleanProperty(True)  # False while the PIN is checked, locked out, or PIN login is off
    locked_out = BooleanProperty(False)

    def show(self, view: MaintenanceView, texts: Texts) -> None:
        lang = view.language

        def t(key: str, **values: Any) -> str:
            return texts.get(key, lang, **values)

        self.title = t("maintenance.pin.title")
        self.prompt = t("maintenance.pin.prompt" if view.pin_enabled else "maintenance.pin.card_only")
        self.hint = t("maintenance.pin.card_hint") if view.cards_enabled and view.pin_enabled else ""
        if view.checking:
            self.message = t("maintenance.pin.checking")
        else:
            self.message = t(view.message_key, **view.message_values) if view.message_key else ""
        self.clear_text, self.ok_text, self.cancel_text = (t("maintenance.pin.clear"), t("maintenance.pin.ok"),
                                                           t("maintenance.pin.cancel"))
        self.count, self.maximum = view.pin_length, view.pin_max
        self.can_type = view.pin_enabled and not view.checking and not view.locked_out
        self.locked_out = view.locked_out or not view.pin_enabled  # no dots to show
        self.reveal()

    def act(self, action: str, *args: Any) -> None:
        self.controller.maintain(action, *args)


class DeviceRowView(BoxLayout):
    device = StringProperty("")  # the device's config name
    label = StringProperty("")
    state_text = StringProperty("")
    detail_text = StringProperty("")  # media and fault, in words
    restart_text = StringProperty("")
    ok = BooleanProperty(True)
    can_restart = BooleanProperty(True)

    def __init__(self, layer: MaintenanceLayer, **kwargs: Any) -> None:
        self.layer = layer
        super().__init__(**kwargs)


class CheckRowView(BoxLayout):
    label = StringProperty("")
    result_text = StringProperty("")
    detail_text = StringProperty("")
    passed = BooleanProperty(True)


class MaintenanceLayer(Layer):
    title = StringProperty("")
    subtitle = StringProperty("")  # terminal and how the technician logged in
    language_text = StringProperty("")
    language_next = StringProperty("en")
    close_text = StringProperty("")
    page = StringProperty("devices")
    page_title = StringProperty("")
    message_text = StringProperty("")
    message_good = BooleanProperty(False)  # the last action went well (a tick, not a warning)
    checks_kind = StringProperty("")
    progress_text = StringProperty("")
    empty_text = StringProperty("")  # the page has nothing to list (no devices, no checks yet)
    devices_text = StringProperty("")
    self_test_text = StringProperty("")
    test_print_text = StringProperty("")
    outbox_text = StringProperty("")
    column_device = StringProperty("")
    column_result = StringProperty("")
    column_detail = StringProperty("")
    outbox_note = StringProperty("")
    busy = BooleanProperty(False)  # a task runs: the other actions wait
    can_print = BooleanProperty(True)

    def __init__(self, controller: Any, **kwargs: Any) -> None:
        super().__init__(controller, **kwargs)
        self._device_rows: list[DeviceRowView] = []
        self._check_rows: list[CheckRowView] = []
        self._figures: list[OutboxFigure] = []

    def act(self, action: str, *args: Any) -> None:
        self.controller.maintain(action, *args)

    def show(self, view: MaintenanceView, texts: Texts) -> None:
        lang = view.language

        def t(key: str, **values: Any) -> str:
            return texts.get(key, lang, **values)

        labels = {r.name: device_label(texts, lang, r.device_class, r.name) for r in view.devices}
        self.title = t("maintenance.title")
        who = (t("maintenance.who.card", card=view.who.split(":", 1)[1]) if view.who.startswith("card:")
               else t("maintenance.who.pin"))
        self.subtitle = f"{t('maintenance.terminal', terminal=view.terminal_id)}  ·  {who}"
        now = LANGUAGES.index(lang) if lang in LANGUAGES else 0
        self.language_text = texts.get("maintenance.language", lang)
        self.language_next = LANGUAGES[(now + 1) % len(LANGUAGES)]
        self.close_text = t("maintenance.button.close")
        self.devices_text = t("maintenance.button.devices")
        self.self_test_text = t("maintenance.button.self_test")
        self.test_print_text = t("maintenance.button.test_print")
        self.outbox_text = t("maintenance.button.outbox")
        self.busy = view.task is not None
        self.can_print = bool(view.printer)
        self.page = view.page
        values = dict(view.message_values)
        if "device" in values:
            values["device"] = labels.get(values["device"], values["device"])
        self.message_text = t(view.message_key, **values) if view.message_key else ""
        self.message_good = view.message_key in _GOOD
        self.checks_kind = view.checks_kind
        self.progress_text = self._progress(view, texts, labels)
        self.empty_text = ""
        # rows only on the page shown (a hidden page holds no widgets a touch could reach)
        if view.page != "devices":
            show_pooled(self.ids.device_list, self._device_rows, 0, lambda: DeviceRowView(self))
        if view.page != "checks":
            show_pooled(self.ids.check_list, self._check_rows, 0, CheckRowView)
        if view.page != "outbox":
            show_pooled(self.ids.outbox_list, self._figures, 0, OutboxFigure)
        if view.page == "devices":
            self.page_title = t("maintenance.devices.title")
            self._show_devices(view, texts, labels)
            if not view.devices:
                self.empty_text = t("maintenance.devices.none")
        elif view.page == "checks":
            kind = view.checks_kind or "self_test"
            self.page_title = t(f"maintenance.checks.title_{kind}")
            self.column_device = t("maintenance.checks.column.device")
            self.column_result = t("maintenance.checks.column.result")
            self.column_detail = t("maintenance.checks.column.detail")
            self._show_checks(view, texts)
            if not view.checks and view.task is None and not self.message_text:
                self.empty_text = t("maintenance.checks.none")
        else:
            self.page_title = t("maintenance.outbox.title")
            self._show_outbox(view, texts)
            self.outbox_note = t("maintenance.outbox.note") if view.outbox is not None else ""
        self.reveal()

    def _progress(self, view: MaintenanceView, texts: Texts, labels: dict[str, str]) -> str:
        lang = view.language
        if view.task is None:
            return ""
        if view.task == "restart":
            device = labels.get(view.task_device, view.task_device)
            return texts.get("maintenance.restarting", lang, device=device)
        head = texts.get("maintenance.checks.running" if view.task == "self_test" else "maintenance.checks.printing",
                         lang)
        if not view.progress:
            return head
        name, what = view.progress[-1]
        key = _PROGRESS.get(what)
        said = texts.get(key, lang) if key else what
        return f"{head}  {labels.get(name, name)}：{said}"

    def _show_devices(self, view: MaintenanceView, texts: Texts, labels: dict[str, str]) -> None:
        lang = view.language
        rows = show_pooled(self.ids.device_list, self._device_rows, len(view.devices), lambda: DeviceRowView(self))
        for widget, row in zip(rows, view.devices, strict=True):
            widget.device = row.name
            widget.label = f"{labels[row.name]}  ({row.name})" if labels[row.name] != row.name else row.name
            widget.state_text = text_or_none(texts, f"maintenance.state.{row.state}", lang) or row.state
            widget.detail_text = _device_detail(row, texts, lang)
            widget.restart_text = texts.get("maintenance.button.restart", lang)
            widget.ok = row.ok
            widget.can_restart = view.task is None

    def _show_checks(self, view: MaintenanceView, texts: Texts) -> None:
        lang = view.language
        rows = show_pooled(self.ids.check_list, self._check_rows, len(view.checks), CheckRowView)
        for widget, row in zip(rows, view.checks, strict=True):
            widget.label = device_label(texts, lang, row.device_class, row.name)
            widget.passed = row.passed
            widget.result_text = texts.get("maintenance.checks.passed" if row.passed else "maintenance.checks.failed",
                                           lang)
            widget.detail_text = _check_detail(row, texts, lang)

    def _show_outbox(self, view: MaintenanceView, texts: Texts) -> None:
        lang = view.language
        counts = list(view.outbox or ())
        rows = show_pooled(self.ids.outbox_list, self._figures, len(counts), OutboxFigure)
        for widget, (state, count) in zip(rows, counts, strict=True):
            widget.label = text_or_none(texts, f"maintenance.outbox.{state}", lang) or state
            widget.value = str(count)


class OutboxFigure(BoxLayout):
    label = StringProperty("")
    value = StringProperty("")


def _device_detail(row: DeviceRow, texts: Texts, lang: str) -> str:
    parts = []
    kind = _MEDIA_KIND.get(row.device_class)
    if kind and row.media not in ("unknown", "not_supported"):
        media = text_or_none(texts, f"maintenance.media.{kind}.{row.media}", lang)
        if media:
            parts.append(media)
    if row.fault and row.fault != "closed":
        fault = row.fault
        if len(fault) > FAULT_CHARS:  # cut at a word where there is one
            cut = fault[:FAULT_CHARS]
            fault = (cut[:cut.rfind(" ")] if " " in cut[FAULT_CHARS // 2:] else cut).rstrip(" ,;:") + " …"
        parts.append(texts.get("maintenance.fault", lang, fault=fault))
    elif row.state != "online":
        parts.append(texts.get("maintenance.fault", lang, fault=texts.get("maintenance.state.closed", lang)
                               if row.fault == "closed" else row.state))
    return "；".join(parts) if lang == "zh-CN" else "; ".join(parts)


def _check_detail(row: CheckRow, texts: Texts, lang: str) -> str:
    ok = sum(1 for _n, passed, _d in row.results if passed)
    lines = [texts.get("maintenance.checks.summary", lang, ok=ok, total=len(row.results),
                       seconds=f"{row.duration_s:.1f}")]
    for name, passed, detail in row.results:
        if not passed:
            lines.append(f"✘ {name}: {detail}")
    if row.printed is True and row.print_detail:
        lines.append(f"✔ {row.print_detail}")
    return "\n".join(lines)


Builder.load_file(str(Path(__file__).with_name("maintenance.kv")))
