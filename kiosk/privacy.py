"""One place that decides how personal data is hidden: in logs, on the help desk, in bundles.

Patterns catch what has a shape (ID numbers, mobile numbers); names and addresses have
none, so a visit registers them as secrets while it lasts and the log filter masks every
registered secret wherever it appears.
"""
from __future__ import annotations

import logging
import threading

# The masking rules are shared with the platform (govapi/masking.py); this module adds the
# visit's registered secrets, which have no shape a pattern could find.
from govapi.masking import mask_id_number, mask_name, mask_numbers, mask_phone

__all__ = [
    "PrivacyFilter",
    "clear_secrets",
    "forget_secret",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "mask_text",
    "register_secret",
]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(*values: str) -> None:
    """Mask these exact strings in every log line until `forget_secret` (end of the visit)."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v.strip()) >= 2)


def forget_secret(*values: str) -> None:
    with _secrets_lock:
        _secrets.difference_update(values)


def clear_secrets() -> None:
    """Forget every registered secret (terminal shutdown, test isolation)."""
    with _secrets_lock:
        _secrets.clear()


def mask_text(text: str) -> str:
    """Mask every ID number, mobile number and registered secret in free text."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask_name(secret))
    return mask_numbers(text)


class PrivacyFilter(logging.Filter):
    """Attached to every log handler, so no module can log personal data in clear."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        return True
