"""The on-screen keyboard and field editor under a real X server (Xvfb + Mesa GL).

This file is both the tests and, run as a script, the small app they drive: a window of
1280 x 800 holding one FieldEditor (Kivy allows one App per process, so it runs in its
own process, as the kiosk does in test_ui_xvfb.py). The app reports its state as JSON
lines; keys are touched by real X clicks (xdotool), strokes on the writing pad by
dispatching touch events in the app, and once by a real X drag.

Screenshots: artifacts/screenshots/keyboard-<mode>.png, for a person to look at.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from x11 import AppProcess, xdotool

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
SCREEN = (1280, 800)

# -- strokes for the pad, in the pad's own box as fractions (x right, y DOWN like a page) ---
SHI = [[(0.15, 0.5), (0.85, 0.5)], [(0.5, 0.12), (0.5, 0.9)]]  # 十
REN = [[(0.52, 0.12), (0.2, 0.88)], [(0.48, 0.42), (0.82, 0.88)]]  # 人


# ==========================================================================================
# the app (run as a script)
# ==========================================================================================
def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def host() -> int:  # pragma: no cover - runs in the app's process
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch,disable_on_activity")
    Config.set("graphics", "width", str(SCREEN[0]))
    Config.set("graphics", "height", str(SCREEN[1]))
    Config.set("graphics", "fullscreen", "0")

    from config import load_config
    from config.texts import Texts
    from screens.fonts import register_chinese_font

    ui = load_config().ui
    font_path = register_chinese_font(ui.font, ui.font_candidates)

    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch
    from kivy.uix.widget import Widget

    from kiosk.chinese_input import engines
    from screens.field_editor import FieldEditor
    from screens.keyboard import CandidateButton, KeyButton
    from screens.theme import Theme

    started = time.monotonic()
    gaps: list[float] = []  # frame gaps while the engines load (the UI must keep drawing)

    # The pinyin dictionary is held back until the test has looked once at an open editor, so
    # the "still loading" state is always seen, however fast the machine.
    import kiosk.chinese_input as chinese_input

    looked = threading.Event()

    def pinyin_after_the_first_look() -> Any:
        looked.wait(60)
        return chinese_input.PinyinEngine.load()

    chinese_input._shared = chinese_input.InputEngines(pinyin_loader=pinyin_after_the_first_look)

    class Host(App):
        def build(self) -> Widget:
            self.theme = Theme()
            self.texts = Texts.load()
            Window.clearcolor = Theme.page
            self.theme.fit(*Window.size)
            self.editor = FieldEditor()  # starts the engines loading (in the background)
            self.editor.bind(on_dismiss=lambda *_a: emit(event="closed"))
            self.last_frame = time.monotonic()
            Clock.schedule_interval(self._frame, 0)
            return Widget()

        def _frame(self, _dt: float) -> None:
            now = time.monotonic()
            if self.measuring and not engines().ready.is_set():
                gaps.append(now - self.last_frame)
            self.last_frame = now

        def on_start(self) -> None:
            self.measuring = False

            def ready(_dt: float) -> None:
                self.measuring = True  # from here: the window is up and idle
                emit(event="ready", font_path=font_path, since_start=time.monotonic() - started)

            Clock.schedule_once(ready, 0.3)
            threading.Thread(target=commands, args=(self,), daemon=True).start()

    def box(widget: Any) -> list[int]:
        x, y = widget.to_window(widget.x, widget.y)
        return [int(x), int(Window.height - y - widget.height), int(widget.width), int(widget.height)]

    def state(app: Host) -> dict[str, Any]:
        editor = app.editor
        kb = editor.keyboard
        targets = editor.touch_targets()
        keys = [{"action": w.action, "h": w.height, "w": w.width, "font": w.font_size}
                for w in editor.walk(restrict=True)
                if isinstance(w, KeyButton) and not isinstance(w, CandidateButton) and w.action in targets]
        engines_ready = engines().ready.is_set()
        if editor.is_open:
            looked.set()
        return {"event": "state", "open": editor.is_open, "mode": kb.mode, "modes": list(kb.modes),
                "text": kb.text, "composition": kb.composition, "shown": kb.composition_shown,
                "message": kb.message, "page": kb.page, "pages": kb.page_count,
                "page_candidates": kb.page_candidates(), "candidates": kb.candidates()[:20],
                "error": editor.error, "label": editor.label, "shown_value": editor.shown_value,
                "strokes": len(kb.pad.strokes), "writing": kb.pad.writing, "pad": box(kb.pad) if kb.pad.get_root_window() else None,
                "targets": targets, "keys": keys, "touch_h": app.theme.touch_h, "body": app.theme.body,
                "engines_ready": engines_ready, "load_gaps_max": max(gaps, default=0.0),
                "window": [int(Window.width), int(Window.height)]}

    def stroke(points: list[list[float]], then: Callable[[], None]) -> None:
        """One finger drawing through `points` (window pixels from the top-left), a frame
        per move, as a touchscreen would deliver them."""
        def at(p: list[float]) -> tuple[float, float]:
            return p[0], Window.height - p[1]

        touch = UnitTestTouch(*at(points[0]))
        steps = list(points[1:])

        def step(_dt: float) -> None:
            if steps:
                touch.touch_move(*at(steps.pop(0)))
                Clock.schedule_once(step, 0)
            else:
                touch.touch_up()
                then()

        touch.touch_down()
        Clock.schedule_once(step, 0)

    def two_fingers(points: list[list[float]], other: list[float]) -> None:
        """A finger writes while a second one lands on the pad and lifts: only one stroke."""
        first = UnitTestTouch(points[0][0], Window.height - points[0][1])
        first.touch_down()
        second = UnitTestTouch(other[0], Window.height - other[1])
        second.touch_down()
        for p in points[1:]:
            first.touch_move(p[0], Window.height - p[1])
        second.touch_move(other[0] + 40, Window.height - other[1] - 40)
        second.touch_up()
        first.touch_up()

    def shot(name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)

        def take(window: Any) -> None:
            window.unbind(on_flip=take)
            written = Path(window.screenshot(name=str(SHOTS / f"{name}.png")))
            final = SHOTS / f"{name}.png"
            written.replace(final)
            emit(event="screenshot", name=name, path=str(final))

        def arm(_dt: float) -> None:
            Window.bind(on_flip=take)
            Window.canvas.ask_update()

        Clock.schedule_once(arm, 0.25)

    def commands(app: Host) -> None:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            do = cmd.get("do")
            if do == "edit":
                reject, then = cmd.get("reject", ""), cmd.get("then")

                def on_done(text: str, reject: str = reject, then: dict[str, Any] | None = then) -> None:
                    emit(event="done", text=text)
                    if reject:
                        app.editor.set_error(reject)
                    elif then:  # the next field, opened from on_done as a form would
                        app.editor.edit(then["label"], "", then["modes"], lambda t: emit(event="done", text=t),
                                        language="zh-CN")

                Clock.schedule_once(lambda _dt, c=cmd, f=on_done: app.editor.edit(
                    c["label"], c.get("value", ""), c["modes"], f, language=c.get("language", "zh-CN"),
                    hint=c.get("hint", ""), max_length=c.get("max_length", 0),
                    extra_keys=c.get("extra_keys", "")))
            elif do == "state":  # after the next layout pass
                Clock.schedule_once(lambda _dt: emit(**state(app)), 0.12)
            elif do == "press":  # what a touch would do, without pixels
                Clock.schedule_once(lambda _dt, a=cmd["action"]: app.editor.keyboard.press(a))
            elif do == "stroke":
                Clock.schedule_once(lambda _dt, p=cmd["points"]: stroke(p, lambda: emit(event="stroked")))
            elif do == "two_fingers":
                Clock.schedule_once(lambda _dt, c=cmd: (two_fingers(c["points"], c["other"]),
                                                        emit(event="stroked")))
            elif do == "wait_engines":
                threading.Thread(target=lambda: emit(event="engines", ready=engines().wait(60),
                                                     errors=engines().errors(),
                                                     seconds=engines().load_seconds), daemon=True).start()
            elif do == "shot":
                Clock.schedule_once(lambda _dt, n=cmd["name"]: shot(n))
            elif do == "quit":
                break
        Clock.schedule_once(lambda _dt: app.stop())

    Host().run()
    emit(event="exit")
    return 0


# ==========================================================================================
# the tests
# ==========================================================================================
if __name__ != "__main__":
    import pytest

    class KeyboardApp(AppProcess):
        """The app's process: its JSON lines, its window, X clicks and drags."""

        def __init__(self, display: str, env: dict[str, str], stderr_path: Path) -> None:
            super().__init__(__file__, display, env, stderr_path, "KioskKeyboard")

        def state(self) -> dict[str, Any]:
            self.send(do="state")
            return self.wait_for(lambda e: e.get("event") == "state", "a state line")

        def state_until(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                        timeout: float = 8.0) -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            while True:
                now = self.state()
                if predicate(now):
                    return now
                if time.monotonic() > deadline:
                    raise AssertionError(f"the keyboard never showed {what}; last state: "
                                         f"{ {k: v for k, v in now.items() if k not in ('targets', 'keys')} }")
                time.sleep(0.05)

        def shot(self, name: str) -> Path:
            self.send(do="shot", name=name)
            event = self.wait_for(lambda e: e.get("event") == "screenshot" and e.get("name") == name,
                                  f"screenshot {name}")
            return Path(event["path"])

        def edit(self, **command: Any) -> dict[str, Any]:
            self.send(do="edit", **command)
            return self.state_until(lambda s: s["open"] and s["label"] == command["label"], "the editor open")

        # -- X -------------------------------------------------------------------------------
        def xdotool(self, *args: str) -> str:
            return xdotool(self.display, *args)

        def touch(self, state: dict[str, Any], action: str) -> None:
            """A real click on the widget with `action`."""
            assert action in state["targets"], f"no {action!r} on screen; there are {sorted(state['targets'])}"
            self.click_at(*state["targets"][action])

        def touch_keys(self, state: dict[str, Any], actions: list[str]) -> None:
            for action in actions:
                self.touch(state, action)

        def drag(self, points: list[list[float]]) -> None:
            """A real X drag through `points` (window pixels from the top-left)."""
            w = self.window()
            args = ["mousemove", "--window", w, *map(str, map(int, points[0])), "mousedown", "1"]
            for x, y in points[1:]:
                args += ["sleep", "0.02", "mousemove", "--window", w, str(int(x)), str(int(y))]
            args += ["sleep", "0.02", "mouseup", "1"]
            self.xdotool(*args)

    def on_pad(pad: list[int], strokes: list[list[tuple[float, float]]], steps: int = 8) -> list[list[list[float]]]:
        """Strokes given as fractions of the pad -> window pixels, `steps` points per segment."""
        x0, y0, w, h = pad
        out = []
        for stroke in strokes:
            points: list[list[float]] = []
            for (ax, ay), (bx, by) in itertools.pairwise(stroke):
                for i in range(steps + 1):
                    f = i / steps
                    points.append([x0 + (ax + (bx - ax) * f) * w, y0 + (ay + (by - ay) * f) * h])
            out.append(points)
        return out

    @pytest.fixture(scope="module")
    def kb(xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
        tmp = tmp_path_factory.mktemp("keyboard")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KIOSK_", "KIVY_", "SDL_")) and k != "DISPLAY"}
        env.update({"DISPLAY": xvfb, "KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp / "kivy"),
                    "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1", "SDL_AUDIODRIVER": "dummy",
                    "SDL_VIDEO_X11_WMCLASS": "KioskKeyboard", "PYTHONUNBUFFERED": "1"})
        (tmp / "kivy").mkdir()
        app = KeyboardApp(xvfb, env, tmp / "app.stderr")
        try:
            app.ready = app.wait_for(lambda e: e.get("event") == "ready", "the first frame", 30)
            yield app
        finally:
            app.stop()

    def assert_big_keys(state: dict[str, Any]) -> None:
        """Elder-friendly: every key >= 0.8 of a button's height, every caption >= body type."""
        assert state["keys"], "no keys on screen"
        for key in state["keys"]:
            assert key["h"] >= state["touch_h"] * 0.8, f"{key['action']} is {key['h']} px high"
            assert key["font"] >= state["body"], f"{key['action']} caption is {key['font']} px"

    # -- the tests (in file order; they share one app) -----------------------------------------
    def test_pinyin_says_loading_until_the_dictionary_is_there(kb):
        """Opened at once after start-up: the bar says so, and letters typed meanwhile count."""
        s = kb.edit(label="姓名", modes=["pinyin", "handwriting", "letters"], language="zh-CN")
        assert not s["engines_ready"]  # held back by the host until this first look
        assert s["message"] == "输入法正在加载…"
        assert s["mode"] == "pinyin" and s["page_candidates"] == []
        kb.shot("keyboard-loading")
        kb.send(do="press", action="key:w")
        kb.send(do="press", action="key:o")
        s = kb.state_until(lambda s: s["composition"] == "wo", "the letters typed while loading")
        kb.send(do="wait_engines")
        loaded = kb.wait_for(lambda e: e.get("event") == "engines", "the engines", 60)
        assert loaded["ready"] and not loaded["errors"], loaded
        s = kb.state_until(lambda s: s["page_candidates"], "candidates once loaded (polled by the Clock)")
        assert "我" in s["page_candidates"]
        print(f"engines loaded in {loaded['seconds']}; longest frame gap while loading "
              f"{s['load_gaps_max'] * 1000:.0f} ms")
        kb.send(do="press", action="key:cancel")
        kb.wait_for(lambda e: e.get("event") == "closed", "the editor to close")

    def test_digits_for_an_id_number(kb):
        s = kb.edit(label="身份证号码", modes=["digits"], hint="18 位，最后一位可以是 X", max_length=18,
                    extra_keys="X", language="zh-CN", then={"label": "手机号码", "modes": ["digits"]})
        assert s["mode"] == "digits"
        assert not any(a.startswith("mode:") for a in s["targets"]), "one mode: no mode buttons"
        assert "key:X" in s["targets"] and "key:-" not in s["targets"]
        assert_big_keys(s)
        kb.touch_keys(s, ["key:1", "key:1", "key:0", "key:1", "key:0", "key:1", "key:1", "key:9", "key:9",
                          "key:0", "key:0", "key:3", "key:0", "key:7", "key:1", "key:2", "key:3", "key:X"])
        s = kb.state_until(lambda s: len(s["text"]) == 18, "18 characters")
        assert s["text"] == "11010119900307123X"
        kb.touch(s, "key:5")  # the 19th: max_length keeps it out
        kb.shot("keyboard-digits")
        kb.touch(s, "key:backspace")
        s = kb.state_until(lambda s: len(s["text"]) == 17, "one deleted")
        assert s["text"] == "11010119900307123"
        kb.touch(s, "key:4")
        kb.touch(s, "key:enter")
        done = kb.wait_for(lambda e: e.get("event") == "done", "on_done")
        assert done["text"] == "110101199003071234"
        # on_done opened the next field: the editor stays open on it, empty
        s = kb.state_until(lambda s: s["label"] == "手机号码", "the next field")
        assert s["open"] and s["text"] == "" and s["error"] == ""
        kb.touch(s, "key:cancel")
        kb.wait_for(lambda e: e.get("event") == "closed", "the editor to close")
        assert kb.state()["text"] == "", "the closed editor still holds the number"

    def test_pinyin_beijing_by_touch(kb):
        s = kb.edit(label="地址", modes=["pinyin", "handwriting", "letters", "digits"], language="zh-CN")
        kb.send(do="wait_engines")
        kb.wait_for(lambda e: e.get("event") == "engines", "the engines", 60)
        s = kb.state_until(lambda s: s["message"] != "输入法正在加载…", "the engines ready")
        assert {"mode:pinyin", "mode:handwriting", "mode:letters", "mode:digits"} <= set(s["targets"])
        assert_big_keys(s)
        kb.touch_keys(s, [f"key:{c}" for c in "beijing"])
        s = kb.state_until(lambda s: s["composition"] == "beijing" and s["page_candidates"], "beijing's candidates")
        assert s["shown"] == "bei jing"
        assert s["page_candidates"][0] == "北京"
        kb.shot("keyboard-pinyin")
        kb.touch(s, f"cand:{s['page_candidates'].index('北京')}")
        s = kb.state_until(lambda s: s["text"] == "北京", "北京 in the text")
        assert s["composition"] == ""

        # a phrase the dictionary does not hold as one word
        kb.touch_keys(s, [f"key:{c}" for c in "shi"])
        s = kb.state_until(lambda s: s["composition"] == "shi" and s["page_candidates"], "shi's candidates")
        kb.touch(s, f"cand:{s['page_candidates'].index('市')}")
        s = kb.state_until(lambda s: s["text"] == "北京市", "北京市")

        # backspace edits the composition first, then the text
        kb.touch_keys(s, ["key:z", "key:h"])
        s = kb.state_until(lambda s: s["composition"] == "zh", "zh")
        kb.touch(s, "key:backspace")
        s = kb.state_until(lambda s: s["composition"] == "z", "z")
        assert s["text"] == "北京市"
        kb.touch(s, "key:backspace")
        s = kb.state_until(lambda s: s["composition"] == "", "no composition")
        kb.touch(s, "key:backspace")
        s = kb.state_until(lambda s: s["text"] == "北京", "市 deleted")

        # pages of candidates
        kb.touch_keys(s, [f"key:{c}" for c in "zhang"])
        s = kb.state_until(lambda s: s["composition"] == "zhang" and s["page_candidates"], "zhang")
        assert s["page_candidates"][0] == "张" and s["pages"] > 1
        first_page = s["page_candidates"]
        kb.touch(s, "page:next")
        s = kb.state_until(lambda s: s["page"] == 1, "the second page")
        assert s["page_candidates"] and not set(s["page_candidates"]) & set(first_page)
        kb.touch(s, "page:prev")
        s = kb.state_until(lambda s: s["page"] == 0, "the first page again")

        # 确定 with pinyin pending takes its best candidate first, and only then is done
        kb.touch(s, "key:enter")
        s = kb.state_until(lambda s: s["text"] == "北京张", "the best candidate on 确定")
        kb.touch(s, "key:cancel")
        kb.wait_for(lambda e: e.get("event") == "closed", "the editor to close")
        assert kb.state()["text"] == ""

    def test_handwriting_strokes_become_a_character(kb):
        s = kb.edit(label="姓名", modes=["pinyin", "handwriting"], language="zh-CN")
        kb.touch(s, "mode:handwriting")
        s = kb.state_until(lambda s: s["mode"] == "handwriting" and s["pad"], "the writing pad")
        kb.send(do="wait_engines")
        kb.wait_for(lambda e: e.get("event") == "engines", "the engines", 60)
        pad = s["pad"]
        assert pad[2] >= 300 and pad[3] >= 300, f"the pad is small: {pad}"
        assert "key:rewrite" in s["targets"]
        for points in on_pad(pad, SHI):
            kb.send(do="stroke", points=points)
            kb.wait_for(lambda e: e.get("event") == "stroked", "the stroke")
        s = kb.state_until(lambda s: s["strokes"] == 2 and not s["writing"] and s["page_candidates"],
                           "candidates for 十")
        assert "十" in s["page_candidates"][:3], s["page_candidates"]
        kb.shot("keyboard-handwriting")
        kb.touch(s, f"cand:{s['page_candidates'].index('十')}")
        s = kb.state_until(lambda s: s["text"] == "十", "十 in the text")
        assert s["strokes"] == 0, "the pad is cleared for the next character"

        # a second finger while writing is ignored: one stroke, not two
        first, _ = on_pad(pad, SHI)
        kb.send(do="two_fingers", points=first, other=[pad[0] + pad[2] * 0.8, pad[1] + pad[3] * 0.2])
        kb.wait_for(lambda e: e.get("event") == "stroked", "the strokes")
        s = kb.state_until(lambda s: s["strokes"] >= 1, "the stroke")
        assert s["strokes"] == 1
        # 重写 clears the pad; backspace then deletes text, not ink
        kb.touch(s, "key:rewrite")
        s = kb.state_until(lambda s: s["strokes"] == 0, "an empty pad")
        assert s["page_candidates"] == [] and s["message"]

        # a real X drag (the mouse stands for a finger): 人
        for points in on_pad(pad, REN, steps=6):
            kb.drag(points)
        s = kb.state_until(lambda s: s["strokes"] == 2 and not s["writing"] and s["page_candidates"],
                           "candidates for 人")
        assert "人" in s["page_candidates"][:3], s["page_candidates"]
        kb.touch(s, "key:backspace")  # takes back the last stroke
        s = kb.state_until(lambda s: s["strokes"] == 1, "one stroke left")
        assert s["text"] == "十"
        kb.touch(s, "key:rewrite")
        s = kb.state_until(lambda s: s["strokes"] == 0, "an empty pad")
        kb.touch(s, "key:backspace")
        s = kb.state_until(lambda s: s["text"] == "", "十 deleted")
        kb.touch(s, "key:cancel")
        kb.wait_for(lambda e: e.get("event") == "closed", "the editor to close")

    def test_letters_and_an_error_that_keeps_the_editor_open(kb):
        s = kb.edit(label="Licence plate", modes=["letters", "digits"], language="en",
                    hint="Letters and digits", reject="Please check the number")
        assert s["mode"] == "letters"
        assert_big_keys(s)
        kb.touch_keys(s, ["key:j", "key:b"])
        s = kb.state_until(lambda s: s["text"] == "JB", "upper-case letters")
        kb.touch(s, "mode:digits")
        s = kb.state_until(lambda s: s["mode"] == "digits" and "key:7" in s["targets"], "the digit pad")
        kb.touch(s, "key:7")
        s = kb.state_until(lambda s: s["text"] == "JB7", "JB7")
        kb.touch(s, "mode:letters")
        s = kb.state_until(lambda s: s["mode"] == "letters", "letters again")
        kb.shot("keyboard-letters")
        kb.touch(s, "key:enter")
        done = kb.wait_for(lambda e: e.get("event") == "done", "on_done")
        assert done["text"] == "JB7"
        s = kb.state_until(lambda s: s["error"], "the error")
        assert s["open"] and s["error"] == "Please check the number"
        kb.shot("keyboard-error")
        kb.xdotool("key", "--window", kb.window(), "Escape")  # a hardware Esc does not close it either
        time.sleep(0.3)
        assert kb.state()["open"]
        kb.touch(s, "key:backspace")  # correcting clears the error
        s = kb.state_until(lambda s: s["text"] == "JB" and not s["error"], "the error gone")
        kb.touch(s, "key:cancel")
        kb.wait_for(lambda e: e.get("event") == "closed", "the editor to close")

if __name__ == "__main__":
    sys.exit(host())
