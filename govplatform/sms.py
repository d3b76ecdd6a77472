"""Text messages to citizens, and the one seam where a real SMS service plugs in: `SmsGateway`.

The reference platform has no SMS service. Its gateway (`StoringSmsGateway`, setting
`sms_gateway = "store"`) only records the message in `sms_messages` and logs a masked
line, so tests and demos can see what would have been sent. A deployment writes a subclass
whose `send` calls its provider and then `record`s the outcome, and names it in the
setting (`GOVPLATFORM_SMS_GATEWAY=package.module:Class`); nothing else changes.

Either way the database never holds a mobile number in clear: `record` keeps it masked
(for people) and as a keyed hash (to find every message sent to one number). The text is
built here from the receipt number, the item title and the progress link only: never a
name or an ID number, because a text message may be read by whoever holds the phone.
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.orm import Session

from govapi.masking import mask_phone
from govplatform import models as m
from govplatform.security import keyed_hash
from govplatform.settings import Settings, SettingsError

log = logging.getLogger("govplatform.sms")


class SmsGatewayError(Exception):
    """The provider did not take the message; the message says why (no personal data)."""


@dataclass(frozen=True)
class OutgoingSms:
    """One message about to leave. `repr` masks the number so it can pass through logs."""

    message_id: str
    receipt_number: str
    terminal_id: str
    phone: str
    text: str

    def __repr__(self) -> str:
        return f"OutgoingSms(id={self.message_id!r}, receipt={self.receipt_number!r}, to={mask_phone(self.phone)!r})"


def progress_text(title_zh: str, receipt_number: str, public_url: str) -> str:
    """The message sent after a submission: what, which number, where to follow it."""
    return (f"【政务服务】您申请的“{title_zh}”已受理，受理编号 {receipt_number}。"
            f"办理进度请访问 {public_url.rstrip('/')}/progress/{receipt_number} 查询。本短信由系统自动发送，请勿回复。")


class SmsGateway(ABC):
    """Sends a text message. `send` runs inside the request's database transaction: raising
    SmsGatewayError rolls everything back, so a retry with the same Idempotency-Key tries again."""

    name: ClassVar[str] = "abstract"

    def __init__(self, settings: Settings, secret: bytes) -> None:
        self.settings = settings
        self.secret = secret

    @abstractmethod
    def send(self, session: Session, message: OutgoingSms) -> None:
        """Hand the message to the provider, then `record` it."""

    def record(self, session: Session, message: OutgoingSms, status: str) -> m.SmsMessage:
        """Keep the message for the record: number masked and keyed-hashed, never in clear."""
        row = m.SmsMessage(message_id=message.message_id, receipt_number=message.receipt_number,
                           terminal_id=message.terminal_id, phone_masked=mask_phone(message.phone),
                           phone_hash=keyed_hash(self.secret, "phone", message.phone), text=message.text,
                           gateway=self.name, status=status, created_at=m.utcnow())
        session.add(row)
        return row


class StoringSmsGateway(SmsGateway):
    """The reference gateway: nothing leaves the platform; the message is stored and logged masked."""

    name: ClassVar[str] = "store"

    def send(self, session: Session, message: OutgoingSms) -> None:
        self.record(session, message, "stored")
        log.info("text message %s about %s to %s stored (reference gateway: not sent)", message.message_id,
                 message.receipt_number, mask_phone(message.phone))


def load_gateway(settings: Settings, secret: bytes) -> SmsGateway:
    """The gateway the setting `sms_gateway` names; a bad name stops the platform at start."""
    spec = settings.sms_gateway
    if spec == StoringSmsGateway.name:
        return StoringSmsGateway(settings, secret)
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"GOVPLATFORM_SMS_GATEWAY={spec}: cannot load it ({type(exc).__name__}: {exc}); "
                            "use 'store' or 'package.module:Class'") from None
    if not (isinstance(cls, type) and issubclass(cls, SmsGateway)):
        raise SettingsError(f"GOVPLATFORM_SMS_GATEWAY={spec} is not a subclass of govplatform.sms.SmsGateway")
    return cls(settings, secret)
