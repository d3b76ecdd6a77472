"""One citizen's visit: who they are, what they chose and answered. Wiped at the end."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kiosk import privacy

_SECRET_ATTRS = ("name", "id_number", "address", "english_name", "chinese_name")


@dataclass
class Session:
    visit_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    identity: Any = None  # an IdentityCard from a card reader
    service_id: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    citizen_token: Any = None  # the platform's short-lived token for this visit
    licences: list[dict[str, Any]] = field(default_factory=list)  # e-licences the citizen holds
    face_check: dict[str, Any] | None = None  # signed evidence of the face check (never the image)

    def set_identity(self, identity: Any) -> None:
        self.identity = identity
        privacy.register_secret(*self._secrets())

    def _secrets(self) -> list[str]:
        if self.identity is None:
            return []
        return [str(v) for a in _SECRET_ATTRS if (v := getattr(self.identity, a, None))]

    def wipe(self) -> None:
        """Forget everything personal; the identity object itself is overwritten too."""
        privacy.forget_secret(*self._secrets())
        if self.identity is not None and hasattr(self.identity, "wipe"):
            self.identity.wipe()
        self.identity = None
        for key in list(self.answers):
            self.answers[key] = ""
        self.answers.clear()
        self.service_id = None
        self.citizen_token = None
        self.licences.clear()
        self.face_check = None

    @property
    def is_empty(self) -> bool:
        return (self.identity is None and not self.answers and self.service_id is None
                and self.citizen_token is None and not self.licences and self.face_check is None)

    def __repr__(self) -> str:  # never show personal data, even in a debugger or traceback
        return f"Session(visit_id={self.visit_id[:8]}, identified={self.identity is not None})"
