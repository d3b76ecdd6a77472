"""The on-screen keyboard: digits, letters, pinyin and handwriting, with big keys.

Kivy's IME is weak on Linux, so the kiosk types with its own keys. Every key, candidate
and mode button is built once (the kiosk runs for days): changing mode moves prebuilt
key pads in and out of the layout, and candidates reuse a pool of buttons.

Each touchable widget has an `action` ("key:a", "key:1", "key:backspace", "key:enter",
"cand:0", "page:next", "mode:pinyin", "pad") so tests and the app's touch targets find
it; `press(action)` does what touching it does.

Candidates come from kiosk.chinese_input, whose dictionaries load on a background thread:
until they are there the candidate bar says so (polled with the Clock), and letters and
strokes typed meanwhile are kept and looked up once loading ends.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.graphics import Color, InstructionGroup, Line
from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from config.texts import Texts
from kiosk.chinese_input import MAX_LETTERS, SEPARATOR, InputEngines, InputEngineUnavailable, engines
from screens import widgets  # noqa: F401  (registers KioskButton's rule)
from screens.theme import Theme
from screens.widgets import KioskButton

log = logging.getLogger(__name__)

MODES = ("digits", "letters", "pinyin", "handwriting")
QWERTY = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
DIGIT_ROWS = ("123", "456", "789")
CANDIDATE_POOL = 12  # candidate buttons, reused for every page
CANDIDATE_LIMIT = 60  # candidates asked of the engines (several pages)
POLL_S = 0.1  # how often the keyboard looks whether the engines have loaded
MAX_STROKES = 60  # more strokes than any character has: further ones are ignored
MAX_POINTS = 1500  # per stroke

_catalogue: Texts | None = None


def _texts() -> Texts:
    """The app's catalogue, or the default one when the host app has none."""
    global _catalogue
    texts = getattr(App.get_running_app(), "texts", None)
    if isinstance(texts, Texts):
        return texts
    if _catalogue is None:
        _catalogue = Texts.load()
    return _catalogue


class KeyButton(KioskButton):
    """One key of the keyboard (a KioskButton sized by the keyboard, not by the theme)."""


class CandidateButton(KeyButton):
    """A candidate on the candidate bar (action "cand:<place on the page>"); pooled."""


class WritingPad(Widget):
    """Collects one character's strokes from a single finger and draws them.

    Points are pad-local, y growing upward (Kivy's way); `on_stroke` follows each
    finished stroke. A second finger while one is writing is ignored.
    """

    __events__ = ("on_stroke",)

    action = StringProperty("pad")
    has_ink = BooleanProperty(False)
    writing = BooleanProperty(False)  # a finger is down on the pad
    placeholder = StringProperty("")
    ink_colour = ListProperty(Theme.text)
    ink_width = NumericProperty(4.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strokes: list[list[tuple[float, float]]] = []
        self._uid: Any = None
        self._line: Line | None = None
        self._ink = InstructionGroup()
        self.canvas.after.add(self._ink)

    def on_stroke(self) -> None:
        """A stroke was finished (recognise now)."""

    def clear(self) -> None:
        self.strokes = []
        self._ink.clear()
        self._line = None
        self._uid = None
        self.writing = False
        self.has_ink = False

    def undo(self) -> None:
        """Take back the last stroke."""
        if self.strokes:
            self.strokes.pop()
            self._redraw()

    def _redraw(self) -> None:
        self._ink.clear()
        for stroke in self.strokes:
            self._draw(stroke)
        self.has_ink = bool(self.strokes)

    def _draw(self, stroke: list[tuple[float, float]]) -> Line:
        self._ink.add(Color(*self.ink_colour))
        line = Line(points=self._window_points(stroke), width=self.ink_width, cap="round", joint="round")
        self._ink.add(line)
        return line

    def _window_points(self, stroke: list[tuple[float, float]]) -> list[float]:
        points: list[float] = []
        for x, y in stroke:
            points += (self.x + x, self.y + y)
        if len(stroke) == 1:  # a dot: a line needs two points
            points += (points[0] + 0.5, points[1] + 0.5)
        return points

    def _local(self, touch: Any) -> tuple[float, float]:
        x = min(max(touch.x, self.x), self.right) - self.x
        y = min(max(touch.y, self.y), self.top) - self.y
        return (round(x, 1), round(y, 1))

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos) or self.disabled:
            return False
        if self._uid is not None:
            return True  # a second finger: ignored, and not passed on
        mouse_button = touch.button if "button" in touch.profile else "left"
        if mouse_button != "left" or len(self.strokes) >= MAX_STROKES:
            return True
        touch.grab(self)
        self._uid = touch.uid
        self.writing = True
        stroke = [self._local(touch)]
        self.strokes.append(stroke)
        self._line = self._draw(stroke)
        self.has_ink = True
        return True

    def on_touch_move(self, touch: Any) -> bool:
        if touch.grab_current is not self or touch.uid != self._uid:
            return super().on_touch_move(touch)
        stroke = self.strokes[-1]
        point = self._local(touch)
        last = stroke[-1]
        if len(stroke) < MAX_POINTS and abs(point[0] - last[0]) + abs(point[1] - last[1]) >= 2:
            stroke.append(point)
            if self._line is not None:
                self._line.points = self._window_points(stroke)
        return True

    def on_touch_up(self, touch: Any) -> bool:
        if touch.grab_current is not self or touch.uid != self._uid:
            return super().on_touch_up(touch)
        touch.ungrab(self)
        self._uid = None
        self.writing = False
        self._line = None
        self.dispatch("on_stroke")
        return True

    def on_pos(self, *_args: Any) -> None:
        self._redraw()

    def on_size(self, *_args: Any) -> None:
        self._redraw()


class OnScreenKeyboard(BoxLayout):
    """The keyboard. `text` is the value being edited; 确定 dispatches `on_enter(text)`,
    取消 `on_cancel()`."""

    __events__ = ("on_enter", "on_cancel")

    mode = OptionProperty("digits", options=list(MODES))
    modes = ListProperty(list(MODES))  # the modes offered (mode buttons only for these)
    text = StringProperty("")
    max_length = NumericProperty(0)  # 0: no limit
    language = StringProperty("zh-CN")  # of the keyboard's own labels
    extra_keys = StringProperty("")  # up to two more keys beside 0 on the digit pad: "X", "-", "X-"
    composition = StringProperty("")  # pinyin letters not yet turned into hanzi
    composition_shown = StringProperty("")  # the same, split into syllables
    message = StringProperty("")  # on the candidate bar when it has no candidates
    page = NumericProperty(0)
    page_count = NumericProperty(0)
    input_engines = ObjectProperty(None, allownone=True)  # an InputEngines; None: the shared one
    # labels, in `language`
    enter_text = StringProperty("")
    cancel_text = StringProperty("")
    backspace_text = StringProperty("")
    clear_text = StringProperty("")
    rewrite_text = StringProperty("")
    space_text = StringProperty("")
    separator_text = StringProperty("")
    prev_text = StringProperty("")
    next_text = StringProperty("")
    write_here_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        self._candidates: list[tuple[str, int]] = []  # (text, letters of the composition it uses)
        self._page_starts: list[int] = [0]
        self._poll: Any = None
        self._reported: set[str] = set()
        self._keys: dict[str, KeyButton] = {}
        self._built = False
        super().__init__(**kwargs)

    def on_kv_post(self, _base_widget: Any) -> None:
        """Build the keys once the layout rule has run (its ids exist only from here)."""
        if self._built:
            return
        # kept here: they leave the layout in some modes (ids alone are weak references)
        self._comp_line, self._bar, self._body = (self.ids[n].__self__ for n in ("comp", "bar", "body"))
        self._pool = [CandidateButton() for _ in range(CANDIDATE_POOL)]
        for button in self._pool:
            button.bind(on_release=lambda b: self.press(b.action))
        self._mode_buttons = {m: self._key(f"mode:{m}", variant="secondary") for m in MODES}
        self._digit_pad = self._build_digits()
        self._letter_pad = self._build_letters()
        self._hand_pad = self._build_handwriting()
        self._paginate = Clock.create_trigger(lambda _dt: self._show_page())
        self.ids.cands.bind(width=lambda *_a: self._repaginate())
        self._built = True
        self._apply_texts()
        self._apply_mode()
        self._source().start_loading()

    # -- building (once) ---------------------------------------------------------------------
    def _key(self, action: str, text: str = "", variant: str = "secondary") -> KeyButton:
        key = KeyButton(action=action, text=text, variant=variant)
        key.bind(on_release=lambda b: self.press(b.action))
        self._keys[action] = key
        return key

    def _row(self, keys: list[Widget]) -> BoxLayout:
        row = BoxLayout(spacing=self.kgap)
        self.bind(kgap=row.setter("spacing"))
        for key in keys:
            row.add_widget(key)
        return row

    def _build_digits(self) -> BoxLayout:
        pad = BoxLayout(orientation="vertical", spacing=self.kgap)
        self.bind(kgap=pad.setter("spacing"))
        for row in DIGIT_ROWS:
            pad.add_widget(self._row([self._key(f"key:{d}", d) for d in row]))
        self._extra = [self._key("key:extra0"), self._key("key:extra1")]
        pad.add_widget(self._row([self._extra[0], self._key("key:0", "0"), self._extra[1]]))
        self._apply_extra_keys()
        return pad

    def _build_letters(self) -> BoxLayout:
        pad = BoxLayout(orientation="vertical", spacing=self.kgap)
        self.bind(kgap=pad.setter("spacing"))
        self._letter_rows: list[tuple[BoxLayout, int]] = []
        for letters in QWERTY:
            row = self._row([self._key(f"key:{c}", c) for c in letters])
            self._letter_rows.append((row, len(letters)))
            pad.add_widget(row)
        self._space = self._key("key:space", variant="quiet")
        self._separator = self._key(f"key:{SEPARATOR}", variant="quiet")
        self._bottom_row = self._row([self._space])
        pad.add_widget(self._bottom_row)
        pad.bind(width=lambda *_a: self._fit_letter_rows())
        return pad

    def _fit_letter_rows(self) -> None:
        """Every letter key as wide as one of the top row's ten; shorter rows centred."""
        pad = self._letter_pad
        key_w = max(1.0, (pad.width - 9 * self.kgap) / 10)
        for row, count in self._letter_rows:
            side = max(0.0, (pad.width - count * key_w - (count - 1) * self.kgap) / 2)
            row.padding = (side, 0, side, 0)
        self._space.size_hint_x = self._separator.size_hint_x = None
        self._space.width = 4 * key_w + 3 * self.kgap
        self._separator.width = 2 * key_w + self.kgap
        keys = self._bottom_row.children
        total = sum(k.width for k in keys) + self.kgap * (len(keys) - 1)
        side = max(0.0, (pad.width - total) / 2)
        self._bottom_row.padding = (side, 0, side, 0)

    def _build_handwriting(self) -> BoxLayout:
        area = BoxLayout(spacing=self.kgap)
        self.bind(kgap=area.setter("spacing"))
        self.pad = WritingPad(size_hint_x=None)
        self.pad.bind(on_stroke=lambda *_a: self._recognise())
        self._rewrite = self._key("key:rewrite", variant="secondary")
        side = BoxLayout(orientation="vertical", size_hint_x=None)
        side.add_widget(self._rewrite)
        side.add_widget(Widget())
        self._hand_side = side
        area.add_widget(Widget())
        area.add_widget(self.pad)
        area.add_widget(side)
        area.add_widget(Widget())
        area.bind(size=lambda *_a: self._fit_handwriting())
        return area

    def _fit_handwriting(self) -> None:
        area = self._hand_pad
        self._hand_side.width = self.side_w
        self.pad.width = max(self.key_h, min(area.width - 2 * self.side_w - 3 * self.kgap, area.height * 1.8))
        self._rewrite.size_hint_y = None
        self._rewrite.height = self.key_h

    # -- mode and labels -------------------------------------------------------------------------
    def on_mode(self, *_args: Any) -> None:
        if not self._built:
            return
        self._apply_mode()

    def on_modes(self, *_args: Any) -> None:
        if not self._built:
            return
        if self.modes and self.mode not in self.modes:
            self.mode = self.modes[0]
        self._apply_mode()

    def on_language(self, *_args: Any) -> None:
        if not self._built:
            return
        self._apply_texts()

    def on_extra_keys(self, *_args: Any) -> None:
        if not self._built:
            return
        self._apply_extra_keys()

    def on_kgap(self, *_args: Any) -> None:
        if not self._built:
            return
        self._fit_letter_rows()

    def on_key_h(self, *_args: Any) -> None:
        if not self._built:
            return
        for button in self._mode_buttons.values():
            button.height = self.key_h
        self._fit_handwriting()

    def _apply_extra_keys(self) -> None:
        for n, key in enumerate(self._extra):
            char = self.extra_keys[n] if n < len(self.extra_keys) else ""
            key.text = char
            key.action = f"key:{char}" if char else f"key:extra{n}"
            key.opacity = 1 if char else 0
            key.disabled = not char

    def _apply_texts(self) -> None:
        texts, lang = _texts(), self.language

        def t(key: str) -> str:
            return texts.get(f"keyboard.{key}", lang)

        self.enter_text, self.cancel_text = t("enter"), t("cancel")
        self.backspace_text, self.clear_text = t("backspace"), t("clear")
        self.rewrite_text, self.space_text, self.separator_text = t("rewrite"), t("space"), t("separator")
        self.prev_text, self.next_text = t("prev_page"), t("next_page")
        self.write_here_text = t("write_here")
        for mode, button in self._mode_buttons.items():
            button.text = t(f"mode.{mode}")
        self._rewrite.text = self.rewrite_text
        self._space.text = self.space_text
        self._separator.text = self.separator_text
        self.pad.placeholder = self.write_here_text
        self._refresh()

    def _apply_mode(self) -> None:
        mode = self.mode
        self.composition = ""
        self.pad.clear()
        self._candidates = []
        for key_pad in (self._digit_pad, self._letter_pad, self._hand_pad):
            if key_pad.parent is not None:
                key_pad.parent.remove_widget(key_pad)
        self.ids.key_area.add_widget({"digits": self._digit_pad, "letters": self._letter_pad,
                                  "pinyin": self._letter_pad, "handwriting": self._hand_pad}[mode])
        for c in "".join(QWERTY):
            self._keys[f"key:{c}"].text = c.upper() if mode == "letters" else c
        if mode == "pinyin" and self._separator.parent is None:
            self._bottom_row.add_widget(self._separator)
        elif mode != "pinyin" and self._separator.parent is not None:
            self._bottom_row.remove_widget(self._separator)
        self._fit_letter_rows()
        column = self.ids.mode_column
        column.clear_widgets()
        offered = [m for m in MODES if m in self.modes]
        if len(offered) > 1:
            for m in offered:
                button = self._mode_buttons[m]
                button.variant = "primary" if m == mode else "secondary"
                button.size_hint_y = None
                button.height = self.key_h
                column.add_widget(button)
            column.add_widget(Widget())
        self.with_candidates = mode in ("pinyin", "handwriting")
        self.clear_widgets()
        if mode == "pinyin":
            self.add_widget(self._comp_line)
        if self.with_candidates:
            self.add_widget(self._bar)
        self.add_widget(self._body)
        self._refresh()

    # -- keys ------------------------------------------------------------------------------------
    def press(self, action: str) -> None:
        """Do what touching the widget with this `action` does."""
        kind, _, what = action.partition(":")
        if kind == "mode" and what in self.modes:
            self.mode = what
        elif kind == "cand":
            self.pick(int(what))
        elif kind == "page":
            self._turn(1 if what == "next" else -1)
        elif kind == "key":
            if what == "backspace":
                self.backspace()
            elif what == "clear":
                self.clear()
            elif what == "enter":
                self.enter()
            elif what == "cancel":
                self.cancel()
            elif what == "rewrite":
                self.pad.clear()
                self._refresh()
            elif what == "space":
                self._space_key()
            elif len(what) == 1:
                self.type_char(what)

    def type_char(self, char: str) -> None:
        """A character key: pinyin letters go to the composition, the rest into the text."""
        if self.mode == "pinyin" and (char.isalpha() or char == SEPARATOR):
            if char == SEPARATOR and (not self.composition or self.composition.endswith(SEPARATOR)):
                return
            if len(self.composition) < MAX_LETTERS:
                self.composition += char.lower()
                self._refresh()
            return
        if char == SEPARATOR:
            return
        self._insert(char.upper() if self.mode == "letters" else char)

    def _insert(self, chunk: str) -> bool:
        if self.max_length and len(self.text) + len(chunk) > self.max_length:
            return False
        self.text += chunk
        return True

    def _space_key(self) -> None:
        if self.composition or self.pad.has_ink:
            if self._candidates:
                self.pick(0)
            return
        self._insert(" ")

    def backspace(self) -> None:
        """Edits the composition (or the last stroke) first, then the text."""
        if self.mode == "pinyin" and self.composition:
            self.composition = self.composition[:-1]
            self._refresh()
        elif self.mode == "handwriting" and self.pad.has_ink:
            self.pad.undo()
            self._recognise()
        else:
            self.text = self.text[:-1]

    def clear(self) -> None:
        self.composition = ""
        self.pad.clear()
        self.text = ""
        self._refresh()

    def enter(self) -> None:
        """确定: pending pinyin or ink first becomes its best candidate; then the text is done."""
        if self.composition or self.pad.has_ink:
            if self._candidates:
                self.pick(0)
            return
        self.dispatch("on_enter", self.text)

    def cancel(self) -> None:
        self.composition = ""
        self.pad.clear()
        self._candidates = []
        self.dispatch("on_cancel")

    def reset(self) -> None:
        """Forget everything typed (the value may be personal)."""
        self.composition = ""
        self.pad.clear()
        self.text = ""
        self._candidates = []
        self._refresh()

    def on_enter(self, text: str) -> None:
        """确定 was touched with `text`."""

    def on_cancel(self) -> None:
        """取消 was touched."""

    # -- candidates ----------------------------------------------------------------------------
    def candidates(self) -> list[str]:
        """Every candidate offered now (all pages)."""
        return [text for text, _ in self._candidates]

    def page_candidates(self) -> list[str]:
        """The candidates on the current page, in button order (cand:0, cand:1, ...)."""
        return [b.text for b in self._pool if b.parent is not None]

    def pick(self, index: int) -> None:
        """Take candidate `index` of the current page."""
        start = self._page_starts[self.page] if self.page < len(self._page_starts) else 0
        at = start + index
        if not 0 <= at < len(self._candidates):
            return
        text, consumed = self._candidates[at]
        if not self._insert(text):
            return
        if self.mode == "pinyin":
            self.composition = self.composition[consumed:].lstrip(SEPARATOR)
        else:
            self.pad.clear()
        self._refresh()

    def _source(self) -> InputEngines:
        return self.input_engines if self.input_engines is not None else engines()

    def _refresh(self) -> None:
        """Look up candidates for the composition or the ink; say why there are none."""
        if not self._built:
            return
        self._candidates = []
        self.message = ""
        self.composition_shown = self.composition
        texts = _texts()
        if self.mode == "pinyin":
            try:
                engine = self._source().pinyin()
            except InputEngineUnavailable as exc:
                self._unavailable(exc)
            else:
                if self.composition:
                    self.composition_shown = " ".join(s.spelling for s in engine.segment(self.composition)) \
                        or self.composition
                    self._candidates = [(c.text, c.consumed) for c in engine.lookup(self.composition, CANDIDATE_LIMIT)]
                    if not self._candidates:
                        self.message = texts.get("keyboard.no_match", self.language)
                else:
                    self.message = texts.get("keyboard.type_pinyin", self.language)
        elif self.mode == "handwriting":
            try:
                engine_hw = self._source().handwriting()
            except InputEngineUnavailable as exc:
                self._unavailable(exc)
            else:
                if self.pad.strokes:
                    self._candidates = [(c, 0) for c in engine_hw.recognise(self.pad.strokes, CANDIDATE_LIMIT)]
                    if not self._candidates:
                        self.message = texts.get("keyboard.not_recognised", self.language)
                else:
                    self.message = texts.get("keyboard.write_prompt", self.language)
        self.page = 0
        self._show_page()

    _recognise = _refresh  # after each stroke: recognition takes 1-2 ms

    def _unavailable(self, exc: InputEngineUnavailable) -> None:
        if exc.loading:
            self.message = _texts().get("keyboard.loading", self.language)
            if self._poll is None:
                self._poll = Clock.schedule_interval(self._check_loaded, POLL_S)
            return
        self.message = _texts().get("keyboard.unavailable", self.language)
        if str(exc) not in self._reported:  # once per problem, for the technician
            self._reported.add(str(exc))
            log.error("on-screen keyboard: %s", exc)

    def _check_loaded(self, _dt: float) -> bool:
        source = self._source()
        kind = "pinyin" if self.mode == "pinyin" else "handwriting" if self.mode == "handwriting" else ""
        try:
            if kind == "pinyin":
                source.pinyin()
            elif kind == "handwriting":
                source.handwriting()
        except InputEngineUnavailable as exc:
            if exc.loading:
                return True  # keep polling
        self._poll = None
        self._refresh()
        return False

    def _repaginate(self) -> None:
        self._paginate()

    def _candidate_width(self, text: str) -> float:
        return max(self.key_h * 1.1, len(text) * self.cand_font * 1.02 + 2 * self.kgap + 16)

    def _show_page(self) -> None:
        """Pages of candidates that fit the bar; the pooled buttons take the current page."""
        bar = self.ids.cands
        room = bar.width
        starts = [0]
        used = 0.0
        for n, (text, _) in enumerate(self._candidates):
            width = self._candidate_width(text) + self.kgap
            count = n - starts[-1]
            if count and (used + width > room or count >= CANDIDATE_POOL):
                starts.append(n)
                used = 0.0
            used += width
        self._page_starts = starts
        self.page_count = len(starts) if self._candidates else 0
        self.page = min(self.page, max(0, self.page_count - 1))
        start = starts[self.page] if self._candidates else 0
        end = starts[self.page + 1] if self.page + 1 < len(starts) else len(self._candidates)
        shown = self._candidates[start:end]
        bar.clear_widgets()
        for n, button in enumerate(self._pool):
            if n < len(shown):
                button.text = shown[n][0]
                button.action = f"cand:{n}"
                button.width = self._candidate_width(shown[n][0])
                button.font_size = self.cand_font
                bar.add_widget(button)
            else:
                button.text = ""
        prev, nxt = self.ids.prev, self.ids.next
        prev.disabled = self.page <= 0
        nxt.disabled = self.page >= self.page_count - 1

    def _turn(self, step: int) -> None:
        wanted = self.page + step
        if 0 <= wanted < self.page_count:
            self.page = wanted
            self._paginate()

    # -- sizes (bound in keyboard.kv) ------------------------------------------------------------
    key_h = NumericProperty(84)
    kgap = NumericProperty(10)
    side_w = NumericProperty(170)
    cand_font = NumericProperty(40)
    with_candidates = BooleanProperty(False)


Builder.load_file(str(Path(__file__).with_name("keyboard.kv")))
