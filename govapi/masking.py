"""How personal data is shown where it must not be read in full: logs, screens, help desk.

One rule for the terminal and the platform alike (the API's masked display names follow
it too): an ID number keeps its region and last four characters, a mobile number its
first three and last four, a name its first character (the surname of a Chinese name).
Plain functions, no dependencies: every layer may use them.
"""
from __future__ import annotations

import re

_ID18 = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])\d{15}(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def mask_id_number(number: str) -> str:
    """Region and last four kept, "110101********1234": enough to tell two people apart."""
    if not number:
        return ""
    if len(number) >= 14:
        return number[:6] + "*" * (len(number) - 10) + number[-4:]
    if len(number) > 4:
        return "*" * (len(number) - 4) + number[-4:]
    return "*" * len(number)


def mask_name(name: str) -> str:
    """The surname and a star per remaining character: "张*", "欧阳**"."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def mask_phone(number: str) -> str:
    return number[:3] + "****" + number[-4:] if len(number) == 11 else "*" * len(number)


def mask_numbers(text: str) -> str:
    """Mask every ID number and mobile number found in free text."""
    text = _ID18.sub(lambda m: mask_id_number(m.group(0)), text)
    text = _ID15.sub(lambda m: mask_id_number(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
