"""The rules a form value must follow, by field type: one copy for the platform (which refuses
a bad value) and the terminal (which asks the citizen to correct it while they are there)."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

FIELD_TYPES = ("text", "date", "phone", "choice", "number")
PHONE = re.compile(r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$")
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
MAX_VALUE_CHARS = 1000  # what the platform stores for one answer


def value_problem(kind: str, value: str, choices: Iterable[str] = ()) -> str | None:
    """Why `value` is not a well-formed value of a field of type `kind`, or None (an empty value
    is the caller's business: required or not)."""
    if len(value) > MAX_VALUE_CHARS:
        return f"must be at most {MAX_VALUE_CHARS} characters"
    if kind == "date":
        try:
            if not DATE.match(value):
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            return "must be a date YYYY-MM-DD"
    elif kind == "phone" and not PHONE.match(value):
        return "must be a mobile number (11 digits, 1[3-9]...) or a landline with area code"
    elif kind == "number" and not NUMBER.match(value):
        return "must be a number"
    elif kind == "choice":
        allowed = list(choices)
        if value not in allowed:
            return f"must be one of: {', '.join(allowed)}"
    return None
