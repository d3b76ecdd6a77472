"""One citizen's visit: who they are, what they chose, answered and scanned. Wiped at the end."""
from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kiosk import privacy

_SECRET_ATTRS = ("name", "id_number", "address", "english_name", "chinese_name")

SCAN_MEDIA_TYPES = ("image/jpeg", "image/png", "application/pdf")  # what the platform takes
# The platform's default request limit (max_body_bytes): a larger scan would only be refused
# after the citizen left, so it is refused here, while they can still scan again.
MAX_SCAN_BYTES = 1024 * 1024
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n", "application/pdf": b"%PDF-"}


class ScanError(ValueError):
    """A scan the terminal will not attach (type, size or content); the message says which."""


@dataclass(eq=False)
class Scan:
    """One scanned paper material of this visit. The bytes are the citizen's document: they live
    in a bytearray of the session's own, so the wipe can overwrite them (a `bytes` cannot be)."""

    media_type: str
    data: bytearray

    @classmethod
    def of(cls, media_type: str, data: bytes | bytearray) -> Scan:
        """A checked copy: one of SCAN_MEDIA_TYPES, not empty, at most MAX_SCAN_BYTES, and
        starting like its type (the platform checks the same and would refuse it later)."""
        if media_type not in SCAN_MEDIA_TYPES:
            raise ScanError(f"a scan of type {media_type!r} cannot be sent; the platform takes "
                            f"{', '.join(SCAN_MEDIA_TYPES)}")
        if not data:
            raise ScanError("the scan is empty: scan the page again")
        if len(data) > MAX_SCAN_BYTES:
            raise ScanError(f"the scan is {len(data)} bytes, more than the platform accepts ({MAX_SCAN_BYTES}): "
                            "scan at a lower resolution or JPEG quality")
        if not bytes(data[:8]).startswith(_MAGIC[media_type]):
            raise ScanError(f"the scan's bytes are not {media_type} (its first bytes say otherwise): "
                            "check what the scanner produced")
        return cls(media_type, bytearray(data))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def reference(self) -> str:
        """How the application names it once uploaded (PUT /v1/scans/{sha256})."""
        return f"scan:{self.sha256}"

    def wipe(self) -> None:
        """Overwrite the bytes in place, then drop them (rebinding, not resizing: a buffer still
        viewed elsewhere cannot be resized, but it can be overwritten)."""
        self.data[:] = bytes(len(self.data))
        self.data = bytearray()

    def __repr__(self) -> str:  # never the content
        return f"Scan({self.media_type}, {len(self.data)} bytes)"


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
    scans: dict[str, Scan] = field(default_factory=dict)  # material id -> its scan (materials step)
    promises: set[str] = field(default_factory=set)  # materials promised for later (告知承诺)
    notice_accepted: bool = False
    _typed: set[str] = field(default_factory=set, repr=False)  # answers masked in the log (see set_answer)

    def set_answer(self, key: str, value: str, *, personal: bool = True) -> None:
        """Keep one answer of the form. A personal one (anything but a choice from a list: a
        typed address, a phone number) has no shape the log filter knows, so it is masked as a
        secret until the item is dropped."""
        self.answers[key] = value
        if personal and value:
            privacy.register_secret(value)
            self._typed.add(value)

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
        self.citizen_token = None
        self.licences.clear()
        self.face_check = None
        self.drop_item()

    def drop_item(self) -> None:
        """Forget the chosen item and everything given for it (the citizen chose another)."""
        self.service_id = None
        privacy.forget_secret(*(self._typed - set(self._secrets())))  # the card's own stay masked
        self._typed.clear()
        for key in list(self.answers):
            self.answers[key] = ""
        self.answers.clear()
        for scan in self.scans.values():
            scan.wipe()
        self.scans.clear()
        self.promises.clear()
        self.notice_accepted = False

    @property
    def is_empty(self) -> bool:
        return (self.identity is None and not self.answers and self.service_id is None
                and self.citizen_token is None and not self.licences and self.face_check is None
                and not self.scans and not self.promises)

    def __repr__(self) -> str:  # never show personal data, even in a debugger or traceback
        return f"Session(visit_id={self.visit_id[:8]}, identified={self.identity is not None})"
