"""Appointment codes (预约码), shared by the platform that issues them and the terminal that reads them.

A booking's number on the platform is "YY" + the booking day (YYYYMMDD) + a 6-digit serial
("YY20261127000042"). The code a citizen carries (a QR code on their phone, or on an SMS) is
shorter and self-checking: "YY" + the day without the century (YYMMDD) + the serial + an
ISO 7064 MOD 11-2 check character, the algorithm of the ID-card number ("0"-"9" or "X"):
"YY2611270000428". The check catches every single wrong digit and every swap of two
adjacent different digits, so a misread code is refused on the terminal before it is sent.
"""
from __future__ import annotations

PREFIX = "YY"
DIGITS = 12  # YYMMDD + a 6-digit serial
CHECK_CHARS = "0123456789X"
_CENTURY = "20"


def mod11_2_check(digits: str) -> str:
    """ISO 7064 MOD 11-2 check character ("0"-"9" or "X") of a string of decimal digits."""
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("MOD 11-2 needs one or more decimal digits")
    p = 0
    for c in digits:
        p = (p + int(c)) * 2 % 11
    return CHECK_CHARS[(12 - p) % 11]


def make_appointment_code(number: str, prefix: str = PREFIX) -> str:
    """prefix + the 12-digit appointment number + its check character."""
    if len(number) != DIGITS or not number.isascii() or not number.isdigit():
        raise ValueError(f"an appointment number is {DIGITS} decimal digits")
    return prefix + number + mod11_2_check(number)


def code_for_booking(booking_number: str) -> str:
    """The code a citizen carries for a booking number "YY" + YYYYMMDD + 6 digits."""
    digits = booking_number[len(PREFIX):]
    if not booking_number.startswith(PREFIX) or len(digits) != DIGITS + 2 or not digits.startswith(_CENTURY):
        raise ValueError(f"{booking_number!r} is not a booking number ({PREFIX} + YYYYMMDD + 6 digits)")
    return make_appointment_code(digits[2:])


def booking_for_code(code: str) -> str | None:
    """The booking number a well-formed code stands for, or None when it is not one."""
    body = code[len(PREFIX):]
    if (not code.startswith(PREFIX) or len(body) != DIGITS + 1 or not body[:-1].isascii()
            or not body[:-1].isdigit() or mod11_2_check(body[:-1]) != body[-1]):
        return None
    return PREFIX + _CENTURY + body[:-1]
