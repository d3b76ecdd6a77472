"""A headless kiosk process that a fault test drives one scenario step at a time.

`python main.py --headless --scenario FILE` plays a whole visit at its own pace, so a test
cannot stop it at an exact point (the platform call held, the receipt half printed) and the
process ends with the visit. This one builds the same `Terminal` (through the scenario
`Runner`: every device emulated, the fleet agent and the outbox delivery running, logging
into the data folder behind the privacy filter, as main.py does) and then reads one JSON
scenario step per line on stdin, answering on stdout:

    driver: ready                    the terminal started
    driver: done N                   step N carried out
    driver: failed N: why            the terminal did not do what the step expected
    driver: error N: Type: message   the terminal raised (a bug: a button would have crashed the app)

plus the runner's own "screen ..." lines for every view. The word "stop" (or the end of
stdin) stops the terminal politely. A test kills it with SIGKILL wherever it likes.

Run as `python tests/faults/process_driver.py` with the terminal's config in KIOSK_CONFIG
and the environment (KIOSK__...), like main.py.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    from config import ConfigError, load_config
    from kiosk.logsetup import setup_logging
    from kiosk.scenario import Runner, ScenarioError, ScenarioFailed
    from kiosk.visit import InvalidTransition

    try:
        cfg = load_config()
    except ConfigError as exc:
        print(f"driver: config: {exc}", flush=True)
        return 2
    data_dir = Path(cfg.terminal.data_dir)
    setup_logging(cfg.logging.level, (data_dir if data_dir.is_absolute() else ROOT / data_dir) / cfg.logging.file,
                  console=False)
    runner = Runner(cfg, out=sys.stdout)
    runner.terminal.start()
    print("driver: ready", flush=True)
    n = 0
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            if line.strip() == "stop":
                break
            n += 1
            try:
                runner._do(n, json.loads(line))  # the runner's own step semantics
            except (ScenarioFailed, InvalidTransition, ScenarioError) as exc:
                print(f"driver: failed {n}: {exc}", flush=True)
            except Exception as exc:  # a product bug: report it and keep the terminal for the test
                traceback.print_exc()
                print(f"driver: error {n}: {type(exc).__name__}: {exc}", flush=True)
            else:
                print(f"driver: done {n}", flush=True)
    finally:
        runner.terminal.stop()
    print("driver: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
