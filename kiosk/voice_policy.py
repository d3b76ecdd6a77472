"""How loud the terminal speaks now: softer in the quiet hours (a lobby or a park at night)."""
from __future__ import annotations

import datetime


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def volume_at(now: datetime.time, volume: float, quiet_hours: str, quiet_volume: float) -> float:
    """`quiet_volume` inside `quiet_hours` ("22:00-07:00", may cross midnight), else `volume`."""
    if not quiet_hours:
        return volume
    start, end = (_minutes(part) for part in quiet_hours.split("-"))
    at = now.hour * 60 + now.minute
    quiet = start <= at < end if start <= end else (at >= start or at < end)
    return min(volume, quiet_volume) if quiet else volume
