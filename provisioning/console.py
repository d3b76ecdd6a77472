"""What every technician command shares: its failure type, UTF-8 output, the masked
summary layout and how the drivers' logs are kept quiet unless asked for."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable


class Failure(Exception):
    """Ends the command with an exit code and one line for the technician."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def write(text: str) -> None:
    """UTF-8 on stdout whatever the locale: JSON is UTF-8, and names are Chinese."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def masked_summary(title: str, rows: Iterable[tuple[str, object]]) -> list[str]:
    """A card's summary: a title, one aligned line per row that has a value, and the privacy note."""
    out = [title]
    out += [f"  {label:<14}{value}" for label, value in rows if value]
    out.append("personal data masked; --json prints it in full")
    return out


def set_up_logging(verbose: bool) -> None:
    """The drivers' steps on stderr with --verbose; otherwise nothing (not even warnings)."""
    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    elif not logging.getLogger().handlers:  # else the driver's warnings reach stderr via logging's last resort
        logging.getLogger().addHandler(logging.NullHandler())
