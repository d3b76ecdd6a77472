"""The help layer (求助) and, while a connected call is folded away, the help bar.

The layer is a card over the dimmed screen showing where the citizen's help call stands:
- "calling" / "called" / "failed": the platform's ticket path, with the hotline (as before);
- "waiting": the help desk has the call in its queue (the hotline beside it, in case);
- "connected": who answered, first the consent question (may staff see personal fields?),
  then the staff member's newest messages, large, the newest one marked; 收起 and 结束求助;
- "ended": the call is over; 关闭 closes the card and the visit goes on where it was.

When the citizen folds a connected call away (收起), the card closes and a bar under the
header says "客服已接通" with the newest message; touching it opens the card again ("help").
A consent question is never folded away: it needs an answer, so the card shows it anyway.

Like every screen, these only show the View and forward touches (app.act): which call is
current, what the citizen may do and when it ends are the visit's business (kiosk/visit.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from config.texts import Texts
from kiosk.view import HelpCall
from kiosk.visit import View
from screens.base import Controller, text_or_none
from screens.layer import Layer
from screens.widgets import WrapLabel, show_pooled

SHOWN_MESSAGES = 3  # the newest staff messages on the card (the visit keeps up to 5)
FOLDABLE = ("waiting", "connected")  # states a call may be folded away in (收起)


def folded(call: HelpCall | None) -> bool:
    """The card is closed because the citizen folded the call away, and nothing needs an answer."""
    return (call is not None and bool(getattr(call, "minimized", False)) and call.state in FOLDABLE
            and getattr(call, "consent", "") != "asked")


def asking_consent(call: HelpCall) -> bool:
    return call.state == "connected" and getattr(call, "consent", "") == "asked"


class HelpMessage(WrapLabel):
    """One staff message on the card; the newest one is larger and marked."""

    newest = BooleanProperty(False)
    compact = BooleanProperty(False)  # body size: at its large size it would not fit the card


class HelpOverlay(Layer):
    title = StringProperty("")
    text = StringProperty("")  # the state in words (waiting, ended, ...), or the consent answer
    close_text = StringProperty("")
    end_text = StringProperty("")  # 结束求助
    minimize_text = StringProperty("")  # 收起
    from_text = StringProperty("")  # 客服 王芳：
    hint_text = StringProperty("")  # 请看屏幕上闪动的位置 (while the pointer shows)
    consent_title = StringProperty("")
    consent_text = StringProperty("")
    consent_yes = StringProperty("")
    consent_no = StringProperty("")
    mode = StringProperty("")  # what the card shows: a HelpCall state, or "consent"
    pointing = BooleanProperty(False)  # the help desk's pointer is on the screen now
    window_h = NumericProperty(800)  # the window's height: the card never grows out of it

    def __init__(self, controller: Controller, hotline: str, **kwargs: Any) -> None:
        # (built by the app, once the window is configured: importing the Window at module level
        # would open it before the kiosk sets its size)
        from kivy.core.window import Window

        self.hotline = hotline
        super().__init__(controller, **kwargs)
        self.window_h = Window.height
        Window.bind(height=lambda _w, height: setattr(self, "window_h", height))
        ids = self.ids
        # strong references: the card holds only the parts the state needs, the rest wait here
        self.card = ids.card.__self__
        self.parts: dict[str, Widget] = {name: ids[name].__self__ for name in (
            "title_label", "text_label", "status", "consent", "from_label", "messages_view", "call_buttons", "close")}
        self.message_box = ids.messages.__self__  # inside messages_view
        self.message_labels: list[HelpMessage] = []
        self._messages: tuple[str, ...] = ()
        self._parts: tuple[str, ...] = ()
        self._fit_trigger = Clock.create_trigger(self._fit_newest)
        self.parts["messages_view"].bind(height=self._fit_trigger)
        self.message_box.bind(height=self._fit_trigger)

    def show(self, view: View, texts: Texts) -> None:
        call = view.help
        assert call is not None
        lang = view.language

        def t(key: str, **values: Any) -> str:
            return texts.get(key, lang, **values)

        hotline = call.hotline or self.hotline
        staff = getattr(call, "staff", "")
        self.close_text = t("help.close")
        self.end_text = t("help.end")
        self.minimize_text = t("help.minimize")
        self.hint_text = t("help.pointer_hint")
        if asking_consent(call):
            self.mode = "consent"
            self.title = t("help.connected", staff=staff)
            self.text = ""
            self.consent_title = t("help.consent_title")
            self.consent_text = t("help.consent_text")
            self.consent_yes = t("help.consent_yes")
            self.consent_no = t("help.consent_no")
            self._messages = ()
        elif call.state == "connected":
            self.mode = "connected"
            self.title = t("help.connected", staff=staff)
            consent = getattr(call, "consent", "")
            self.text = t(f"help.consent_{consent}") if consent in ("granted", "refused") else ""
            self.from_text = t("help.message_from", staff=staff)
            self._messages = tuple(getattr(call, "messages", ()))[-SHOWN_MESSAGES:]
        else:
            self.mode = call.state
            self.title = t("help.title")
            self.text = t(f"help.{call.state}", ticket=call.ticket, hotline=hotline, staff=staff)
            if call.state == "waiting":  # the hotline too, in case the wait is long
                fallback = text_or_none(texts, "help.waiting_hotline", lang, hotline=hotline)
                if fallback:
                    self.text = f"{self.text}\n{fallback}"
            self._messages = ()
        self._compose()
        self.reveal()

    def clear(self) -> None:
        """The visit is over: no staff message stays in a label."""
        self._messages = ()
        for label in self.message_labels:
            label.text = ""
        self.title = self.text = ""
        self.mode = ""

    # -- inside ----------------------------------------------------------------------------
    def _compose(self) -> None:
        """Put on the card the parts this state needs, in order (pooled; nothing is rebuilt)."""
        mode = self.mode
        if mode == "consent":
            wanted = ["title_label", "consent"]
        elif mode == "connected":
            wanted = ["title_label", "status"]  # always there: the hint takes its place, nothing moves
            if self._messages:
                wanted += ["from_label", "messages_view"]
            wanted.append("call_buttons")
        else:
            wanted = ["title_label", "text_label", "close"]
        labels = show_pooled(self.message_box, self.message_labels, len(self._messages), HelpMessage)
        for n, (label, message) in enumerate(zip(labels, reversed(self._messages))):
            if label.text != message:
                label.compact = False  # a new message: large again, unless it does not fit
            label.text = message  # newest first, at the top, where the eye lands
            label.newest = n == 0
        self.parts["messages_view"].scroll_y = 1  # the newest, on top, in sight
        if tuple(wanted) != self._parts:
            self.card.clear_widgets()
            for name in wanted:
                self.card.add_widget(self.parts[name])
            self._parts = tuple(wanted)

    def _fit_newest(self, *_args: Any) -> None:
        """A newest message taller than the room for messages (a long one, elder mode's type, a
        short window) is set at body size rather than cut; only ever made smaller here, so the
        layout cannot swing back and forth. Longer still, the list scrolls."""
        view = self.parts["messages_view"]
        if not self.message_labels or self.message_labels[0].parent is None:
            return
        newest = self.message_labels[0]
        if newest.newest and not newest.compact and newest.height > view.height + 1:
            newest.compact = True


class HelpBar(ButtonBehavior, BoxLayout):
    """Under the header while a call is folded away: who is there and what they said last.
    The whole bar is one touch target that opens the card again."""

    action = StringProperty("open_help")  # names it for touch targets; a touch asks the visit for "help"
    status_text = StringProperty("")
    message_text = StringProperty("")
    hint_text = StringProperty("")
    pointing = BooleanProperty(False)

    def __init__(self, controller: Controller, **kwargs: Any) -> None:
        self.controller = controller
        super().__init__(**kwargs)

    def show(self, view: View, texts: Texts) -> None:
        call = view.help
        assert call is not None
        lang = view.language
        staff = getattr(call, "staff", "")
        messages = tuple(getattr(call, "messages", ()))
        # a short "客服已接通" when the catalogue has one (help.connected_short), else the card's line
        key = "help.connected" if call.state == "connected" else f"help.{call.state}"
        self.status_text = (text_or_none(texts, f"{key}_short", lang, staff=staff)
                            or texts.get(key, lang, staff=staff, hotline=call.hotline, ticket=call.ticket))
        said_by = texts.get("help.message_from", lang, staff=staff)
        space = "" if said_by.endswith(("：", " ")) else " "  # 客服 王芳：… / Wang Fang: …
        self.message_text = f"{said_by}{space}{messages[-1]}" if messages and call.state == "connected" else ""
        self.hint_text = texts.get("help.pointer_hint", lang)

    def clear(self) -> None:
        self.status_text = self.message_text = ""

    def on_release(self) -> None:
        self.controller.act("help")


Builder.load_file(str(Path(__file__).with_name("help.kv")))
