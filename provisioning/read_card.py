"""read-card: read one social security card (社会保障卡) through PC/SC and say what it holds.

For a technician at the terminal: proves pcscd, the reader, its cable and the card
profiles work end to end with a real card, and shows the card's data (masked by
default; `--json` prints it in full for a machine or a support ticket the holder
agreed to). `--list` prints the readers pcscd sees, to fill `devices.<name>.reader`.

The reader is the kiosk's own driver (devices.smartcard.pcsc_driver.PcscReader) without
its monitor thread: this command asks for the card itself, once, while it waits.
The JSON mapping lives here: it is this command's output contract (the holder's
`as_dict()` keys, the photo described but never its bytes, the profile and validity).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from typing import Any

from devices.base import DeviceDisconnected, DeviceError, DeviceProtocolError
from devices.idcard.identity import VALIDITY_PROBLEMS
from devices.smartcard.apdu import CardDataError, CardStatusError, sw_meaning
from devices.smartcard.holder import SocialSecurityCard, mask_card_number
from devices.smartcard.interface import NoCardError
from devices.smartcard.pcsc_driver import DEFAULT_PROFILES, CardPulled, PcscReader, use_pcsc_socket
from devices.smartcard.profile import ProfileError, ProfileMismatch, known_profiles, load_profile
from govapi.masking import mask_id_number, mask_name
from provisioning.console import EXIT_OK, Failure, card_wait_seconds, guarded, masked_summary, write

NAME = "read-card"
SUMMARY = "read one social security card (PC/SC) and print what it holds (masked, or --json)"
EXAMPLE = "python -m provisioning read-card --reader 'ACS ACR39U' --timeout 10 --json"

EXIT_NO_CARD = 2  # also argparse's code for a bad argument
EXIT_DEVICE = 3
EXIT_CARD_UNREADABLE = 4

POLL_S = 0.1  # between "is there a card?" attempts while waiting
SYSTEM_SOCKET = "/run/pcscd/pcscd.comm"
CARD_TITLE = "社会保障卡 / social security card"
PHOTO_FORMATS = (  # leading bytes -> format name (the standard's card photo is JPEG)
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
)


# -- the card as this command prints it --------------------------------------------------------
def photo_info(card: SocialSecurityCard) -> dict[str, Any]:
    """What the card's photo is, never the photo: {"present", "bytes", "format"}."""
    photo = card.photo_bmp or b""
    fmt = next((name for magic, name in PHOTO_FORMATS if photo.startswith(magic)), "unknown") if photo else None
    return {"present": bool(photo), "bytes": len(photo), "format": fmt}


def card_summary(card: SocialSecurityCard, reader: str) -> dict[str, Any]:
    """The JSON form of a card: the holder's as_dict() keys in full, the photo described
    (not its bytes), the reader, the validity problem's code (null when valid) and
    "masked": false."""
    out = card.as_dict()
    out["photo"] = photo_info(card)
    problem = card.validity_problem()
    out.update(reader=reader, validity=problem, masked=False)
    return out


def masked_lines(card: SocialSecurityCard, reader: str, photo_read: bool) -> list[str]:
    """A readable summary: the ID number (region and last four), name (surname), card
    number and card identifier (last four) and birth day masked; the card's own dates,
    issuing place and the photo's size in clear."""
    photo = photo_info(card)
    problem = card.validity_problem()
    identifier = card.card_identifier
    rows: list[tuple[str, str | None]] = [
        ("card type", f"{card.card_type} ({CARD_TITLE})"),
        ("profile", card.profile),
        ("name", mask_name(card.name) or None),
        ("gender", f"{card.gender} ({card.gender_code})" if card.gender_code else None),
        ("nation", f"{card.nation} ({card.nation_code})" if card.nation_code else None),
        ("birth date", f"{card.birth_date.year}-**-**" if card.birth_date else None),
        ("birthplace", "on the card (not shown)" if card.birthplace_code else None),
        ("ID number", mask_id_number(card.id_number) or None),
        ("card number", mask_card_number(card.card_number) or None),
        ("card id", (identifier[:6] + mask_card_number(identifier[6:])) if len(identifier) > 6
         else mask_card_number(identifier) or None),
        ("spec version", card.spec_version or None),
        ("issuer", card.issuer or card.issuer_code or None),
        ("issued", card.valid_from.isoformat() if card.valid_from else None),
        ("valid to", card.valid_to.isoformat() if card.valid_to else None),
        ("photo", f"read ({photo['bytes']} bytes, {photo['format'].upper()})" if photo["present"]
         else "none on the card" if photo_read else "not read (--no-photo)"),
        ("validity", "valid" if problem is None else f"NOT VALID: {VALIDITY_PROBLEMS.get(problem, problem)} ({problem})"),
    ]
    return masked_summary(f"card read in {reader} with profile {card.profile}", rows)


# -- talking to pcscd and the reader -------------------------------------------------------------
def _socket_where(pcsc_socket: str) -> str:
    return pcsc_socket or os.environ.get("PCSCLITE_CSOCK_NAME") or SYSTEM_SOCKET


def pcscd_view() -> tuple[str | None, list[str]]:
    """(None, the readers pcscd lists) when pcscd answers; (why not, []) when it does not."""
    try:
        from smartcard import scard
    except ImportError as exc:  # pyscard missing, or libpcsclite not installed
        return (f"pyscard cannot load ({exc}): install the Debian package libpcsclite1 and run scripts/setup.sh",
                [])
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return f"{scard.SCardGetErrorMessage(hr)} (0x{hr & 0xFFFFFFFF:08X})", []
    try:
        hr, readers = scard.SCardListReaders(context, [])
    finally:
        scard.SCardReleaseContext(context)
    if hr == scard.SCARD_S_SUCCESS:
        return None, list(readers)
    if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
        return None, []
    return f"{scard.SCardGetErrorMessage(hr)} (0x{hr & 0xFFFFFFFF:08X})", []


def _device_failure(exc: DeviceError | None, hint: str, pcsc_socket: str) -> Failure:
    """What is wrong with pcscd or the reader, in words, with what to check."""
    problem, readers = pcscd_view()
    if problem is not None and problem.startswith("pyscard"):
        return Failure(EXIT_DEVICE, problem)
    if problem is not None:
        return Failure(EXIT_DEVICE, f"the PC/SC service pcscd is not running or not reachable at "
                                    f"{_socket_where(pcsc_socket)} ({problem}): check `systemctl status pcscd` "
                                    "(start it with systemctl start pcscd.socket) and that the package pcscd "
                                    "is installed")
    if not readers:
        return Failure(EXIT_DEVICE, "pcscd runs but lists no smart-card reader: check the reader's USB cable "
                                    "(does lsusb list it?), that its driver is installed (package libccid) and "
                                    "`systemctl status pcscd`")
    if hint and not any(r.startswith(hint) for r in readers):
        return Failure(EXIT_DEVICE, f"no smart-card reader named {hint!r} is connected; pcscd lists: "
                                    f"{', '.join(readers)}: check the reader's USB cable, or give --reader one "
                                    "of these (or its beginning)")
    detail = f" ({exc})" if exc is not None else ""
    return Failure(EXIT_DEVICE, f"lost the smart-card reader or pcscd{detail}: check the reader's USB cable and "
                                f"`systemctl status pcscd`; pcscd lists: {', '.join(readers)}")


def _card_failure(exc: Exception, reader: PcscReader, where: str) -> Failure:
    if isinstance(exc, ProfileMismatch):
        tried = ", ".join(p.id for p in reader.profiles)
        why = (f"this is not a social security card (no profile fits: tried {tried}; the card answered "
               f"{exc.sw:04X}, {sw_meaning(exc.sw)}): insert the holder's social security card, chip first and "
               "chip side up; if it is one, its issuer needs a profile of its own")
    elif isinstance(exc, CardStatusError) and exc.blocked:
        why = (f"the card's social security application is blocked (locked) (the card answered {exc.sw:04X}, "
               f"{sw_meaning(exc.sw)}): the holder must have it unblocked at a social security service centre")
    elif isinstance(exc, CardStatusError):
        why = (f"the card refused to be read ({exc}): take it out and insert it again; if it persists, the card "
               "is faulty and the holder should have it checked at a service centre")
    elif isinstance(exc, CardDataError):
        why = (f"a record on the card is damaged or truncated ({exc}): take it out and insert it again; if it "
               "persists, the card's data is damaged and the holder should have it replaced")
    elif isinstance(exc, (CardPulled, NoCardError)):
        why = ("the card was pulled out during the read: insert it again and leave it in until the command "
               "has finished")
    else:  # DeviceProtocolError: not even a status word, or the connection to the card failed
        why = (f"the card's answers are malformed ({exc}): check the card is inserted the right way round, "
               "chip first; if it persists, try another card to tell a faulty card from a faulty reader")
    return Failure(EXIT_CARD_UNREADABLE, f"a card is in {where} but could not be read: {why}")


def wait_and_read(reader: PcscReader, timeout: float, where: str) -> SocialSecurityCard:
    """Read the card, waiting up to `timeout` seconds for one to be inserted; Failure if not."""
    deadline = time.monotonic() + timeout
    card_trouble: Exception | None = None
    asked = False
    while True:
        try:
            return reader.read_card()
        except NoCardError:
            pass
        except CardPulled as exc:
            card_trouble = exc  # it may come back while there is time
        except (CardStatusError, CardDataError) as exc:  # ProfileMismatch is a CardStatusError
            raise _card_failure(exc, reader, where) from None
        except DeviceDisconnected:
            raise
        except DeviceProtocolError as exc:
            raise _card_failure(exc, reader, where) from None
        left = deadline - time.monotonic()
        if left <= 0:
            if card_trouble is not None:
                raise _card_failure(card_trouble, reader, where)
            raise Failure(EXIT_NO_CARD, f"no card in {where} within {timeout:g} s: insert the social security "
                                        "card, chip first and chip side up, and run again")
        if not asked and card_trouble is None:
            print(f"{NAME}: insert a social security card into {where} (waiting up to {timeout:g} s)",
                  file=sys.stderr, flush=True)
            asked = True
        time.sleep(min(POLL_S, left))


# -- the command ---------------------------------------------------------------------------------
def card_profiles() -> list[str]:
    """The profiles a card can be read with (those naming an ID number and a name; a base
    profile such as social_security_common holds only the issuer's data)."""
    usable = []
    for name in known_profiles():
        try:
            fields = {f.name for f in load_profile(name).fields}
        except ProfileError:
            continue
        if {"id_number", "name"} <= fields:
            usable.append(name)
    return usable


def _profile(text: str) -> str:
    usable = card_profiles()
    if text not in usable:
        raise argparse.ArgumentTypeError(f"no card profile {text!r}; known: {', '.join(usable)}")
    return text


def register(subparsers: Any) -> None:
    """Add the read-card subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME,
        help=SUMMARY,
        description="Connect to pcscd, find the smart-card reader, wait for a social security card "
        "(社会保障卡), read it once with the card profiles in order and print what it holds. "
        "Personal data is masked unless --json is given.",
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning read-card --list
  python -m provisioning read-card --profile social_security_1 --no-photo

JSON keys: the holder's fields
{textwrap.fill(", ".join(SocialSecurityCard().as_dict()), 88, initial_indent="  ", subsequent_indent="  ")},
  photo as {{"present", "bytes", "format"}} (never the picture itself), reader,
  validity (null, or expired, not_yet_valid, bad_id_number, ...) and masked (false).
  An expired or otherwise invalid card is still read (exit 0); validity says why
  the kiosk would refuse it.

exit codes:
  0  card read (valid or not: see validity), or --list printed the readers
  2  no card within --timeout (or a bad argument)
  3  device fault: pcscd not running, no reader, the named reader not connected
  4  a card is there but cannot be read (not a social security card, blocked,
     damaged record, pulled out during the read)
  1  internal error (run with --verbose and report it)""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--reader", default="", metavar="NAME",
                        help="the reader's PC/SC name or its beginning, as --list prints it "
                        "(default: the first reader pcscd lists)")
    parser.add_argument("--list", action="store_true",
                        help="print the readers pcscd lists, one a line, and exit (for devices.<name>.reader)")
    parser.add_argument("--profile", dest="profiles", type=_profile, nargs="+", action="extend", metavar="PROFILE",
                        help=f"card profiles to try, in order (default: {' '.join(DEFAULT_PROFILES)})")
    parser.add_argument("--timeout", type=card_wait_seconds, default=10.0, metavar="SECONDS",
                        help="how long to wait for a card to be inserted (default 10; 0 = only look once)")
    parser.add_argument("--json", action="store_true",
                        help="print the card's data in full as JSON (keys below) instead of a masked summary; "
                        "with --list, {\"readers\": [...]}")
    parser.add_argument("--no-photo", action="store_true",
                        help="do not read the photo file (quicker; the photo shows as not read)")
    parser.add_argument("--pcsc-socket", default="", metavar="PATH",
                        help=f"pcscd's socket when it is not the system one ({SYSTEM_SOCKET})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also log the driver's steps on stderr (numbers masked)")
    parser.set_defaults(run=run)


def _list(args: argparse.Namespace) -> int:
    problem, readers = pcscd_view()
    if problem is not None or not readers:
        raise _device_failure(None, "", args.pcsc_socket)
    if args.json:
        write(json.dumps({"readers": readers}, ensure_ascii=False, indent=2) + "\n")
    else:
        write("".join(f"{name}\n" for name in readers))
    return EXIT_OK


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    """Read one card (or list the readers); print it; return the exit code (see register())."""
    photo_read = not args.no_photo
    use_pcsc_socket(args.pcsc_socket)
    if args.list:
        return _list(args)
    reader = PcscReader(NAME, reader=args.reader, profiles=args.profiles or DEFAULT_PROFILES,
                        pcsc_socket=args.pcsc_socket, read_photo=photo_read, monitor=False)
    try:
        reader.open()
    except DeviceError as exc:
        raise _device_failure(exc, args.reader, args.pcsc_socket) from None
    try:
        where = next((r for r in reader.readers() if r.startswith(args.reader)), args.reader or "the reader")
        try:
            card = wait_and_read(reader, args.timeout, where)
        except DeviceDisconnected as exc:
            raise _device_failure(exc, args.reader, args.pcsc_socket) from None
    finally:
        reader.close()
    try:
        if args.json:
            write(json.dumps(card_summary(card, where), ensure_ascii=False, indent=2) + "\n")
        else:
            write("\n".join(masked_lines(card, where, photo_read)) + "\n")
    finally:
        card.wipe()
    return EXIT_OK
