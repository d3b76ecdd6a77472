"""Running one emulator on its own (`python -m devices.<class>.emulator`) for bench work.

Every emulator does the same around its own arguments: log to the terminal, end cleanly on
Ctrl-C and on a plain kill (the `finally` removes links and stops servers; a shell's
background job starts with SIGINT ignored, so the handlers are installed explicitly),
print where it listens, then take console commands (`emulator.command(line)`) from
standard input until `quit`, or serve until interrupted when standard input is closed.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_standalone(make: Callable[[], Any], first_lines: Callable[[Any, str], list[str]],
                   errors: tuple[type[BaseException], ...] = (ValueError, OSError)) -> int:
    """Build the emulator with `make`, start it, print `first_lines(emulator, address)`, then
    run its console; exit code 1 when it cannot start (the reason on standard error)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    emulator = None
    try:
        emulator = make()
        address = emulator.start()
    except errors as exc:
        if emulator is not None:
            emulator.stop()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    for line in first_lines(emulator, address):
        print(line, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() in ("quit", "exit"):
                break
            answer = emulator.command(line)
            if answer:
                print(answer, flush=True)
        else:  # stdin closed (started in the background): serve until interrupted
            print(f"serving {address}; Ctrl-C to stop", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
