"""The soak: visits back to back on one long-lived emulated terminal against the reference platform.

Starts the reference platform (`python -m govplatform serve`, loopback, a temporary data dir)
behind a fault-injecting proxy, enrols a terminal, and plays varied visits on ONE terminal with
every device on its emulator (kiosk/soak.py says which visits). Prints at intervals and at the
end: visits per minute, resident memory, open file descriptors, threads, child processes and
every error with its visit number and kind; at the end the memory growth per 1,000 visits
(linear fit after the warm-up), errors per 1,000 visits, and whether every accepted
application reached the platform exactly once.

    .venv/bin/python bench/soak.py --visits 2000 --seed 7
    .venv/bin/python bench/soak.py --minutes 30 --face-share 1

Exit code 0 without errors, 1 with errors (figures are printed either way). Runs as root on
this machine (the A4 printer's emulator needs cupsd and cups-pdf as root).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "soak"))  # the platform side, shared with tests/soak
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from soak_platform import reference_platform

from config import load_config
from kiosk.logsetup import setup_logging
from kiosk.soak import enrol, load_plans, run_soak, write_config

TERMINAL = "T-SOAK-0001"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, help="stop after this many visits")
    parser.add_argument("--minutes", type=float, help="stop after this many minutes")
    parser.add_argument("--seed", type=int, default=1, help="the random generator's seed (default 1)")
    parser.add_argument("--face-share", type=float, default=1.0,
                        help="share of item visits that make the face check (default 1: all)")
    parser.add_argument("--face-attempts", type=int, default=3, help="face.attempts of the terminal (default 3)")
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--warmup", type=int, help="visits before the memory fit starts (default 10%%, at most 100)")
    parser.add_argument("--scenarios", type=Path, help="a folder of extra scenario files to mix in each round")
    parser.add_argument("--keep", type=Path, help="keep the platform's and terminal's data in this folder")
    args = parser.parse_args()
    if not args.visits and not args.minutes:
        parser.error("give --visits N or --minutes M: the soak stops by itself")

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        with reference_platform(base / "platform") as platform:
            config_file = write_config(base / "terminal", TERMINAL, platform.url, face_attempts=args.face_attempts)
            enrol(config_file, platform.enrolment_code(TERMINAL))
            cfg = load_config(config_file, environ={})
            setup_logging(cfg.logging.level, Path(cfg.terminal.data_dir) / cfg.logging.file, console=False)
            extra = load_plans(args.scenarios) if args.scenarios else []
            print(f"platform {platform.server.url} behind the fault proxy {platform.url}; terminal data in "
                  f"{base / 'terminal'}", flush=True)
            _, report = run_soak(cfg, platform, visits=args.visits, minutes=args.minutes, seed=args.seed,
                                 face_share=args.face_share, report_every_s=args.report_every,
                                 warmup=args.warmup, extra=extra)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
