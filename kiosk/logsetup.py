"""Logging for the terminal: console and a rotating file, both behind the privacy filter."""
from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from kiosk.privacy import PrivacyFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "INFO", file: Path | None = None, console: bool = True) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        # ours from an earlier call, and a plain stderr handler a library's import-time
        # logging.basicConfig() left (python-escpos does): it has no privacy filter, and
        # printed every line twice
        if getattr(handler, "_kiosk", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            file, maxBytes=5_000_000, backupCount=5, encoding="utf-8"))
    for handler in handlers:
        handler._kiosk = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(PrivacyFilter())
        root.addHandler(handler)
    root.setLevel(level)
