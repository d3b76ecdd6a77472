"""Nothing personal in the platform's logs: ID numbers masked, exception texts tamed.

The platform logs receipt numbers, item ids and terminal ids; it never logs names or
addresses, and an ID number only masked ("110101********1234": region and last four
kept). The log filter below is a second line of defence for whatever slips through.
"""
from __future__ import annotations

import logging
import traceback
from types import TracebackType

from govapi.masking import mask_id_number, mask_name, mask_numbers as mask_text

__all__ = ["mask_id_number", "mask_name", "mask_text", "safe_traceback", "MaskingFilter", "install_log_masking"]


def safe_traceback(exc: BaseException) -> str:
    """Frames (file, line, function) and the exception type only: source lines and locals stay out."""
    tb: TracebackType | None = exc.__traceback__
    frames = [f"  {f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
    return "\n".join(["Traceback (frames only):", *frames, f"{type(exc).__module__}.{type(exc).__name__}"])


class MaskingFilter(logging.Filter):
    """Attach to a handler: masks ID and phone numbers in every record, traceback included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = mask_text(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_text(safe_traceback(record.exc_info[1]))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add the masking filter to every handler of `logger` (root by default) that lacks one."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
