"""Start the terminal: config -> devices -> visit -> screens (or headless).

    python main.py                      full screen kiosk
    python main.py --window 1280x800    in a window (development)
    python main.py --emulated           every device on its emulator
    python main.py --headless --scenario tests/scenarios/resident_visit.toml
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Government-service self-service terminal (高效办成一件事)")
    p.add_argument("--config", help="the terminal's own TOML file (default: $KIOSK_CONFIG or "
                                    "/etc/kiosk/terminal.toml when it exists)")
    p.add_argument("--window", metavar="WxH", help="run in a window of this size instead of full screen")
    p.add_argument("--emulated", action="store_true", help="run every device on its emulator")
    p.add_argument("--headless", action="store_true", help="no window: the visit runs without screens")
    p.add_argument("--scenario", metavar="FILE", help="with --headless: play this scenario and exit")
    args = p.parse_args(argv)
    if args.scenario and not args.headless:
        p.error("--scenario needs --headless")
    if args.window:
        try:
            w, h = (int(x) for x in args.window.lower().split("x"))
            if w <= 0 or h <= 0:
                raise ValueError
        except ValueError:
            p.error(f"--window {args.window!r}: give the size as WIDTHxHEIGHT, e.g. 1280x800")
        args.size = (w, h)
    return args


def _make_speaker(cfg):  # type: ignore[no-untyped-def]
    if not cfg.voice.enabled:
        return None
    from voice import Speaker

    out = cfg.voice.output_dir or None
    return Speaker(enabled=True, voice=cfg.voice.voice, rate=cfg.voice.rate,
                   volume=cfg.voice.volume, output_dir=out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # OpenCV's own notes (e.g. about DNN backends) are not for a technician's console;
    # its errors still show. Must be set before cv2 is first imported.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from config import ConfigError, load_config
    from kiosk import watchdog

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    if args.emulated:
        for dev in cfg.devices.values():
            dev.emulate = True
    if getattr(args, "size", None):
        cfg.ui.fullscreen = False
        cfg.ui.width, cfg.ui.height = args.size

    from kiosk.logsetup import setup_logging

    data_dir = Path(cfg.terminal.data_dir)
    if not data_dir.is_absolute():
        data_dir = ROOT / data_dir
    setup_logging(cfg.logging.level, data_dir / cfg.logging.file, console=not args.scenario)
    # systemd's notification socket (deploy/systemd/kiosk.service), taken out of the
    # environment before any emulator or helper process could inherit it
    watchdog.get()

    if args.headless and args.scenario:
        from kiosk.scenario import Runner, Scenario, ScenarioError

        try:
            scenario = Scenario.load(args.scenario)
        except ScenarioError as exc:
            print(f"kiosk: {exc}", file=sys.stderr)
            return 2
        result = Runner(cfg, speaker=_make_speaker(cfg)).run(scenario)
        return 0 if result.passed else 1

    from kiosk.terminal import Terminal

    from kiosk.emulator_console import start_console

    if args.headless:
        # before anything starts: a stop request during start-up still ends in a clean stop
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    terminal = Terminal(cfg, speaker=_make_speaker(cfg))
    if args.headless:
        terminal.start()
        start_console(terminal.emulators)
        print("kiosk: running headless; Ctrl-C to stop", file=sys.stderr)
        watchdog.ready(watchdog.describe(terminal))
        # alive = this loop turns and the visit answers: ping after each tick returned
        step = min(1.0, watchdog.ping_period() or 1.0)
        next_tick = time.monotonic()
        while not stop.wait(step):
            if time.monotonic() >= next_tick:
                terminal.visit.tick()
                next_tick = time.monotonic() + 1.0 - step / 2
            watchdog.status(watchdog.describe(terminal))
            watchdog.ping()
        watchdog.stopping()
        terminal.stop()
        return 0

    os.environ.setdefault("KIVY_NO_ARGS", "1")
    # Kivy's own log handlers would bypass the privacy filter: leave logging to us.
    os.environ["KIVY_LOG_MODE"] = "PYTHON"
    from screens.app import run_app

    terminal.start()
    start_console(terminal.emulators)
    try:
        # READY=1 with the first attract frame; the UI thread's pings: screens/app.py
        run_app(terminal, lambda app: app.bind(
            on_first_frame=lambda _app: watchdog.ready(watchdog.describe(terminal))))
    finally:
        watchdog.stopping()
        terminal.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
