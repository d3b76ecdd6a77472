"""The touchscreen app: one ScreenManager, one screen per step, all built once.

The screens hold no business rules. The app subscribes to the Visit, renders each
View on the UI thread, and forwards touches to the Visit's actions. It also:

- counts every touch anywhere as "the citizen is still here" (`visit.keep_alive`);
- drives the idle timer (`visit.tick()` once a second) and shows the idle warning
  as a layer over the current screen;
- opens the technician's PIN pad after five touches in the top-left corner of the attract
  screen within 3 s, and shows the maintenance screen once kiosk/maintenance.py lets them in;
- never lets Esc, F1 or a window-manager close request end the kiosk (full screen);
  SIGTERM and SIGINT stop it cleanly, so a watchdog can restart it;
- shows the help call (screens/help.py): the help card, the help bar under the header while a
  connected call is folded away, and the help desk's pointer ring on top of everything
  (screens/pointer.py);
- keeps a snapshot of the touch targets as window fractions (`layout_fractions`), which the
  terminal's fleet agent reads from its own thread to show staff where the buttons are;
- test and bench hooks: with KIOSK_SCREENSHOT_DIR set it saves a screenshot after
  each step change (`attract0001.png`, `identify0001.png`, `warning0001.png`, ...),
  with KIOSK_BENCH=1 it prints `KIOSK_BENCH first_frame <unix time>` on its first frame.

Kivy settings that must precede the window (size, full screen, Esc) are applied in
the KioskApp constructor, so import this module and build the app before anything
imports `kivy.core.window`.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from kivy.app import App
from kivy.clock import Clock
from kivy.config import Config
from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import NoTransition

from config.texts import LANGUAGES, Texts
from kiosk.chinese_input import engines
from kiosk.maintenance import CornerTaps, MaintenanceState, MaintenanceView, NotNow
from kiosk.view import FieldView
from kiosk.visit import InvalidTransition, View, Visit
from screens import widgets  # noqa: F401  (registers the shared widget rules)
from screens.attract import AttractScreen
from screens.base import KioskScreen
from screens.choice_picker import ChoicePicker
from screens.choose import ChooseScreen
from screens.face import FaceScreen
from screens.field_editor import FieldEditor
from screens.finish import FinishScreen, TicketScreen
from screens.fonts import register_chinese_font
from screens.help import HelpBar, HelpOverlay, folded
from screens.home import HomeScreen
from screens.identify import IdentifyScreen
from screens.idle import IdleOverlay
from screens.item import FormScreen, MaterialsScreen, NoticeScreen, ReviewScreen
from screens.maintenance import MaintenanceLayer, PinPadLayer, in_corner
from screens.pointer import PointerRing
from screens.rating import RatingScreen
from screens.theme import Theme
from screens.widgets import actionable, touch_targets_in

log = logging.getLogger(__name__)

SCREENS: tuple[type[KioskScreen], ...] = (AttractScreen, IdentifyScreen, FaceScreen, HomeScreen, ChooseScreen,
                                           NoticeScreen, FormScreen, MaterialsScreen, ReviewScreen,
                                           FinishScreen, RatingScreen, TicketScreen)
# what a touch may ask of the visit; "language" toggles to the next language
ACTIONS = ("start", "browse", "filter_services", "search", "choose", "next", "correct", "promise",
           "withdraw_promise", "scan", "detach_scan", "confirm", "back", "cancel", "finish", "rate",
           "keep_alive", "language", "request_sms", "repeat", "toggle_voice", "toggle_elder", "help",
           "close_help", "give_consent", "end_help", "minimize_help")
# what a touch may ask of the technician's maintenance (kiosk/maintenance.py); "request" is the
# hidden gesture on the attract screen (5 touches in the top-left corner within 3 s)
MAINTENANCE_ACTIONS = ("request", "press_digit", "clear_pin", "submit_pin", "cancel", "close", "show_devices",
                       "self_test", "test_print", "restart", "show_outbox", "set_language")
# the keyboard's ways of typing, by form field type
_FIELD_MODES = {"phone": (["digits"], "-"), "number": (["digits"], "."), "date": (["digits"], "-")}
_TEXT_MODES = ["pinyin", "handwriting", "letters", "digits"]
SHOT_DELAY_S = 0.3  # a screenshot waits this long after a change, then for the next frame
LAYOUT_DELAY_S = 0.1  # the touch-target snapshot waits this long after a change (layout settles)
KEY_ESCAPE = 27
KEY_F1 = 282


def configure_kivy(ui: Any) -> None:
    """Kivy settings for a kiosk; the window takes them when it opens."""
    Config.set("kivy", "exit_on_escape", "0")
    # right clicks must not leave multitouch-emulation dots; a touchscreen that also
    # reports as a mouse must not give every touch twice
    Config.set("input", "mouse", "mouse,disable_multitouch,disable_on_activity")
    Config.set("graphics", "fullscreen", "auto" if ui.fullscreen else "0")
    Config.set("graphics", "width", str(ui.width))
    Config.set("graphics", "height", str(ui.height))
    Config.set("graphics", "show_cursor", "0" if ui.fullscreen else "1")
    if "kivy.core.window" in sys.modules:  # the window exists already: change it in place
        from kivy.core.window import Window

        log.warning("Kivy's window opened before the kiosk configured it; resizing it")
        if ui.fullscreen:
            Window.fullscreen = "auto"
        else:
            Window.fullscreen = False
            Window.size = (ui.width, ui.height)
        Window.show_cursor = not ui.fullscreen


class KioskRoot(BoxLayout):
    """The frame around every screen: the blue header with the language toggle."""

    app_title = StringProperty("")
    language_text = StringProperty("")
    repeat_text = StringProperty("")  # 重听: hear the prompt again
    voice_text = StringProperty("")  # 静音 / 打开语音: the citizen's mute for this visit
    elder_text = StringProperty("")  # 长辈模式 / 标准模式
    help_text = StringProperty("")  # 求助, on every screen


class KioskApp(App):
    __events__ = ("on_view_shown", "on_screenshot", "on_first_frame", "on_maintenance_shown")

    use_kivy_settings = False

    def __init__(self, terminal: Any = None, *, visit: Visit | None = None,
                 texts: Texts | None = None, ui: Any = None,
                 screenshot_dir: str | None = None, bench: bool | None = None,
                 **kwargs: Any) -> None:
        self.terminal = terminal
        if terminal is not None:
            visit = visit or terminal.visit
            texts = texts or terminal.texts
            ui = ui or terminal.cfg.ui
        if visit is None or texts is None or ui is None:
            raise TypeError("KioskApp needs a terminal, or visit=, texts= and ui=")
        configure_kivy(ui)
        # before any widget is built; fails here, before a window opens, with the paths tried
        self.font_path = register_chinese_font(ui.font, ui.font_candidates)
        super().__init__(**kwargs)
        self.visit = visit
        self.texts = texts
        self.ui = ui
        self.theme = Theme()
        self.title = texts.get("app.title", visit.language)
        if screenshot_dir is None:
            screenshot_dir = os.environ.get("KIOSK_SCREENSHOT_DIR") or None
        self.screenshot_dir = screenshot_dir
        self.bench = os.environ.get("KIOSK_BENCH") == "1" if bench is None else bench
        self.stop_requested = threading.Event()  # set from signal handlers or other threads
        self.screens: dict[str, KioskScreen] = {}
        self.overlay: IdleOverlay | None = None
        self.help_overlay: HelpOverlay | None = None
        self.help_bar: HelpBar | None = None  # under the header while a help call is folded away
        self.pointer: PointerRing | None = None  # the help desk's pointer
        self._pointed: tuple[str, int] | None = None  # (call id, seq) of the last pointer shown
        # touch targets as window fractions, rebuilt on the UI thread after each change and
        # replaced whole (never changed in place), so another thread may read it any time
        self._layout: dict[str, list[float]] = {}
        self._labels: dict[str, str] = {}  # the words on each target, for the help desk's mirror
        self._layout_trigger: Callable[..., Any] | None = None
        self.editor: FieldEditor | None = None
        self.picker: ChoicePicker | None = None
        # the technician's PIN pad and maintenance screen (when the terminal has a Maintenance)
        self.maintenance = getattr(terminal, "maintenance", None)
        self.pin_pad: PinPadLayer | None = None
        self.maintenance_layer: MaintenanceLayer | None = None
        self.corner_taps = CornerTaps()
        self._maintenance_views: deque[MaintenanceView] = deque()
        self._maintenance_trigger: Callable[..., Any] | None = None
        self._maintenance_shown: MaintenanceView | None = None
        self.first_frame_at: float | None = None
        self._views: deque[View] = deque()
        self._render_trigger: Callable[..., Any] | None = None
        self._shown: View | None = None
        self._running = False
        self._shot_event: Any = None
        self._shot_name = ""
        self._intervals: list[Any] = []

    # -- building ----------------------------------------------------------------------
    def build(self) -> KioskRoot:
        from kivy.core.window import Window

        Window.clearcolor = Theme.page
        self.theme.fit(*Window.size)
        Window.bind(size=self._on_window_size, on_keyboard=self._on_keyboard,
                    on_request_close=self._on_request_close, on_touch_down=self._on_any_touch)
        root = KioskRoot()
        manager = root.ids.manager
        manager.transition = NoTransition()
        for cls in SCREENS:
            screen = cls(self)
            self.screens[screen.name] = screen
            manager.add_widget(screen)
        self.manager = manager
        self.frame = root
        self.overlay = IdleOverlay(self)
        self.help_overlay = HelpOverlay(self, getattr(self.ui, "help_hotline", "12345"))
        self.help_bar = HelpBar(self)
        self.pointer = PointerRing()
        self.pointer.bind(showing=self._on_pointer_showing)
        self._layout_trigger = Clock.create_trigger(self._snapshot_layout, LAYOUT_DELAY_S)
        if self.terminal is not None and hasattr(self.terminal, "layout_provider"):
            self.terminal.layout_provider = self.screen_layout  # the fleet agent's view of the buttons
        self.editor = FieldEditor()
        self.picker = ChoicePicker()
        if self.maintenance is not None:
            self.pin_pad = PinPadLayer(self)
            self.maintenance_layer = MaintenanceLayer(self)
            self._maintenance_trigger = Clock.create_trigger(self._drain_maintenance)
            self.maintenance.subscribe(self._on_maintenance_view)
        engines().start_loading()  # the pinyin dictionary takes seconds: load it before anyone types
        self._render_trigger = Clock.create_trigger(self._drain)
        self._running = True
        self.visit.subscribe(self._on_view)
        self._render(self.visit.view("app_start"))
        self._intervals = [Clock.schedule_interval(self._tick, 1.0),
                           Clock.schedule_interval(self._check_stop, 0.2)]
        return root

    def on_start(self) -> None:
        from kivy.core.window import Window

        Window.bind(on_flip=self._on_first_flip)

    def on_stop(self) -> None:
        from kivy.core.window import Window

        self._running = False
        for event in self._intervals:
            event.cancel()
        if self._shot_event is not None:
            self._shot_event.cancel()
        Window.unbind(size=self._on_window_size, on_keyboard=self._on_keyboard,
                      on_request_close=self._on_request_close, on_touch_down=self._on_any_touch)

    def open_settings(self, *_args: Any) -> bool:  # F1 must not open Kivy's settings panel
        return False

    # -- events other code may bind to (tests, the bench, remote view) ------------------
    def on_view_shown(self, view: View) -> None:
        """A view is on the screen (after rendering, on the UI thread)."""

    def on_screenshot(self, name: str, path: str) -> None:
        """A screenshot was written to `path`."""

    def on_first_frame(self) -> None:
        """The first frame is about to be shown."""

    def on_maintenance_shown(self, view: MaintenanceView) -> None:
        """A maintenance view (PIN pad, maintenance screen, or neither) is on the screen."""

    # -- the visit -> the screen ---------------------------------------------------------
    def _on_view(self, view: View) -> None:
        """Visit listener; may be called from any thread (device threads, the UI thread)."""
        if not self._running or self._render_trigger is None:
            return
        self._views.append(view)
        self._render_trigger()  # thread-safe; renders on the UI thread, in order

    def _drain(self, _dt: float = 0.0) -> None:
        while self._views:
            view = self._views.popleft()
            try:
                self._render(view)
            except Exception:
                log.exception("rendering step %s failed", view.step.value)

    def _render(self, view: View) -> None:
        root = self.frame
        root.app_title = self.texts.get("app.title", view.language)
        root.language_text = self.texts.get("attract.language", view.language)
        root.repeat_text = self.texts.get("header.repeat", view.language)
        root.voice_text = self.texts.get("header.mute" if view.voice_on else "header.unmute", view.language)
        # the button offers the other mode
        root.elder_text = self.texts.get("header.elder_off" if view.elder else "header.elder_on", view.language)
        root.help_text = self.texts.get("header.help", view.language)
        if self.theme.elder != view.elder:
            self.theme.elder = view.elder
        assert self.overlay is not None and self.help_overlay is not None
        if self._shown is None or view.step != self._shown.step or view.language != self._shown.language:
            self._close_input()  # typing belongs to the step (and language) it started on
        self._render_help(view)
        if view.warning_seconds is not None:
            was_open = self.overlay.is_open
            self.overlay.show(view, self.texts)
            if not was_open:
                self._schedule_shot("warning")
        else:
            self.overlay.hide()
            screen = self.screens[view.step.value]
            screen.show(view, self.texts)
            if self.manager.current != screen.name:
                self.manager.current = screen.name
                for other in self.screens.values():
                    if other is not screen:
                        other.clear()
                self._schedule_shot(view.step.value)
            elif view.reason == "language":
                self._schedule_shot(f"{view.step.value}-{view.language}")
        self._shown = view
        self._refresh_layout()
        self.dispatch("on_view_shown", view)

    def _render_help(self, view: View) -> None:
        """The help card, the help bar (a call folded away) and the help desk's pointer."""
        assert self.help_overlay is not None and self.help_bar is not None and self.pointer is not None
        call = view.help
        if call is not None and view.warning_seconds is None and not folded(call):
            self.help_overlay.show(view, self.texts)
        else:
            self.help_overlay.hide()
            if call is None and self.help_overlay.mode:
                self.help_overlay.clear()  # the call is over: no staff message stays in a label
        bar, frame = self.help_bar, self.frame
        if folded(call):
            self.help_bar.show(view, self.texts)
            if bar.parent is None:
                frame.add_widget(bar, index=len(frame.children) - 1)  # right under the header
        elif bar.parent is not None:
            frame.remove_widget(bar)
            bar.clear()
        pointer = getattr(call, "pointer", None) if call is not None and call.state == "connected" else None
        if pointer is None:
            if call is None or call.state != "connected":
                self.pointer.hide()
                self._pointed = None
        elif (getattr(call, "call_id", ""), pointer[2]) != self._pointed:
            self._pointed = (getattr(call, "call_id", ""), pointer[2])
            self.pointer.point(pointer[0], pointer[1], self.theme.scale)

    def _on_pointer_showing(self, _ring: Any, showing: bool) -> None:
        if self.help_overlay is not None:
            self.help_overlay.pointing = showing  # 请看屏幕上闪动的位置, while it flashes
        if self.help_bar is not None:
            self.help_bar.pointing = showing

    def _close_input(self) -> None:
        if self.editor is not None:
            self.editor.close()
        if self.picker is not None:
            self.picker.close()

    # -- typing: the on-screen keyboard and the choice list ---------------------------------
    def edit_text(self, label: str, value: str, modes: list[str], on_done: Callable[[str], None], *,
                  hint: str = "", max_length: int = 0, extra_keys: str = "") -> None:
        assert self.editor is not None
        self.editor.edit(label, value, modes, on_done, language=self.visit.language, hint=hint,
                         max_length=max_length, extra_keys=extra_keys)
        self._refresh_layout()

    def edit_field(self, field: FieldView, language: str) -> None:
        """The citizen touched a form field: its choices, or the keyboard that suits its type.
        A value the visit refuses keeps the keyboard open with the reason under the value."""
        texts = self.texts
        if field.type == "choice" and field.choices:
            assert self.picker is not None
            self.picker.pick(field.label, field.choices, field.raw, lambda value: self.act("correct", field.key, value),
                             texts.get("keyboard.cancel", language))
            self._refresh_layout()
            return
        modes, extra = _FIELD_MODES.get(field.type, (_TEXT_MODES, ""))
        max_length = {"phone": 13, "date": 10, "number": 12}.get(field.type, 100)
        if "id_number" in field.key:  # an ID number: digits and the X check character
            modes, extra, max_length = ["digits"], "X", 18
        hint = texts.get(f"form.problem.{field.type}", language) if field.type in ("date", "phone") else ""

        def done(text: str) -> None:
            self.act("correct", field.key, text)
            now = next((f for f in self.visit.view().fields if f.key == field.key), None)
            if now is not None and now.problem and self.editor is not None:
                self.editor.set_error(texts.get(now.problem, language))

        self.edit_text(field.label, field.raw, modes, done, hint=hint, max_length=max_length, extra_keys=extra)

    def camera_frame(self) -> Any:
        """The newest camera picture for the face screen's preview, or None."""
        face = getattr(self.terminal, "face", None)
        return face.preview() if face is not None else None

    # -- the screen -> the visit ---------------------------------------------------------
    def act(self, action: str, *args: Any) -> None:
        """Forward a touch to the visit; a stale touch (double tap) is ignored, never fatal."""
        try:
            if action == "language":
                now = LANGUAGES.index(self.visit.language) if self.visit.language in LANGUAGES else -1
                self.visit.set_language(LANGUAGES[(now + 1) % len(LANGUAGES)])
            elif action in ACTIONS:
                getattr(self.visit, action)(*args)
            else:
                log.error("unknown touch action %r", action)
        except InvalidTransition as exc:
            log.info("touch %s ignored: %s", action, exc)
        except Exception:
            log.exception("touch %s failed", action)

    def _on_any_touch(self, window: Any, touch: Any) -> bool:
        maintenance = self.maintenance
        if maintenance is not None:  # the technician is still there, or the hidden gesture
            if maintenance.active:
                maintenance.touch()
            elif in_corner(touch.x, touch.y, window.height, self.theme.scale) and self.corner_taps.tap():
                self.maintain("request", self.visit.language)
        self.act("keep_alive")
        return False  # let the touch go on to the widgets

    def _tick(self, _dt: float) -> None:
        try:
            self.visit.tick()
        except Exception:
            log.exception("visit tick failed")
        if self.maintenance is not None:
            try:
                self.maintenance.tick()  # the PIN pad and the open screen close when left alone
            except Exception:
                log.exception("maintenance tick failed")

    # -- the technician's maintenance (kiosk/maintenance.py; screens/maintenance.py) ----------
    def maintain(self, action: str, *args: Any) -> None:
        """Forward a touch on the PIN pad or the maintenance screen; a stale one is ignored."""
        if self.maintenance is None or action not in MAINTENANCE_ACTIONS:
            log.error("unknown maintenance action %r", action)
            return
        try:
            getattr(self.maintenance, action)(*args)
        except NotNow as exc:
            log.info("maintenance touch %s ignored: %s", action, exc)
        except Exception:
            log.exception("maintenance touch %s failed", action)

    def _on_maintenance_view(self, view: MaintenanceView) -> None:
        """Maintenance listener; called from any thread (workers report progress)."""
        if not self._running or self._maintenance_trigger is None:
            return
        self._maintenance_views.append(view)
        self._maintenance_trigger()

    def _drain_maintenance(self, _dt: float = 0.0) -> None:
        while self._maintenance_views:
            view = self._maintenance_views.popleft()
            try:
                self._render_maintenance(view)
            except Exception:
                log.exception("rendering maintenance (%s) failed", view.state.value)

    def _render_maintenance(self, view: MaintenanceView) -> None:
        assert self.pin_pad is not None and self.maintenance_layer is not None
        before = self._maintenance_shown.state if self._maintenance_shown is not None else MaintenanceState.LOCKED
        if view.state is MaintenanceState.ASKING:
            self.maintenance_layer.hide()
            self.pin_pad.show(view, self.texts)
        elif view.state is MaintenanceState.OPEN:
            self.pin_pad.hide()
            self.maintenance_layer.show(view, self.texts)
        else:
            self.pin_pad.hide()
            self.maintenance_layer.hide()
            self.corner_taps.reset()
        if view.state is not before:
            self._schedule_shot({MaintenanceState.ASKING: "maintenance-pin", MaintenanceState.OPEN: "maintenance",
                                 MaintenanceState.LOCKED: "attract"}[view.state])
        self._maintenance_shown = view
        self._refresh_layout()
        self.dispatch("on_maintenance_shown", view)

    # -- the window ----------------------------------------------------------------------
    def _on_window_size(self, _window: Any, size: tuple[int, int]) -> None:
        self.theme.fit(*size)
        self._refresh_layout()

    def _on_keyboard(self, _window: Any, key: int, *_args: Any) -> bool:
        if key in (KEY_ESCAPE, KEY_F1):
            return True  # swallowed: Esc never closes the kiosk, F1 opens nothing
        return False

    def _on_request_close(self, _window: Any, *_args: Any, **kwargs: Any) -> bool:
        if self.stop_requested.is_set():
            return False
        if kwargs.get("source") == "keyboard" or self.ui.fullscreen:
            log.info("close request refused (source %s)", kwargs.get("source", "window manager"))
            return True
        return False  # a development window may be closed

    def _check_stop(self, _dt: float) -> None:
        if self.stop_requested.is_set():
            self.stop()

    # -- first frame and screenshots -------------------------------------------------------
    def _on_first_flip(self, window: Any) -> None:
        window.unbind(on_flip=self._on_first_flip)
        self.first_frame_at = time.monotonic()
        if self.bench:
            print(f"KIOSK_BENCH first_frame {time.time():.6f}", flush=True)
        self.dispatch("on_first_frame")
        if self._shown is not None and self._shown.warning_seconds is None:
            self._schedule_shot(self._shown.step.value)
        from kiosk import watchdog  # systemd's watchdog: pinged only while frames are drawn

        if period := watchdog.ping_period():
            beat = watchdog.FrameHeartbeat(watchdog.get(), self.terminal and (lambda: watchdog.describe(self.terminal)))
            window.bind(on_flip=beat.frame)  # each beat asks for the frame the next one checks
            self._intervals.append(Clock.schedule_interval(
                lambda _dt: (beat.beat(), window.canvas.ask_update()), period))
            window.canvas.ask_update()

    def take_screenshot(self, name: str) -> None:
        """Save a screenshot named `name` soon (only when a screenshot folder is set)."""
        self._schedule_shot(name)

    def _schedule_shot(self, name: str) -> None:
        if not self.screenshot_dir:
            return
        if self._shot_event is not None:
            self._shot_event.cancel()  # the screen changed again: shoot the newer one
        self._shot_event = Clock.schedule_once(lambda _dt: self._arm_shot(name), SHOT_DELAY_S)

    def _arm_shot(self, name: str) -> None:
        from kivy.core.window import Window

        self._shot_event = None
        self._shot_name = name
        Window.unbind(on_flip=self._take_shot)
        Window.bind(on_flip=self._take_shot)  # runs after drawing, before the buffer swap
        Window.canvas.ask_update()

    def _take_shot(self, window: Any) -> None:
        window.unbind(on_flip=self._take_shot)
        assert self.screenshot_dir is not None
        Path(self.screenshot_dir).mkdir(parents=True, exist_ok=True)
        path = window.screenshot(name=os.path.join(self.screenshot_dir, f"{self._shot_name}.png"))
        log.info("screenshot %s", path)
        self.dispatch("on_screenshot", self._shot_name, path)

    # -- helpers for tests and remote help -------------------------------------------------
    def touch_targets(self) -> dict[str, tuple[int, int]]:
        """Visible buttons by action, as (x, y) window pixels from the top-left corner."""
        return touch_targets_in(*self.touch_layer())

    def touch_layer(self) -> tuple[Any, Callable[[Any], bool]]:
        """The layer a touch reaches, and which of its widgets count: only the topmost open layer
        (the PIN pad, the maintenance screen, the idle warning, help, the choice list, the keyboard),
        else the current screen and the header."""
        for layer in (self.pin_pad, self.maintenance_layer, self.overlay, self.help_overlay, self.picker,
                      self.editor):
            if layer is not None and layer.is_open:
                return layer, lambda _w: True
        return self.frame, lambda w: (screen := _screen_of(w)) is None or screen.name == self.manager.current


    def layout_fractions(self) -> dict[str, list[float]]:
        """The touch targets on the screen now, by action, as boxes [x, y, w, h] in fractions of
        the window from the TOP-LEFT corner, cut to what can be seen: what the help desk's console
        draws over the kiosk's screen so staff can point at a button. Safe from any thread (the
        fleet agent's): it reads a snapshot the UI thread takes after each change."""
        return {action: list(box) for action, box in self._layout.items()}

    def screen_layout(self) -> dict[str, dict[str, Any]]:
        """`layout_fractions` with the words on each button ({"box": [...], "label": "下一步"}),
        for the screen mirror: staff read the button, not its action name. Any thread."""
        layout, labels = self._layout, self._labels
        return {action: {"box": list(box), "label": labels.get(action, "")} for action, box in layout.items()}

    def _refresh_layout(self) -> None:
        if self._layout_trigger is not None:
            self._layout_trigger()  # once the layout has placed the widgets

    def _snapshot_layout(self, _dt: float = 0.0) -> None:
        from kivy.core.window import Window

        width, height = float(Window.width), float(Window.height)
        if width <= 0 or height <= 0:
            return
        boxes: dict[str, list[float]] = {}
        labels: dict[str, str] = {}
        for action, widget in actionable(*self.touch_layer()).items():
            left, bottom, right, top = visible_box(widget, width, height)
            if right > left and top > bottom:
                boxes[action] = [round(left / width, 4), round((height - top) / height, 4),
                                 round((right - left) / width, 4), round((top - bottom) / height, 4)]
                text = getattr(widget, "text", "")
                labels[action] = " ".join(text.split())[:60] if isinstance(text, str) else ""
        changed = boxes != self._layout or labels != self._labels
        self._labels = labels  # the mirror masks these like every other text it sends
        self._layout = boxes  # replaced whole: a reader on another thread sees the old or the new
        if changed and self.terminal is not None and hasattr(self.terminal, "layout_changed"):
            self.terminal.layout_changed()  # the settled buttons go to the help desk at once


def visible_box(widget: Any, width: float, height: float) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of `widget` in window pixels, cut to the scroll views it sits in
    and to the window: the part a touch can reach."""
    from kivy.uix.scrollview import ScrollView

    x, y = widget.to_window(widget.x, widget.y)
    left, bottom, right, top = x, y, x + widget.width, y + widget.height
    parent = widget.parent
    while parent is not None and parent is not parent.parent:
        if isinstance(parent, ScrollView):
            px, py = parent.to_window(parent.x, parent.y)
            left, bottom = max(left, px), max(bottom, py)
            right, top = min(right, px + parent.width), min(top, py + parent.height)
        parent = parent.parent
    return max(left, 0.0), max(bottom, 0.0), min(right, width), min(top, height)


def _screen_of(widget: Any) -> KioskScreen | None:
    while widget is not None:
        if isinstance(widget, KioskScreen):
            return widget
        parent = widget.parent
        widget = parent if parent is not widget else None
    return None


def run_app(terminal: Any, prepare: Callable[[KioskApp], None] | None = None) -> KioskApp:
    """Build the app on `terminal` and run it until stopped (SIGTERM/SIGINT stop it cleanly).

    The terminal is started and stopped by the caller (main.py). `prepare` is called
    with the app before it runs (tests and the bench bind to its events there).
    """
    app = KioskApp(terminal)
    if prepare is not None:
        prepare(app)

    def request_stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping the app", signum)
        app.stop_requested.set()

    # installed before the window opens, so SDL keeps its own handlers out of the way
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        app.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return app


Builder.load_file(str(Path(__file__).with_name("app.kv")))
