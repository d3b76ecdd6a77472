"""Shared by the camera tests: where the test face photos are, and a bounded wait.

The photos come from scripts/setup.sh (never committed); without them the camera tests
cannot run, and say how to get them instead of skipping silently.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from waiting import wait_until  # noqa: F401 - the tests import it from here

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / "var" / "testdata" / "faces"


def require_faces(*names: str) -> None:
    missing = [n for n in names if not (FACES / n).is_file()]
    if missing:
        pytest.fail(f"test face photos {', '.join(missing)} missing in {FACES}: run scripts/setup.sh",
                    pytrace=False)


