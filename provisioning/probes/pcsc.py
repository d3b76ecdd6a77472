"""Smart-card readers as pcscd lists them (pyscard), and which card profile reads a card in one.

pcscd not running is a Problem, never a crash. A card in a reader is only read with
`read_cards` (the kiosk's own PcscReader, photo skipped), and only the profile that read
it and the card's validity are reported: nothing personal.
"""
from __future__ import annotations

import os

from devices.base import DeviceError
from provisioning.probes import Finding, Problem, Results

SYSTEM_SOCKET = "/run/pcscd/pcscd.comm"


def _card_present(reader: str) -> bool | None:
    """Whether pcscd sees a card in `reader` now (None when it cannot say)."""
    from smartcard import scard

    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return None
    try:
        hr, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hr != scard.SCARD_S_SUCCESS:
            return None
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def _which_profile(reader: str, pcsc_socket: str) -> str:
    """The words for a card in `reader`: the profile that reads it, or why none does."""
    from devices.smartcard.apdu import CardDataError, CardStatusError
    from devices.smartcard.pcsc_driver import DEFAULT_PROFILES, PcscReader
    from devices.smartcard.profile import ProfileMismatch

    device = PcscReader("detect", reader=reader, profiles=list(DEFAULT_PROFILES), pcsc_socket=pcsc_socket,
                        read_photo=False, monitor=False)
    try:
        device.open()
        card = device.read_card()
    except ProfileMismatch:
        return (f"a card is in it, but no profile reads it (tried {', '.join(DEFAULT_PROFILES)}): not a social "
                "security card, or one whose province needs a profile of its own")
    except CardStatusError as exc:
        return f"a card is in it, but it refused to be read ({exc})"
    except (CardDataError, DeviceError) as exc:
        return f"a card is in it, but reading it failed ({exc})"
    finally:
        device.close()
    try:
        validity = card.validity_problem()
        return (f"a card is in it: read with profile {card.profile}"
                + (f" (the card is not valid: {validity})" if validity else "") + "; personal data not shown")
    finally:
        card.wipe()


def probe(pcsc_socket: str, read_cards: bool) -> Results:
    """Every reader pcscd lists, suggested as a [devices.smartcard] of the pcsc driver."""
    from devices.smartcard.pcsc_driver import use_pcsc_socket
    from provisioning.read_card import pcscd_view

    results = Results()
    where = pcsc_socket or os.environ.get("PCSCLITE_CSOCK_NAME") or SYSTEM_SOCKET
    use_pcsc_socket(pcsc_socket)
    problem, readers = pcscd_view()
    if problem is not None:
        if problem.startswith("pyscard"):
            results.problems.append(Problem("pcsc", "pyscard", problem))
        else:
            results.problems.append(Problem("pcsc", where, (
                f"pcscd is not running or not reachable at {where} ({problem}): install and start it "
                "(apt-get install pcscd libccid; systemctl start pcscd.socket), then run detect again")))
        return results
    if not readers:
        results.problems.append(Problem("pcsc", where, (
            "pcscd runs but lists no smart-card reader: check the reader's USB cable (does lsusb list it?) and "
            "its driver (apt-get install libccid)")))
        return results
    for name in readers:
        present = _card_present(name)
        if present and read_cards:
            card = _which_profile(name, pcsc_socket)
        elif present:
            card = "a card is in it (--read-cards says which card profile reads it)"
        else:
            card = "no card in it"
        params = {"reader": name}
        if pcsc_socket:
            params["pcsc_socket"] = pcsc_socket
        results.findings.append(Finding("pcsc", "smartcard", "pcsc", params, f"reader '{name}'",
                                        f"pcscd lists this smart-card reader; {card}"))
    return results
