"""Run the kiosk app for one UI test: devices off, JSON lines out, commands in.

Started by tests/ui/conftest.py in its own process (Kivy allows one App per process
and keeps global state). Everything the test learns comes from stdout, one JSON
object per line:

  {"event": "ready", "font_path": ..., "targets": {...}, "regions": {...}, "window": [w, h]}
  {"event": "view", "step": ..., "reason": ..., "screen": ..., "warning": n|null,
   "overlay": bool, "language": ..., "targets": {action: [x, y]}, "regions": {...}}
  {"event": "screenshot", "name": ..., "path": ...}
  {"event": "key", "key": 27}
  {"event": "exit"}

`targets` and `regions` are window pixels from the top-left corner, as xdotool uses
them. Commands on stdin, one JSON object per line, stand for device threads and the
test's own needs:

  {"do": "card", "name": ..., "id_number": ..., "address": ...}   a card was read
  {"do": "card_failed"} | {"do": "card_removed"} | {"do": "reader_offline"}
  {"do": "shot", "name": ...}                                     take a screenshot
  {"do": "targets"}                                               report a view line now
  {"do": "submitter", "receipt": "..."}   applications are accepted with this receipt (null: none)
  {"do": "act", "action": ..., "args": [...]}  what a button would do (no pixels involved)
  {"do": "stats"}                  live widget count and VmRSS: {"event": "stats", ...}
  {"do": "texts"}                  report every label text of every screen: {"event": "texts"}
  {"do": "platform_catalogue"}     the reference platform's seeded catalogue (no server)
  {"do": "licences", "licences": [...]}     e-licences the platform would list for the citizen
  {"do": "home", "benefits": [...], "applications": [...]}   the platform's answers for the page
  {"do": "help_answered", "ticket": ..., "hotline": ...}     the help desk's answer
  {"do": "scan_attached", "material": ...}  the scanner took the page of a material
  {"do": "type", "text": ...}      type on the open on-screen keyboard, then touch 确定
  {"do": "press", "action": ...}   press the visible button with this action (as touch_targets names it)
  {"do": "quit"}                                                  stop the app

They are executed on this script's stdin thread, like device events would be.
End of stdin stops the app too, so a crashed test leaves no kiosk running.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def main() -> int:
    for name, value in DEFAULT_ENV.items():
        os.environ.setdefault(name, value)
    from config import load_config
    from kiosk.terminal import Terminal
    from kiosk.visit import Handout, Receipt

    terminal = Terminal(load_config())
    terminal.start()

    from screens.app import KioskApp, run_app

    def window_box(widget: Any) -> list[int]:
        from kivy.core.window import Window

        x, y = widget.to_window(widget.x, widget.y)
        return [int(x), int(Window.height - y - widget.height), int(widget.width), int(widget.height)]

    def regions(app: KioskApp) -> dict[str, Any]:
        title = app.screens["attract"].ids.title
        return {"attract_title": {"box": window_box(title), "text": title.text,
                                  "font_size": title.font_size, "bold": bool(title.bold)}}

    def view_line(app: KioskApp, view: Any, reason: str | None = None,
                  shown: tuple[str, bool] | None = None) -> None:
        screen, overlay = shown or (app.manager.current, bool(app.overlay and app.overlay.is_open))
        emit(event="view", step=view.step.value, reason=reason if reason is not None else view.reason,
             screen=screen, warning=view.warning_seconds, overlay=overlay, language=view.language,
             message=view.message_key, handout=view.handout.message_key if view.handout else None,
             sms=view.handout.sms if view.handout else None, voice_on=view.voice_on, elder=view.elder,
             help=view.help.state if view.help else None, editor=bool(app.editor and app.editor.is_open),
             picker=bool(app.picker and app.picker.is_open),
             targets=app.touch_targets(), regions=regions(app))

    def all_texts(app: KioskApp) -> list[str]:
        """Every non-empty text held by any label of any screen, shown or not."""
        tops = [app.frame, app.overlay, *app.screens.values()]
        return sorted({w.text for top in tops for w in top.walk(restrict=True)
                       if isinstance(getattr(w, "text", None), str) and w.text})

    def stats() -> dict[str, int]:
        """Live widgets and resident memory: they must not grow visit after visit."""
        import gc

        from kivy.uix.widget import Widget

        gc.collect()
        widgets = sum(1 for o in gc.get_objects() if isinstance(o, Widget))
        with open("/proc/self/status") as fh:
            rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        return {"widgets": widgets, "rss_kb": rss}

    def press(app: KioskApp, action: str) -> None:
        from screens.widgets import widget_for_action

        widget = widget_for_action(app, action)
        if widget is None:
            print(f"drive_app: no visible button {action!r}; there are {sorted(app.touch_targets())}",
                  file=sys.stderr)
            return
        widget.dispatch("on_press")
        widget.dispatch("on_release")

    def prepare(app: KioskApp) -> None:
        from kivy.clock import Clock

        def on_first_frame(_app: KioskApp) -> None:
            from kivy.core.window import Window

            Window.bind(on_key_down=lambda _w, key, *_a: emit(event="key", key=key))
            # the layout settles during the first frames; report positions after that
            Clock.schedule_once(lambda _dt: emit(
                event="ready", font_path=app.font_path, targets=app.touch_targets(),
                regions=regions(app), window=[int(Window.width), int(Window.height)]), 0.2)

        def on_view_shown(_app: KioskApp, view: Any) -> None:
            # what is shown now; button positions are known after the next layout pass
            shown = (app.manager.current, bool(app.overlay and app.overlay.is_open))
            Clock.schedule_once(lambda _dt: view_line(app, view, shown=shown), 0.1)

        app.bind(on_first_frame=on_first_frame, on_view_shown=on_view_shown,
                 on_screenshot=lambda _app, name, path: emit(event="screenshot", name=name, path=path))
        threading.Thread(target=commands, args=(app,), name="test-commands", daemon=True).start()

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
                elif do == "targets":
                    Clock.schedule_once(lambda _dt: view_line(app, visit.view(), "targets"))
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
                    Clock.schedule_once(lambda _dt, a=cmd["action"]: press(app, a))
                elif do == "quit":
                    break
                else:
                    print(f"drive_app: unknown command {line!r}", file=sys.stderr)
            except Exception as exc:  # a test bug; say so and go on
                print(f"drive_app: command {line!r} failed: {exc!r}", file=sys.stderr)
        app.stop_requested.set()

    try:
        run_app(terminal, prepare)
    finally:
        terminal.stop()
        emit(event="exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
