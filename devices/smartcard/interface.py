"""What every smart-card reader offers the kiosk, whatever its stack.

Events are the ID-card reader's (devices.idcard.interface), so a visit starts the same
way from either card:

- ``card_placed``: a card was inserted and read once. ``data["identity"]`` (a
  SocialSecurityCard) when it was read; with ``data["error"]`` (for a technician) and
  ``data["code"]`` otherwise:

  * "not_social_security": no profile of the reader fits the card (another card, or the
    application is missing);
  * "card_blocked": the card's application is blocked or locked;
  * "card_pulled": the card left the reader while it was being read;
  * "read_failed": the card refused a command; "bad_card_data": the answer did not fit
    the profile (truncated record, wrong TLV length, bad BCD or text);
    "malformed_reply": not even a status word;
  * a validity problem ("expired", "not_yet_valid", "bad_id_number", ...), with the
    identity, so the visit can say why and wipe it.

  ``data["card_type"]`` is "social_security" once a card was recognised.
- ``card_removed``: the card left the reader (``data["reason"]``: "removed"; "pulled" right
  after a card_placed whose card left mid-read; "closed" when the reader was closed or
  lost with a card in it); every card_placed is followed by exactly one card_removed.
- ``status_changed``: from devices.base. Media PRESENT while a card is in, ABSENT otherwise.
"""
from __future__ import annotations

import abc

from devices.base import Device, DeviceError
from devices.idcard.interface import CARD_PLACED, CARD_REMOVED
from devices.smartcard.holder import SocialSecurityCard

__all__ = ["CARD_PLACED", "CARD_REMOVED", "NoCardError", "SmartCardReader"]


class NoCardError(DeviceError):
    """No card is in the reader."""


class SmartCardReader(Device):
    """A smart-card reader with card profiles: reports insertions and reads the holder."""

    device_class = "smartcard"

    @abc.abstractmethod
    def read_card(self) -> SocialSecurityCard:
        """Read the card in the reader now with the reader's profiles, in order.

        Raises NoCardError when the reader is empty; a CardStatusError, CardDataError or
        DeviceProtocolError (devices.smartcard.apdu) for a card that cannot be read;
        DeviceDisconnected when the reader or the PC/SC service is gone. Does not check
        validity dates.
        """
