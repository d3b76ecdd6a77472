"""The remote help call on the kiosk's screen under a real X server (Xvfb + Mesa GL).

This file is both the tests and, run as a script, the app they drive: the whole kiosk app
(Terminal + KioskApp, devices off) in its own process, taking commands on stdin that stand
for the fleet agent (the visit's help_* methods, called from another thread as the agent
does) and answering with JSON lines about what the help card, the help bar and the pointer
show. No MQTT here: the fleet channel is tested in tests/fleet/. The platform ticket worker
is unsubscribed, so nothing but the test answers a help call.

Touches on the card and the bar are real X clicks (xdotool). Screenshots for a person to look
at: artifacts/screenshots/help/ (waiting, consent, connected with messages, pointer,
minimized, ended, and the connected card in English).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots" / "help"
SCREEN = (1280, 800)
CALL = "call-ui-0001"
STAFF = "王芳"


# ==========================================================================================
# the app (run as a script)
# ==========================================================================================
def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def host() -> int:  # pragma: no cover - runs in the app's process
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from drive_app import (
        CardStub,  # what the visit reads of an ID card (tests/ui/drive_app.py)
    )

    from config import load_config
    from kiosk.terminal import Terminal

    terminal = Terminal(load_config())
    visit = terminal.visit
    visit.unsubscribe(terminal.help_calls.on_view)  # the test is the help desk here
    terminal.start()

    from kivy.clock import Clock

    from screens.app import KioskApp, run_app

    def box(widget: Any) -> list[int]:
        from kivy.core.window import Window

        x, y = widget.to_window(widget.x, widget.y)
        return [int(x), int(Window.height - y - widget.height), int(widget.width), int(widget.height)]

    def look(app: KioskApp, reason: str) -> None:
        """What the help card, bar and pointer show now (on the UI thread), and the touch-target
        fractions as the fleet agent reads them (from another thread)."""
        from kivy.core.window import Window

        overlay, bar, ring = app.help_overlay, app.help_bar, app.pointer
        assert overlay is not None and bar is not None and ring is not None
        view = visit.view()
        call = view.help
        card = overlay.card
        parts = [name for name, widget in overlay.parts.items() if widget.parent is card]
        labels = [{"text": w.text, "box": box(w), "font_size": float(w.font_size), "newest": bool(w.newest),
                   "texture_h": int(w.texture_size[1])} for w in overlay.message_labels if w.parent is not None]
        line = dict(
            event="look", reason=reason, step=view.step.value, language=view.language,
            help=None if call is None else {"state": call.state, "consent": call.consent, "staff": call.staff,
                                            "messages": list(call.messages), "minimized": call.minimized,
                                            "pointer": list(call.pointer) if call.pointer else None},
            overlay={"open": overlay.is_open, "mode": overlay.mode, "parts": parts, "title": overlay.title,
                     "text": overlay.text, "from": overlay.from_text, "pointing": overlay.pointing,
                     "card": box(card), "messages": labels, "messages_view": box(overlay.parts["messages_view"]),
                     "title_texture_h": int(overlay.parts["title_label"].texture_size[1]),
                     "title_h": int(overlay.parts["title_label"].height)},
            bar={"shown": bar.parent is not None, "status": bar.status_text, "message": bar.message_text,
                 "pointing": bar.pointing,
                 "box": box(bar) if bar.parent is not None else None},
            ring={"showing": ring.showing, "center": list(ring.center_from_top_left()),
                  "radius": float(ring.radius), "on_top": bool(Window.children) and Window.children[0] is ring},
            window=[int(Window.width), int(Window.height)], subtitle=float(app.theme.subtitle),
            targets=app.touch_targets())

        def finish() -> None:  # read the snapshot on another thread, as the fleet agent does
            line["layout"] = app.layout_fractions()
            emit(**line)
        threading.Thread(target=finish, name="test-layout-reader").start()

    def prepare(app: KioskApp) -> None:
        def on_first_frame(_app: KioskApp) -> None:
            Clock.schedule_once(lambda _dt: emit(event="ready"), 0.2)

        def on_view_shown(_app: KioskApp, view: Any) -> None:
            call = view.help
            emit(event="view", step=view.step.value, reason=view.reason,
                 help=None if call is None else call.state)

        app.bind(on_first_frame=on_first_frame, on_view_shown=on_view_shown,
                 on_screenshot=lambda _app, name, path: emit(event="screenshot", name=name, path=path))
        threading.Thread(target=commands, args=(app,), name="test-commands", daemon=True).start()

    def commands(app: KioskApp) -> None:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                do = cmd.get("do")
                if do == "visit":  # what the fleet agent calls, from its own thread
                    args = [visit.session.visit_id if a == "$visit" else a for a in cmd.get("args", [])]
                    result = getattr(visit, cmd["method"])(*args)
                    emit(event="visit", method=cmd["method"], result=result)
                elif do == "card":
                    visit.card_read(CardStub())
                elif do == "act":  # what a button would do, without the pixels
                    action, args = cmd["action"], cmd.get("args", [])
                    Clock.schedule_once(lambda _dt, a=action, args=args: app.act(a, *args))
                elif do == "look":  # after the layout has placed what the last change showed
                    Clock.schedule_once(lambda _dt: look(app, "look"), float(cmd.get("after", 0.3)))
                elif do == "shot":
                    Clock.schedule_once(lambda _dt, n=cmd["name"]: app.take_screenshot(n))
                elif do == "quit":
                    break
                else:
                    print(f"help host: unknown command {line!r}", file=sys.stderr)
            except Exception as exc:  # a test bug; say so and go on
                print(f"help host: command {line!r} failed: {exc!r}", file=sys.stderr)
                emit(event="error", command=line.strip(), error=repr(exc))
        app.stop_requested.set()

    try:
        run_app(terminal, prepare)
    finally:
        terminal.stop()
        emit(event="exit")
    return 0


if __name__ == "__main__":
    sys.exit(host())


# ==========================================================================================
# the tests
# ==========================================================================================
import pytest
from x11 import AppProcess  # tests/ui/x11.py (pytest puts this folder on sys.path)


class HelpApp(AppProcess):
    """The app's process: its JSON lines, its window, real X clicks."""

    def __init__(self, display: str, env: dict[str, str], stderr_path: Path) -> None:
        super().__init__(__file__, display, env, stderr_path, "KioskHelp")

    def visit(self, method: str, *args: Any) -> Any:
        """Call the visit as the fleet agent would (from a thread that is not the UI's)."""
        self.send(do="visit", method=method, args=list(args))
        answer = self.wait_for(lambda e: e.get("event") == "visit" and e.get("method") == method
                               or e.get("event") == "error", f"visit.{method}")
        assert answer["event"] == "visit", f"visit.{method}{args} failed: {answer['error']}"
        return answer["result"]

    def look(self) -> dict[str, Any]:
        self.send(do="look")
        return self.wait_for(lambda e: e.get("event") == "look", "a look line")

    def look_until(self, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0) -> dict[str, Any]:
        """Look again and again until `check` holds (the UI thread renders when it can)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.look()
            if check(seen):
                return seen
            if time.monotonic() > deadline:
                shown = {k: v for k, v in seen.items() if k not in ("targets", "layout")}
                raise AssertionError(f"timed out waiting for {what}; last look: {json.dumps(shown, ensure_ascii=False)}")

    def shot(self, name: str) -> Path:
        self.send(do="shot", name=name)
        path = Path(self.wait_for(lambda e: e.get("event") == "screenshot" and e.get("name") == name,
                                  f"screenshot {name!r}")["path"])
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path

    def click_target(self, seen: dict[str, Any], action: str) -> None:
        targets = seen["targets"]
        assert action in targets, f"no button {action!r} on screen; there are {sorted(targets)}"
        self.click_at(*targets[action])


@pytest.fixture(scope="module")
def kiosk(xvfb: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("help")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIOSK_", "KIVY_", "SDL_")) and k != "DISPLAY"}
    (tmp / "kivy").mkdir()
    env.update({
        "DISPLAY": xvfb, "KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp / "kivy"),
        "KIVY_NO_FILELOG": "1", "KIVY_NO_CONSOLELOG": "1",
        "SDL_AUDIODRIVER": "dummy", "SDL_VIDEO_X11_WMCLASS": "KioskHelp",
        "KIOSK__DEVICES__IDCARD__ENABLED": "false", "KIOSK__DEVICES__SMARTCARD__ENABLED": "false",
        "KIOSK__DEVICES__CAMERA__ENABLED": "false", "KIOSK__FACE__ENABLED": "false",
        "KIOSK__DEVICES__RECEIPT_PRINTER__ENABLED": "false", "KIOSK__DEVICES__A4_PRINTER__ENABLED": "false",
        "KIOSK__DEVICES__SCANNER__ENABLED": "false", "KIOSK__DEVICES__QR_SCANNER__ENABLED": "false",
        "KIOSK__UI__FULLSCREEN": "false", "KIOSK__UI__WIDTH": str(SCREEN[0]), "KIOSK__UI__HEIGHT": str(SCREEN[1]),
        "KIOSK__VOICE__ENABLED": "false", "KIOSK__PLATFORM__URL": "",
        "KIOSK__TERMINAL__DATA_DIR": str(tmp / "var"),
        # nobody walks away during this test: no idle warning over the card
        "KIOSK__VISIT__IDLE_TIMEOUT_S": "600", "KIOSK__VISIT__IDENTIFY_TIMEOUT_S": "600",
        "KIOSK_SCREENSHOT_DIR": str(SHOTS), "PYTHONUNBUFFERED": "1",
    })
    app = HelpApp(xvfb, env, tmp / "app.stderr")
    try:
        app.wait_for(lambda e: e.get("event") == "ready", "the first frame", 40)
        yield app
    finally:
        app.stop()


def assert_card_fits(seen: dict[str, Any]) -> None:
    """The card is wholly inside the window and its title is not cut."""
    x, y, w, h = seen["overlay"]["card"]
    width, height = seen["window"]
    assert 0 <= x and x + w <= width and 0 <= y and y + h <= height, f"card {seen['overlay']['card']} leaves the window"
    assert seen["overlay"]["title_h"] >= seen["overlay"]["title_texture_h"] > 0


def call_connected(kiosk: HelpApp, call_id: str) -> None:
    """求助 pressed, queued at the help desk, taken by 王芳 (the fleet agent's calls)."""
    kiosk.send(do="act", action="help")
    kiosk.wait_for(lambda e: e.get("event") == "view" and e.get("reason") == "help", "help pressed")
    assert kiosk.visit("help_waiting", "$visit", call_id) is True
    assert kiosk.visit("help_connected", call_id, STAFF) is True


# -- the tests (in file order; they share one app) ------------------------------------------------
def test_a_help_call_from_waiting_to_the_end(kiosk: HelpApp) -> None:
    kiosk.send(do="card")  # an identified citizen on their own page (face check off)
    kiosk.wait_for(lambda e: e.get("event") == "view" and e.get("step") == "home", "the citizen's page")

    # 求助 -> waiting in the help desk's queue
    kiosk.send(do="act", action="help")
    kiosk.wait_for(lambda e: e.get("event") == "view" and e.get("reason") == "help", "help pressed")
    assert kiosk.visit("help_waiting", "$visit", CALL) is True
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "waiting", "the waiting card")
    assert seen["overlay"]["open"] and seen["overlay"]["text"].startswith("已通知客服人员")
    assert "close_help" in seen["targets"] and "end_help" not in seen["targets"]
    assert "start" not in seen["targets"] and "help" not in seen["targets"], "the screen under the card is touchable"
    assert_card_fits(seen)
    kiosk.shot("help-waiting")

    # a staff member takes it: the consent question first, nothing else to touch
    assert kiosk.visit("help_connected", CALL, STAFF) is True
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "consent", "the consent question")
    assert seen["help"]["consent"] == "asked"
    assert seen["overlay"]["title"] == f"客服 {STAFF} 已接通，正在为您服务。"
    assert {"consent:yes", "consent:no"} <= set(seen["targets"]) and "end_help" not in seen["targets"]
    # the fleet agent's snapshot of the targets follows a moment after each change
    seen = kiosk.look_until(lambda s: set(s["layout"]) == set(s["targets"]), "the layout snapshot")
    assert_card_fits(seen)
    kiosk.shot("help-consent")

    # a real touch on 显示我的信息
    kiosk.click_target(seen, "consent:yes")
    seen = kiosk.look_until(lambda s: s["help"]["consent"] == "granted" and s["overlay"]["mode"] == "connected",
                            "the consent given")
    assert seen["overlay"]["text"] == "工作人员现在可以看到您的信息。"
    assert {"minimize_help", "end_help"} <= set(seen["targets"]) and "consent:yes" not in seen["targets"]

    # two messages: the newest on top, larger, marked
    assert kiosk.visit("help_message", CALL, "您好，我是王芳，请问需要办理什么业务？") is True
    assert kiosk.visit("help_message", CALL, "请点击屏幕上的“开始办理”，然后按提示操作。") is True
    seen = kiosk.look_until(lambda s: len(s["overlay"]["messages"]) == 2 and "minimize_help" in s["layout"],
                            "two messages on the card")
    newest, older = seen["overlay"]["messages"]
    assert newest["text"].startswith("请点击") and newest["newest"] and not older["newest"]
    assert newest["font_size"] >= seen["subtitle"] > older["font_size"] - 5
    assert newest["box"][1] < older["box"][1], "the newest message is not on top"
    assert seen["overlay"]["from"] == f"客服 {STAFF}："
    assert_card_fits(seen)
    kiosk.shot("help-connected")

    # the pointer, at the centre of 收起 as the console sees it (over the card: the ring is on top)
    lx, ly, lw, lh = seen["layout"]["minimize_help"]
    fx, fy = lx + lw / 2, ly + lh / 2
    assert kiosk.visit("help_pointer", CALL, fx, fy) is True
    seen = kiosk.look_until(lambda s: s["ring"]["showing"], "the pointer ring")
    width, height = seen["window"]
    cx, cy = seen["ring"]["center"]
    assert abs(cx - fx * width) <= 2 and abs(cy - fy * height) <= 2, (seen["ring"], fx, fy)
    tx, ty = seen["targets"]["minimize_help"]
    assert abs(cx - tx) <= 2 and abs(cy - ty) <= 2, "the ring is not on the button pointed at"
    assert seen["ring"]["on_top"], "the ring is under another layer"
    assert seen["overlay"]["pointing"], "the card does not say where to look"
    kiosk.shot("help-pointer")
    # it fades by itself, and so does the hint
    seen = kiosk.look_until(lambda s: not s["ring"]["showing"] and not s["overlay"]["pointing"],
                            "the ring to fade")

    # 收起: the card folds away, the bar under the header says who is there and what they said
    kiosk.click_target(seen, "minimize_help")
    seen = kiosk.look_until(lambda s: s["bar"]["shown"] and not s["overlay"]["open"] and "open_help" in s["layout"],
                            "the help bar")
    assert seen["help"]["minimized"] and seen["help"]["state"] == "connected"
    assert seen["bar"]["status"].startswith(f"客服 {STAFF} 已接通")
    assert seen["bar"]["message"] == f"客服 {STAFF}：请点击屏幕上的“开始办理”，然后按提示操作。"
    assert "open_help" in seen["targets"] and "help" in seen["targets"], "the page under the bar is not usable"
    assert "open_help" in seen["layout"]
    _x, _y, bar_w, bar_h = seen["bar"]["box"]
    assert bar_h >= 80 and bar_w == seen["window"][0]
    kiosk.shot("help-minimized")
    # pointing at the page under the bar: the ring on 办理业务, the bar says where to look
    bx, by, bw, bh = seen["layout"]["browse"]
    assert kiosk.visit("help_pointer", CALL, bx + bw / 2, by + bh / 2) is True
    seen = kiosk.look_until(lambda s: s["ring"]["showing"] and s["bar"]["pointing"], "the ring on the page")
    (cx, cy), (tx, ty) = seen["ring"]["center"], seen["targets"]["browse"]
    assert abs(cx - tx) <= 2 and abs(cy - ty) <= 2, "the ring is not on the button pointed at"
    kiosk.shot("help-minimized-pointer")

    # a touch on the bar opens the card again; 结束求助 ends the call
    kiosk.click_target(seen, "open_help")
    seen = kiosk.look_until(lambda s: s["overlay"]["open"] and not s["bar"]["shown"], "the card again")
    assert seen["overlay"]["mode"] == "connected" and len(seen["overlay"]["messages"]) == 2
    kiosk.click_target(seen, "end_help")
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "ended", "the call ended")
    assert seen["help"]["state"] == "ended" and "close_help" in seen["targets"]
    assert seen["overlay"]["text"].startswith("本次求助已结束")
    kiosk.shot("help-ended")
    kiosk.click_target(seen, "close_help")
    seen = kiosk.look_until(lambda s: s["help"] is None and not s["overlay"]["open"], "the card closed")
    assert seen["step"] == "home" and "help" in seen["targets"]
    assert not seen["overlay"]["messages"] and not seen["bar"]["shown"]


def test_the_connected_card_in_english(kiosk: HelpApp) -> None:
    kiosk.send(do="act", action="language")
    kiosk.wait_for(lambda e: e.get("event") == "view" and e.get("reason") == "language", "English")
    call_connected(kiosk, "call-ui-0002")
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "consent", "the consent question")
    assert seen["overlay"]["title"] == f"{STAFF} from the help desk is with you now."
    kiosk.shot("help-consent-en")
    kiosk.click_target(seen, "consent:no")
    kiosk.look_until(lambda s: s["help"]["consent"] == "refused", "the details kept hidden")
    assert kiosk.visit("help_message", "call-ui-0002", "Please touch Start and follow the steps.") is True
    assert kiosk.visit("help_pointer", "call-ui-0002", 0.5, 0.5) is True
    seen = kiosk.look_until(lambda s: s["overlay"]["messages"] and s["ring"]["showing"], "the message and the ring")
    assert seen["overlay"]["text"] == "Your personal details stay hidden from the member of staff."
    assert seen["overlay"]["from"] == f"{STAFF}:"
    assert_card_fits(seen)
    kiosk.shot("help-connected-en")
    # elder mode's larger type: the consent question asked again, then long messages; the card
    # stays inside the window (older messages scroll under the newest)
    kiosk.send(do="act", action="toggle_elder")
    assert kiosk.visit("ask_consent", "call-ui-0002") is True
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "consent" and s["help"]["consent"] == "asked",
                            "the consent question again")
    assert_card_fits(seen)
    kiosk.shot("help-consent-elder-en")
    kiosk.click_target(seen, "consent:no")
    long = ("Your application form is almost complete; please check the address and the phone number "
            "on the next page carefully before you touch Next.")
    for n in range(3):
        assert kiosk.visit("help_message", "call-ui-0002", f"{n + 2}. {long}") is True

    def newest_in_sight(s: dict[str, Any]) -> bool:
        messages, (_x, top, _w, h) = s["overlay"]["messages"], s["overlay"]["messages_view"]
        return bool(messages) and messages[0]["text"].startswith("4.") and top <= messages[0]["box"][1] \
            and messages[0]["box"][1] + messages[0]["box"][3] <= top + h
    # the newest is set smaller rather than cut; the older ones scroll under it
    seen = kiosk.look_until(lambda s: newest_in_sight(s) and not s["ring"]["showing"],
                            "the newest of three long messages wholly in sight in elder mode")
    assert len(seen["overlay"]["messages"]) == 3
    assert_card_fits(seen)
    kiosk.shot("help-connected-elder-en")
    kiosk.send(do="act", action="toggle_elder")
    # the help desk ends it; closing the card leaves the visit where it was
    assert kiosk.visit("help_ended", "call-ui-0002", "resolved") is True
    seen = kiosk.look_until(lambda s: s["overlay"]["mode"] == "ended" and not s["ring"]["showing"], "the call ended")
    kiosk.click_target(seen, "close_help")
    kiosk.look_until(lambda s: s["help"] is None, "the card closed")
