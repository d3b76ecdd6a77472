"""Shared test set-up: every test starts with no personal data registered for masking."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Kivy reads these at import time; set before any test module imports it.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")


@pytest.fixture(autouse=True)
def _no_leftover_secrets():
    from kiosk import privacy

    privacy.clear_secrets()
    yield
    privacy.clear_secrets()
