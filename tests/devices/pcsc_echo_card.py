"""A tiny card engine for the pcscd bench tests: enough behaviour to see the wire work.

- 00 A4 .. (SELECT): 90 00;
- 00 EE P1 .. : sleep P1 * 10 ms, then 90 00 (a slow card);
- any other INS: echoes the command data with 90 00;
- `pull_after=N`: the APDU after the first N raises CardPulled (after `pull_delay_s`).

Built in the rig process by `PcscdRig.insert(slot, "tests.devices.pcsc_echo_card:EchoCard")`.
"""
from __future__ import annotations

import time

from devices.smartcard.vpcd_link import CardPulled

DEFAULT_ATR = "3B8880010000000000718100F9"  # any well-formed ATR does for vpcd


class EchoCard:
    def __init__(self, atr: str = DEFAULT_ATR, pull_after: int | None = None,
                 pull_delay_s: float = 0.0) -> None:
        self.atr = bytes.fromhex(atr)
        self.pull_after = pull_after
        self.pull_delay_s = pull_delay_s
        self.apdus = 0
        self.powered = False

    def power_on(self) -> None:
        self.powered = True

    def power_off(self) -> None:
        self.powered = False

    def reset(self) -> None:
        self.powered = True

    def respond(self, apdu: bytes) -> bytes:
        if self.pull_after is not None and self.apdus >= self.pull_after:
            time.sleep(self.pull_delay_s)
            raise CardPulled()
        self.apdus += 1
        ins = apdu[1]
        if ins == 0xA4:
            return b"\x90\x00"
        if ins == 0xEE:
            time.sleep(apdu[2] * 0.01)
            return b"\x90\x00"
        data = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        return data + b"\x90\x00"
