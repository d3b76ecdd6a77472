"""Run the kiosk app for one UI test: devices off, JSON lines out, commands in.

Started by tests/ui/conftest.py in its own process (Kivy allows one App per process
and keeps global state). Everything the test learns comes from stdout, one JSON
object per line:

  {"event": "ready", "font_path": ..., "targets": {...}, "regions": {...}, "window": [w, h]}
  {"event": "view", "step": ..., "reason": ..., "screen": ..., "warning": n|null,
   "overlay": bool, "language": ..., "targets": {action: [x, y]}, "regions": {...},
   "clipped": {action: scroll box|null}, "shown_at": unix time, "seq": n, "fields": [...], ...}
  {"event": "stats", "widgets": n, "rss_kb": n, "engines_ready": bool}
  {"event": "weakrefs", "classes": {name: {"alive": n, "new": n}}, "textures": n, "texture_kb": n, "frozen": n}
  {"event": "checkpoint", "visit": n, "widgets": n, "rss_kb": n, "weakrefs": {...}}
  {"event": "journey", "first": n, "last": n, "completed": n|null, "error": str|null, "elapsed_s": s,
   "timings": {kind: {"n", "p50_ms", "p95_ms", "max_ms"}}, "render": {kind: {...}}}
  {"event": "screenshot", "name": ..., "path": ...}
  {"event": "key", "key": 27}
  {"event": "exit"}
  {"event": "maintenance", "state": "locked"|"asking"|"open", "reason": ..., "message": ..., "pin_length": n,
   "checking": bool, "locked_out": bool, "who": ..., "page": ..., "task": ..., "devices": {name: state},
   "checks": {name: passed}, "outbox": {state: n}|null, "targets": {...}, "clipped": {...}}
                   after each maintenance view is shown (kiosk/maintenance.py), like the view lines

`targets` and `regions` are window pixels from the top-left corner, as xdotool uses
them. `clipped` names the targets whose centre a ScrollView (or the window edge) hides,
with that ScrollView's box: a real touch would not reach them (drag the list first).
`regions` has the attract title and, for the screen shown, its `title`, `prompt` and first
`body` label (box, text, font_size, line_height, texture height, lines). `shown_at` is when
the app put the view on the screen (`time.time()`, before the frame is drawn); the view line
itself is written 0.1 s later, once the layout has placed the buttons. `fields`,
`materials`, `home`, `services`, `editor_state`, `theme`, ... describe the view (describe()).

Commands on stdin, one JSON object per line, stand for device threads and the test's own needs:

  {"do": "card", "name": ..., "id_number": ..., "address": ..., "birth_date": "YYYY-MM-DD"}  a card was read
  {"do": "card_failed"} | {"do": "card_removed"} | {"do": "reader_offline"}
  {"do": "shot", "name": ...}                                     take a screenshot
  {"do": "targets", "after": 0.25}  report a view line (reason "targets") after this many seconds
  {"do": "submitter", "receipt": "..."}   applications are accepted with this receipt (null: none)
  {"do": "act", "action": ..., "args": [...]}  what a button would do (no pixels involved)
  {"do": "stats"}                  live widget count and VmRSS: {"event": "stats", "widgets", "rss_kb",
                                   "engines_ready"} (see stats() for why engines_ready matters)
  {"do": "texts"}                  every label text of every screen and layer: {"event": "texts"}
  {"do": "platform_catalogue"}     the reference platform's seeded catalogue (no server)
  {"do": "licences", "licences": [...]}     e-licences the platform would list for the citizen
  {"do": "home", "benefits": [...], "applications": [...]}   the platform's answers for the page
  {"do": "help_answered", "ticket": ..., "hotline": ...}     the help desk's answer
  {"do": "scan_attached", "material": ...}  the scanner took the page of a material
  {"do": "type", "text": ...}      type on the open on-screen keyboard, then touch 确定
  {"do": "press", "action": ...}   press the visible button with this action (as touch_targets names it)
  {"do": "home_pending"}           the citizen page stays "loading" until the next `home` command
                                   (without it the page is "unavailable" at once: no platform)
  {"do": "weakrefs"}               live kiosk widgets by class and live GL textures, tracked with
                                   weakref.WeakSets filled from gc: {"event": "weakrefs", ...}
  {"do": "journey", "visits": n, "report_at": [1, 10, ...], "first": k}
                                   whole visits played inside this process (see Journey), then
                                   {"event": "journey", ...}; "checkpoint" events after the visits
                                   in report_at, with stats and weakrefs
  {"do": "freeze", "how": "sleep"|"visit_lock"|"frames", "seconds": n}
                                   the UI stops answering until `thaw` (or n seconds, 30 by default):
                                   "sleep" blocks the UI thread itself, "visit_lock" holds the visit's
                                   lock on another thread while the UI thread waits for it in
                                   visit.tick(), "frames" keeps the UI thread running but lets no frame
                                   complete (an on_flip handler that ends the event: nothing counted,
                                   nothing swapped). {"event": "frozen", "how": ...} is written on the
                                   UI thread just before it stops, {"event": "thawed", "how": ...} after
                                   (tests/test_deploy.py: systemd's watchdog pings stop meanwhile)
  {"do": "thaw"}                   end the freeze
  {"do": "maint_look"}             a maintenance line now (reason "targets")
  {"do": "quit"}                                                  stop the app

They are executed on this script's stdin thread, like device events would be.
End of stdin stops the app too, so a crashed test leaves no kiosk running.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journey_data import APPLICATIONS, BENEFITS, LICENCES  # tests/ui/journey_data.py, beside this script

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_ENV = {"KIVY_NO_ARGS": "1", "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1",
               "SDL_AUDIODRIVER": "dummy", "SDL_VIDEO_X11_WMCLASS": "Kiosk",
               "KIOSK__DEVICES__IDCARD__ENABLED": "false", "KIOSK__UI__FULLSCREEN": "false",
               "KIOSK__DEVICES__CAMERA__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
               "KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED": "false", "KIOSK__DEVICES__A4_PRINTER__ENABLED": "false",
               "KIOSK__DEVICES__SCANNER__ENABLED": "false", "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false",
               "KIOSK__PLATFORM__URL": ""}  # the local catalogue: these tests are about screens
_out_lock = threading.Lock()


def emit(**event: Any) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        sys.stdout.flush()


@dataclass
class CardStub:
    """Stands for a card read by the ID-card device (only what the visit looks at)."""

    name: str = "张三"
    id_number: str = "110101199003071234"
    address: str = "北京市东城区景山前街4号"
    gender: str = "男"
    birth_date: str = "1990-03-07"
    card_type: str = "resident"

    def validity_problem(self, _today: Any) -> str | None:
        return None

    def wipe(self) -> None:
        self.name = self.id_number = self.address = ""


# -- what a view line reports beyond the View ------------------------------------------------
def window_box(widget: Any) -> list[int]:
    from kivy.core.window import Window

    x, y = widget.to_window(widget.x, widget.y)
    return [int(x), int(Window.height - y - widget.height), int(widget.width), int(widget.height)]


def label_region(label: Any) -> dict[str, Any]:
    """Where a label is and how its text is set: the elder-mode test compares these."""
    cached = getattr(getattr(label, "_label", None), "_cached_lines", None)
    return {"box": window_box(label), "text": label.text, "font_size": float(label.font_size),
            "bold": bool(label.bold), "line_height": float(label.line_height),
            "texture_h": int(label.texture_size[1]), "lines": len(cached) if cached is not None else None}


def body_label(screen: Any) -> Any:
    """The first label of body text on a screen: a WrapLabel that is neither its title nor
    its prompt, holds text and takes room (a notice, a field's name, a line of the notice)."""
    from screens.widgets import WrapLabel

    skip = {id(screen.ids.get(n)) for n in ("title", "prompt")}
    for widget in screen.walk(restrict=True):
        if (isinstance(widget, WrapLabel) and id(widget) not in skip and widget.text and widget.height > 0
                and type(widget).__name__ not in ("TitleLabel", "PromptLabel")):
            return widget
    return None


def regions(app: Any) -> dict[str, Any]:
    title = app.screens["attract"].ids.title
    out: dict[str, Any] = {"attract_title": {"box": window_box(title), "text": title.text,
                                             "font_size": title.font_size, "bold": bool(title.bold)}}
    screen = app.screens.get(app.manager.current)
    if screen is not None:
        for name in ("title", "prompt"):
            widget = screen.ids.get(name)
            if widget is not None and getattr(widget, "text", ""):
                out[name] = label_region(widget)
        body = body_label(screen)
        if body is not None:
            out["body"] = label_region(body)
    return out


def clipped(app: Any) -> dict[str, list[int] | None]:
    """Targets a real touch cannot reach, by action: their centre is outside a ScrollView they
    sit in (scrolled away; its box, to drag it by) or outside the window (None)."""
    from kivy.core.window import Window
    from kivy.uix.scrollview import ScrollView

    from screens.widgets import actionable

    hidden: dict[str, list[int] | None] = {}
    for action, widget in actionable(*app.touch_layer()).items():
        cx, cy = widget.to_window(widget.center_x, widget.center_y)
        parent = widget.parent
        while action not in hidden and parent is not None and parent is not parent.parent:
            if isinstance(parent, ScrollView):
                x, y = parent.to_window(parent.x, parent.y)
                if not (x <= cx <= x + parent.width and y <= cy <= y + parent.height):
                    hidden[action] = window_box(parent)
            parent = parent.parent
        if action not in hidden and not (0 <= cx < Window.width and 0 <= cy < Window.height):
            hidden[action] = None
    return hidden


def describe(app: Any, view: Any) -> dict[str, Any]:
    """The parts of a view (and of the open layers) a test asserts on, as plain JSON."""
    editor, picker = app.editor, app.picker
    home = view.home
    return {
        "fields": [{"key": f.key, "label": f.label, "value": f.value, "raw": f.raw, "problem": f.problem, "type": f.type,
                    "editable": f.editable, "required": f.required,
                    "choices": [value for value, _ in f.choices]} for f in view.fields],
        "materials": {m.id: m.provided for m in view.materials},
        "home": ({"state": home.state, "benefits": [b.title for b in home.benefits],
                  "applications": [a.receipt_number for a in home.applications]} if home else None),
        "services": [sid for sid, _ in view.services], "filter": list(view.active_filter), "query": view.query,
        "item": view.item.id if view.item else None, "position": list(view.position),
        "scanning": view.scanning, "receipt": view.receipt, "rated": view.rated,
        "editor_state": ({"label": editor.label, "value": editor.keyboard.text, "error": editor.error,
                          "mode": editor.keyboard.mode} if editor is not None and editor.is_open else None),
        "picker_label": picker.label if picker is not None and picker.is_open else None,
        "theme": {"elder": bool(app.theme.elder), "line_height": float(app.theme.line_height),
                  "title": float(app.theme.title), "subtitle": float(app.theme.subtitle),
                  "body": float(app.theme.body)},
    }


# -- leaks: live widgets and textures ---------------------------------------------------------
_TRACKED: dict[str, weakref.WeakSet[Any]] = {}


def tracked_classes() -> dict[str, type]:
    """The kiosk's own widgets a visit shows (pooled rows, buttons, labels) and Kivy's."""
    from kivy.graphics.texture import Texture
    from kivy.uix.label import Label
    from kivy.uix.widget import Widget

    from screens.base import KioskScreen
    from screens.choice_picker import ChoiceButton
    from screens.home import ApplicationRow, BenefitRow
    from screens.item import FieldRow, MaterialRow, ReviewRow
    from screens.keyboard import CandidateButton, KeyButton
    from screens.rating import RatingButton
    from screens.widgets import ChipButton, KioskButton, ServiceButton, WrapLabel

    return {"KioskScreen": KioskScreen, "KioskButton": KioskButton, "ServiceButton": ServiceButton,
            "ChipButton": ChipButton, "KeyButton": KeyButton, "CandidateButton": CandidateButton,
            "ChoiceButton": ChoiceButton, "RatingButton": RatingButton, "WrapLabel": WrapLabel,
            "FieldRow": FieldRow, "MaterialRow": MaterialRow, "ReviewRow": ReviewRow,
            "BenefitRow": BenefitRow, "ApplicationRow": ApplicationRow, "Label": Label, "Widget": Widget,
            "Texture": Texture}


def weakrefs() -> dict[str, Any]:
    """How many instances of each tracked class are alive now, and how many of those appeared
    since the last call. Instances are found with gc and then held only by weakref.WeakSets, so
    the tracking itself keeps nothing alive; a freed one simply leaves its set.

    gc lists no object in its permanent generation: the keyboard's engines freeze everything
    that exists when they have loaded (`frozen` objects), the screens and layers built at start
    among them. Those were made once; what a visit makes afterwards is listed and counted."""
    import gc

    classes = tracked_classes()
    sets = {name: _TRACKED.setdefault(name, weakref.WeakSet()) for name in classes}
    new = dict.fromkeys(classes, 0)
    gc.collect()
    texture_bytes = 0
    for obj in gc.get_objects():
        kind = type(obj)  # not isinstance: Kivy's WeakProxy objects pass for what they point to
        for name, cls in classes.items():
            if issubclass(kind, cls):
                if obj not in sets[name]:
                    sets[name].add(obj)
                    new[name] += 1
                if name == "Texture":
                    texture_bytes += int(obj.width) * int(obj.height) * 4
    counts = {name: {"alive": len(sets[name]), "new": new[name]} for name in classes}
    return {"classes": counts, "textures": counts["Texture"]["alive"], "texture_kb": texture_bytes // 1024,
            "frozen": gc.get_freeze_count()}


def stats() -> dict[str, int]:
    """Live widgets and resident memory: they must not grow visit after visit. Widgets are
    counted with gc, which does not list what the input engines froze once they had loaded
    (see weakrefs): compare counts taken after `engines_ready`."""
    import gc

    from kivy.uix.widget import Widget

    from kiosk.chinese_input import engines

    gc.collect()
    widgets = sum(1 for o in gc.get_objects() if isinstance(o, Widget))
    with open("/proc/self/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return {"widgets": widgets, "rss_kb": rss, "engines_ready": engines().ready.is_set()}


def press(app: Any, action: str) -> bool:
    """A touch on the visible button with this action, on the topmost layer (no X involved)."""
    from screens.widgets import widget_for_action

    widget = widget_for_action(app, action)
    if widget is None:
        print(f"drive_app: no visible button {action!r}; there are {sorted(app.touch_targets())}",
              file=sys.stderr)
        return False
    widget.dispatch("on_press")
    widget.dispatch("on_release")
    return True


# -- whole visits inside the app ------------------------------------------------------------------
# per item: the life-event chip that shows it, the field edited on the keyboard, the answers the
# citizen gives, a material promised and one scanned
JOURNEY_ITEMS: dict[str, dict[str, Any]] = {
    "newborn": {"life_event": "出生", "edit": "contact_phone", "promise": "marriage_certificate",
                "scan": "baby_photo",
                "answers": {"applicant_relation": "mother", "marital_status": "20", "baby_name": "王小宝",
                            "baby_gender": "2", "baby_birth_date": "2026-11-20",
                            "birth_certificate_number": "N110000001",
                            "registration_address": "北京市东城区测试路2号", "contact_phone": "13800138000"}},
    "social-security-card": {"life_event": "社会保障", "edit": "contact_phone", "promise": "old_card",
                             "scan": "photo",
                             "answers": {"social_security_number": "110101199003071234", "apply_type": "first",
                                         "bank": "中国工商银行", "contact_phone": "13900139000"}},
}
JPEG = b"\xff\xd8\xff\xe0" + b"page" * 100


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles, in milliseconds."""
    import math

    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"n": len(ordered), "p50_ms": round(at(0.50) * 1000, 1), "p95_ms": round(at(0.95) * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


class Journey:
    """Whole visits played inside the app's process, on its UI thread.

    Every touch is a `press` on the visible button with that action (what the `press` command
    does, without a round trip through stdin per touch); the card, the citizen page's answer
    and the scanner's page call the visit as the terminal's threads do. After each action it
    waits until the change is on the screen: the first frame drawn (Window `on_flip`, after
    drawing, before the buffer swap) at which the app has shown the expected view. The next
    action follows at once, so each step costs about one frame.

    Times from the action to that frame are kept per kind ("attract→identify", "choose:filter",
    "editor:open", ...): what a citizen waits between touching and seeing. `render` times stop
    when the app has put the view into the widgets (its on_view_shown), before layout and drawing.

    A visit (number n), one frame per step: start, English on every third visit, the card (a
    different name and number each time) with the citizen page's answer, browse, a life-event
    filter, the item (newborn and social-security-card by turns), the notice, the form (the
    keyboard opened on one field and a key typed, then cancelled; the answers corrected), the
    materials (one promised and one scanned in one step; e-licences held), review, confirm,
    finish, rating, and the card taken away.
    """

    TIMEOUT_S = 15.0

    def __init__(self, app: Any, visit: Any, visits: int, first: int = 1, report_at: tuple[int, ...] = (),
                 on_checkpoint: Callable[[int], None] | None = None,
                 on_done: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.app, self.visit = app, visit
        self.first, self.last = first, first + visits - 1
        self.report_at = set(report_at)
        self.on_checkpoint, self.on_done = on_checkpoint, on_done
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.render: dict[str, list[float]] = defaultdict(list)
        self.shown = 0  # views the app has shown since the journey began
        self.last_view: Any = None
        self.error: str | None = None
        self._plan = self._steps()
        self._pending: tuple[str, Callable[[], bool], float, int] | None = None
        self._rendered_at: float | None = None
        self._deadline = 0.0
        self._watchdog: Any = None
        self._started = time.perf_counter()

    # -- the plan ----------------------------------------------------------------------------
    def _view(self, step: str | None = None, reason: str | None = None,
              check: Callable[[Any], bool] = lambda _v: True) -> Callable[[], bool]:
        """Done once the app has shown a new view of this step (and reason) on its screen."""
        mark = self.shown

        def shown() -> bool:
            v = self.last_view
            return (self.shown > mark and v is not None and (step is None or v.step.value == step)
                    and (reason is None or v.reason == reason) and v.warning_seconds is None
                    and self.app.manager.current == v.step.value and check(v))
        return shown

    def _press(self, action: str) -> None:
        if not press(self.app, action):
            raise RuntimeError(f"no visible button {action!r} on {self.app.manager.current}")

    def _steps(self) -> Any:
        """(kind, action, expectation factory) per step; kind "" is not timed."""
        from kiosk.visit import Step

        app, visit = self.app, self.visit
        for n in range(self.first, self.last + 1):
            item = ("newborn", "social-security-card")[n % 2]
            plan = JOURNEY_ITEMS[item]
            english = n % 3 == 0

            def card(n: int = n) -> None:  # the card, and the platform's answers about its holder
                visit.card_read(CardStub(name=f"测试{n}", id_number=f"11010119900307{n % 10000:04d}"))
                visit.session.licences = [dict(lic) for lic in LICENCES]
                visit.home_loaded(visit.session.visit_id, BENEFITS, APPLICATIONS)

            def open_editor(key: str = plan["edit"]) -> None:  # the keyboard on one field, a key typed
                self._press(f"edit:{key}")
                self._press("key:1")

            def answer(answers: dict[str, str] = plan["answers"]) -> None:
                for key, value in answers.items():
                    app.act("correct", key, value)

            def provide(promised: str = plan["promise"], scanned: str = plan["scan"]) -> None:
                self._press(f"promise:{promised}")
                visit.attach_scan(scanned, "image/jpeg", JPEG)  # the scanner's page

            yield "attract→identify", lambda: self._press("start"), lambda: self._view("identify", "start")
            if english:
                yield "identify:language", lambda: self._press("language"), lambda: self._view("identify", "language")
            yield "identify→home", card, lambda: self._view(
                "home", "home", lambda v: v.home is not None and v.home.state == "ready")
            yield "home→choose", lambda: self._press("browse"), lambda: self._view("choose", "browse")
            yield ("choose:filter", lambda chip=f"filter:life_event:{plan['life_event']}": self._press(chip),
                   lambda: self._view("choose", "filter"))
            yield "choose→notice", lambda i=item: self._press(f"choose:{i}"), lambda: self._view("notice", "choose")
            yield "notice→form", lambda: self._press("next"), lambda: self._view("form", "next")
            yield ("editor:open", open_editor,
                   lambda: (lambda: bool(app.editor.is_open) and app.editor.keyboard.text.endswith("1")))
            yield "editor:close", lambda: self._press("key:cancel"), lambda: (lambda: not app.editor.is_open)
            yield "form:correct", answer, lambda: self._view("form", "correct")
            yield "form→materials", lambda: self._press("next"), lambda: self._view("materials", "next")
            yield "materials:provide", provide, lambda: self._view("materials", "scan_attached")
            yield "materials→review", lambda: self._press("next"), lambda: self._view("review", "next")
            yield "review→finish", lambda: self._press("confirm"), lambda: self._view("finish")
            yield "finish→rating", lambda: self._press("finish"), lambda: self._view("rating", "finished")
            yield "rating→attract", lambda: self._press("rate:5"), lambda: self._view("attract", "rated")
            yield "", visit.card_removed, None  # the card is taken: nothing changes on the screen
            if visit.step is not Step.ATTRACT:
                raise RuntimeError(f"visit {n} ended on {visit.step.value}")
            yield "", (lambda n=n: self._checkpoint(n)), None

    def _checkpoint(self, n: int) -> None:
        if n in self.report_at and self.on_checkpoint is not None:
            self.on_checkpoint(n)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin once the keyboard's input engines have loaded: their loading ends with
        gc.freeze() (kiosk/chinese_input.py), after which gc no longer lists the objects made
        before it, so the leak counts (stats, weakrefs) are of objects made after it."""
        from kivy.clock import Clock

        from kiosk.chinese_input import engines

        if not engines().ready.is_set():
            Clock.schedule_once(lambda _dt: self.start(), 0.2)
            return
        self._begin()

    def _begin(self) -> None:
        from kivy.clock import Clock
        from kivy.core.window import Window

        self._started = time.perf_counter()
        self.app.bind(on_view_shown=self._on_view_shown)
        Window.bind(on_flip=self._flipped)  # bound once: checks the pending step at every frame
        self._watchdog = Clock.schedule_interval(lambda _dt: self._check_deadline(), 1.0)
        Clock.schedule_once(lambda _dt: self._next(), 0)

    def _on_view_shown(self, _app: Any, view: Any) -> None:
        self.shown += 1
        self.last_view = view
        self._rendered_at = time.perf_counter()

    def _next(self) -> None:
        from kivy.core.window import Window

        while True:
            try:
                kind, action, expect = next(self._plan)
            except StopIteration:
                self._finish()
                return
            except Exception as exc:  # noqa: BLE001  (reported, the journey stops)
                self._finish(repr(exc))
                return
            done = expect() if expect is not None else None
            shown_before = self.shown
            started = time.perf_counter()
            try:
                action()
            except Exception as exc:  # noqa: BLE001  (reported, the journey stops)
                self._finish(f"{kind or 'step'}: {exc!r}")
                return
            if done is None:
                continue  # nothing to wait for
            self._pending = (kind, done, started, shown_before)
            self._deadline = started + self.TIMEOUT_S
            Window.canvas.ask_update()  # a frame is drawn even if nothing changed
            return

    def _flipped(self, window: Any) -> None:
        if self._pending is None:
            return
        kind, done, started, shown_before = self._pending
        now = time.perf_counter()
        if done():
            self._pending = None
            if kind:
                self.timings[kind].append(now - started)
                if self.shown > shown_before and self._rendered_at is not None:
                    self.render[kind].append(self._rendered_at - started)
            self._next()  # at once: the next touch lands in the next frame
        else:
            window.canvas.ask_update()  # keep frames coming until it is shown

    def _check_deadline(self) -> None:
        if self._pending is not None and time.perf_counter() > self._deadline:
            kind = self._pending[0]
            self._pending = None
            v = self.last_view
            self._finish(f"{kind}: not shown within {self.TIMEOUT_S} s (last view "
                         f"{v.step.value if v else None}/{v.reason if v else None}, screen {self.app.manager.current})")

    def _finish(self, error: str | None = None) -> None:
        from kivy.core.window import Window

        self.app.unbind(on_view_shown=self._on_view_shown)
        Window.unbind(on_flip=self._flipped)
        self._watchdog.cancel()
        self.error = error
        done = self.last if error is None else None
        result = {"first": self.first, "last": self.last, "completed": done, "error": error,
                  "elapsed_s": round(time.perf_counter() - self._started, 2),
                  "timings": {k: percentiles(v) for k, v in self.timings.items()},
                  "render": {k: percentiles(v) for k, v in self.render.items()}}
        if self.on_done is not None:
            self.on_done(result)


class Freezer:
    """The `freeze` and `thaw` commands: a UI that stops answering, three ways (see the doc)."""

    def __init__(self, app: Any, visit: Any) -> None:
        self.app, self.visit = app, visit
        self.thawed = threading.Event()
        self.thawed.set()

    def freeze(self, how: str, seconds: float) -> None:
        from kivy.clock import Clock
        from kivy.core.window import Window

        if not self.thawed.is_set():
            print("drive_app: already frozen", file=sys.stderr)
            return
        thawed = self.thawed = threading.Event()
        if how == "sleep":
            def block(_dt: float) -> None:
                emit(event="frozen", how=how)
                thawed.wait(seconds)
                emit(event="thawed", how=how)
            Clock.schedule_once(block)
        elif how == "visit_lock":
            held = threading.Event()

            def hold() -> None:
                with self.visit._lock:  # a device thread that never lets go of the visit
                    held.set()
                    thawed.wait(seconds)

            def wait_for_visit(_dt: float) -> None:
                # the lock is taken only now, from the UI thread's own turn: taken earlier, the app's
                # once-a-second tick could block on it first and this callback would never run
                threading.Thread(target=hold, name="test-visit-lock", daemon=True).start()
                held.wait(5)
                emit(event="frozen", how=how)
                self.visit.tick()  # what the app's own once-a-second tick does: waits for the lock
                emit(event="thawed", how=how)
            Clock.schedule_once(wait_for_visit)
        elif how == "frames":
            def swallow(*_args: Any) -> bool:
                return True  # bound last, called first: no later handler, no buffer swap

            def stall(_dt: float) -> None:
                Window.bind(on_flip=swallow)
                emit(event="frozen", how=how)
                Clock.schedule_once(check, 0.05)

            def check(_dt: float) -> None:
                if thawed.is_set():
                    Window.unbind(on_flip=swallow)
                    Window.canvas.ask_update()
                    emit(event="thawed", how=how)
                else:
                    Clock.schedule_once(check, 0.05)
            Clock.schedule_once(stall)
            threading.Timer(seconds, thawed.set).start()
        else:
            print(f"drive_app: freeze how={how!r}: use sleep, visit_lock or frames", file=sys.stderr)
            thawed.set()

    def thaw(self) -> None:
        self.thawed.set()


def main() -> int:
    for name, value in DEFAULT_ENV.items():
        os.environ.setdefault(name, value)
    from config import load_config
    from kiosk.terminal import Terminal
    from kiosk.visit import Handout, Receipt

    terminal = Terminal(load_config())
    terminal.start()

    from screens.app import KioskApp, run_app

    seq = [0]  # views shown so far
    quiet = [False]  # no view lines while a journey runs
    pending_answer: list[Callable[[list[Any], list[Any]], None] | None] = [None]
    freezer: list[Freezer | None] = [None]  # the freeze and thaw commands

    def view_line(app: KioskApp, view: Any, reason: str | None = None, shown: tuple[str, bool] | None = None,
                  shown_at: float | None = None, number: int | None = None) -> None:
        screen, overlay = shown or (app.manager.current, bool(app.overlay and app.overlay.is_open))
        emit(event="view", step=view.step.value, reason=reason if reason is not None else view.reason,
             screen=screen, warning=view.warning_seconds, overlay=overlay, language=view.language,
             message=view.message_key, handout=view.handout.message_key if view.handout else None,
             sms=view.handout.sms if view.handout else None, voice_on=view.voice_on, elder=view.elder,
             help=view.help.state if view.help else None, editor=bool(app.editor and app.editor.is_open),
             picker=bool(app.picker and app.picker.is_open), shown_at=shown_at,
             seq=seq[0] if number is None else number,
             targets=app.touch_targets(), clipped=clipped(app), regions=regions(app), **describe(app, view))

    def maintenance_line(app: KioskApp, view: Any, reason: str | None = None) -> None:
        emit(event="maintenance", state=view.state.value, reason=reason if reason is not None else view.reason,
             message=view.message_key, pin_length=view.pin_length, checking=view.checking,
             locked_out=view.locked_out, who=view.who, page=view.page, task=view.task, language=view.language,
             devices={r.name: r.state for r in view.devices}, checks={c.name: c.passed for c in view.checks},
             outbox=dict(view.outbox) if view.outbox is not None else None,
             targets=app.touch_targets(), clipped=clipped(app))

    def all_texts(app: KioskApp) -> list[str]:
        """Every non-empty text held by any label of any screen or layer, shown or not."""
        tops = [app.frame, app.overlay, app.help_overlay, app.editor, app.picker, *app.screens.values()]
        return sorted({w.text for top in tops for w in top.walk(restrict=True)
                       if isinstance(getattr(w, "text", None), str) and w.text})

    def prepare(app: KioskApp) -> None:
        from kivy.clock import Clock

        def on_first_frame(_app: KioskApp) -> None:
            from kivy.core.window import Window

            Window.bind(on_key_down=lambda _w, key, *_a: emit(event="key", key=key))
            # the layout settles during the first frames; report positions after that
            Clock.schedule_once(lambda _dt: emit(
                event="ready", font_path=app.font_path, targets=app.touch_targets(),
                regions=regions(app), window=[int(Window.width), int(Window.height)]), 0.2)

        pending: list[tuple[Any, tuple[str, bool], float, int]] = []

        def flush(_dt: float) -> None:
            lines, pending[:] = list(pending), []
            for view, shown, at, n in lines:  # in the order they were shown
                view_line(app, view, shown=shown, shown_at=at, number=n)

        flush_later = Clock.create_trigger(flush, 0.1)

        def on_view_shown(_app: KioskApp, view: Any) -> None:
            # what is shown now; button positions are known after the next layout pass
            shown = (app.manager.current, bool(app.overlay and app.overlay.is_open))
            seq[0] += 1
            if quiet[0]:
                return  # a journey plays thousands of views: no line for each
            pending.append((view, shown, time.time(), seq[0]))
            flush_later()

        maintenance_pending: list[Any] = []

        def maintenance_flush(_dt: float) -> None:
            shown, maintenance_pending[:] = list(maintenance_pending), []
            for view in shown:
                maintenance_line(app, view)

        maintenance_later = Clock.create_trigger(maintenance_flush, 0.1)

        def on_maintenance_shown(_app: KioskApp, view: Any) -> None:
            maintenance_pending.append(view)
            maintenance_later()

        app.bind(on_maintenance_shown=on_maintenance_shown)
        app.bind(on_first_frame=on_first_frame, on_view_shown=on_view_shown,
                 on_screenshot=lambda _app, name, path: emit(event="screenshot", name=name, path=path))
        threading.Thread(target=commands, args=(app,), name="test-commands", daemon=True).start()

    def home_pending() -> None:
        """The citizen page asks a platform that answers only when the test sends `home`."""
        answers: list[tuple[list[Any], list[Any]]] = []
        answered = threading.Condition()

        class PendingLink:
            def home(self, _session: Any) -> tuple[list[Any], list[Any]]:
                with answered:
                    answered.wait_for(lambda: bool(answers), timeout=600)
                    return answers.pop(0) if answers else ([], [])

        def answer(benefits: list[Any], applications: list[Any]) -> None:
            with answered:
                answers.append((benefits, applications))
                answered.notify_all()

        terminal.citizen_page.link = PendingLink()
        pending_answer[0] = answer

    def journey(app: KioskApp, cmd: dict[str, Any]) -> None:
        visit = terminal.visit
        receipt = cmd.get("receipt", "SQ20260000000001")
        if receipt:  # applications are accepted (a rating follows the finish screen)
            visit.submitter = lambda _s, _svc, _a: Receipt(receipt, delivered=True)
        quiet[0] = True

        def checkpoint(n: int) -> None:
            emit(event="checkpoint", visit=n, **stats(), weakrefs=weakrefs())

        def done(result: dict[str, Any]) -> None:
            quiet[0] = False
            emit(event="journey", **result)

        Journey(app, visit, int(cmd.get("visits", 1)), int(cmd.get("first", 1)),
                tuple(cmd.get("report_at", ())), checkpoint, done).start()

    def commands(app: KioskApp) -> None:
        from kivy.clock import Clock

        visit = terminal.visit
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                do = cmd.get("do")
                if do == "card":
                    fields = {k: cmd[k] for k in ("name", "id_number", "address", "birth_date") if k in cmd}
                    visit.card_read(CardStub(**fields))
                elif do in ("card_failed", "card_removed", "reader_offline"):
                    getattr(visit, do)()
                elif do == "shot":
                    Clock.schedule_once(lambda _dt, n=cmd["name"]: app.take_screenshot(n))
                elif do == "targets":  # after a touch has been handled and laid out
                    Clock.schedule_once(lambda _dt: view_line(app, visit.view(), "targets"),
                                        float(cmd.get("after", 0.25)))
                elif do == "submitter":  # stands for the platform client: accept with this receipt
                    receipt = cmd.get("receipt")
                    visit.submitter = ((lambda _s, _svc, _a, r=receipt: Receipt(r, delivered=True))
                                       if receipt else None)
                elif do == "handout":  # stands for the print worker: paper failed, QR and SMS offered
                    visit.handout_changed(visit.session.visit_id, Handout(
                        cmd["key"], cmd.get("values", {}), cmd.get("qr"), cmd.get("sms", "")))
                elif do == "ticket":  # stands for the check-in: an appointment code was scanned
                    visit_id = visit.ticket_started()
                    visit.handout_changed(visit_id, Handout(cmd["key"], cmd.get("values", {})))
                elif do == "equipment":
                    visit.set_equipment(tuple(cmd.get("notices", [])), frozenset(cmd.get("unavailable", [])))
                elif do == "act":  # a touch on a button, without the pixels
                    Clock.schedule_once(lambda _dt, a=cmd["action"], args=cmd.get("args", []):
                                        app.act(a, *args))
                elif do == "stats":
                    Clock.schedule_once(lambda _dt: emit(event="stats", **stats()))
                elif do == "texts":
                    Clock.schedule_once(lambda _dt: emit(event="texts", texts=all_texts(app)))
                elif do == "platform_catalogue":
                    from govplatform.catalogue import load_catalogue
                    from kiosk.catalogue import Catalogue

                    visit.replace_catalogue(Catalogue.from_platform(load_catalogue()))
                elif do == "licences":
                    visit.session.licences = list(cmd["licences"])
                elif do == "home":
                    visit.home_loaded(visit.session.visit_id, cmd.get("benefits", []), cmd.get("applications", []))
                    if pending_answer[0] is not None:  # the pending platform answers the same
                        pending_answer[0](cmd.get("benefits", []), cmd.get("applications", []))
                elif do == "home_pending":
                    home_pending()
                elif do == "weakrefs":
                    Clock.schedule_once(lambda _dt: emit(event="weakrefs", **weakrefs()))
                elif do == "journey":
                    Clock.schedule_once(lambda _dt, c=cmd: journey(app, c))
                elif do == "help_answered":
                    visit.help_answered(visit.session.visit_id, cmd["ticket"], cmd["hotline"])
                elif do == "scan_attached":
                    visit.attach_scan(cmd["material"], "image/jpeg", b"\xff\xd8\xff\xe0" + b"page" * 100)
                elif do == "type":  # what a citizen types on the keyboard, then 确定
                    def typed(_dt: float, text: str = cmd["text"]) -> None:
                        assert app.editor is not None
                        app.editor.keyboard.text = text
                        app.editor.keyboard.enter()
                    Clock.schedule_once(typed)
                elif do == "press":  # a touch on the button itself (no X server round trip)
                    Clock.schedule_once(lambda _dt, a=cmd["action"]: press(app, a) and None)
                elif do == "freeze":
                    if freezer[0] is None:
                        freezer[0] = Freezer(app, visit)
                    freezer[0].freeze(cmd.get("how", "sleep"), float(cmd.get("seconds", 30)))
                elif do == "thaw":
                    if freezer[0] is not None:
                        freezer[0].thaw()
                elif do == "maint_look":
                    Clock.schedule_once(lambda _dt: maintenance_line(app, terminal.maintenance.view(), "targets"),
                                        float(cmd.get("after", 0.25)))
                elif do == "quit":
                    break
                else:
                    print(f"drive_app: unknown command {line!r}", file=sys.stderr)
            except Exception as exc:  # a test bug; say so and go on
                print(f"drive_app: command {line!r} failed: {exc!r}", file=sys.stderr)
        if freezer[0] is not None:
            freezer[0].thaw()  # a frozen UI thread could not stop
        app.stop_requested.set()

    try:
        run_app(terminal, prepare)
    finally:
        terminal.stop()
        emit(event="exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
