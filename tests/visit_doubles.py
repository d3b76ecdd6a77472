"""Stand-ins for a visit's outside world in headless tests: a synthetic card holder and a
speaker that records what it was told to say."""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Card:
    """A synthetic ID-card holder (the number passes the check digit); wiped like a real one."""

    name: str = "王芳"
    id_number: str = "110101199003071220"
    address: str = "北京市东城区测试路2号"
    birth_date: datetime.date = datetime.date(1990, 3, 7)
    card_type: str = "resident"
    gender: str = "女"
    wiped: bool = False

    def validity_problem(self, _today: Any) -> None:
        return None

    def wipe(self) -> None:
        self.name = self.id_number = self.address = ""
        self.wiped = True


@dataclass
class Recorder:
    """A speaker: `said` holds text keys (or the text when none), `texts` what would be heard."""

    said: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def say(self, text: str, *, interrupt: bool = True, key: str | None = None) -> None:
        self.said.append(key or text)
        self.texts.append(text)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class AcceptingPlatform:
    """A platform that accepts every application and scan, and keeps the idempotency keys sent."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def submit_application(self, payload: dict[str, Any], key: str) -> dict[str, Any]:
        self.received.append(key)
        return {"receipt_number": f"R-{key}"}

    def put_scan(self, data: bytes, media_type: str) -> dict[str, Any]:
        return {"reference": "scan:x"}
