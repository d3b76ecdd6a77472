"""One place that decides how personal data is hidden: in logs, on the help desk, in bundles.

Patterns catch what has a shape (ID numbers, mobile numbers); names and addresses have
none, so a visit registers them as secrets while it lasts and the log filter masks every
registered secret wherever it appears.
"""
from __future__ import annotations

import logging
import re
import threading

# The ID-number rule lives with the card model (devices are the bottom layer and mask
# their own reprs); everything above uses that one function through this module.
from devices.idcard.identity import mask_id_number

_ID18 = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def mask_name(value: str) -> str:
    """Keep the first character (the surname in a Chinese name)."""
    value = value.strip()
    return value[:1] + "*" * max(len(value) - 1, 1) if value else ""


def mask_phone(value: str) -> str:
    return value[:3] + "****" + value[-4:] if len(value) == 11 else "*" * len(value)


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
    text = _ID18.sub(lambda m: mask_id_number(m.group(0)), text)
    text = _ID15.sub(lambda m: mask_id_number(m.group(0)), text)
    return _PHONE.sub(lambda m: m.group(1) + "****" + m.group(3), text)


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
