"""What every ID-card reader offers the kiosk, whatever its wire.

Events (DeviceEvent.kind, with DeviceEvent.data):

- ``card_placed``: a card came onto the reader and was read once.
  Accept the card only when there is no ``data["error"]``: then ``data["identity"]``
  is the IdentityCard, valid today. With ``error`` (bilingual text) there is a
  ``data["code"]``, a stable machine code:

  * the read failed: a SAM status code ("read_failed", "unknown_card_type",
    "select_failed", "sam_auth", ...), "bad_card_data" or "malformed_reply";
    there is no identity;
  * the card was read but is not valid today: "expired", "not_yet_valid",
    "bad_id_number", "id_birth_mismatch", "id_gender_mismatch"; the identity is
    included so the visit can tell the citizen why, and must wipe it.

  ``data["card_type"]`` is added whenever the type is known.
- ``card_removed``: the card left the reader (``data["reason"]`` is "removed", or
  "closed" when the reader was closed or lost with a card on it, so every
  card_placed is followed by exactly one card_removed).
- ``status_changed``: from devices.base.

Media state: PRESENT while a card is on the reader, ABSENT otherwise.
"""
from __future__ import annotations

import abc

from devices.base import Device
from devices.idcard.identity import IdentityCard

CARD_PLACED = "card_placed"
CARD_REMOVED = "card_removed"


class IdCardReader(Device):
    """An ID-card reader: reads the card on it and reports placements and removals."""

    device_class = "idcard"

    @abc.abstractmethod
    def read_card(self) -> IdentityCard:
        """Find, select and read the card on the reader now.

        Raises a DeviceError: NoCardError when no card is there, another SamStatusError
        for a card the SAM cannot read, DeviceTimeout/DeviceDisconnected/
        DeviceProtocolError for transport faults. Does not check validity dates.
        """
