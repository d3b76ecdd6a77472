"""read-id: read one ID card through the reader's SAM and say what the card holds.

For a technician at the terminal: proves the reader, its cable and its SAM work end to
end with a real card, and shows the card's data (masked by default; `--json` prints it
in full for a machine or a support ticket the holder agreed to).

The JSON mapping lives here rather than on IdentityCard: it is this command's output
contract (key names, nulls, the photo flag that depends on the configured decoder),
while the model already has `as_dict()` for the platform.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import time
from typing import Any

from devices.base import DeviceDisconnected, DeviceError, DeviceProtocolError, DeviceTimeout
from devices.idcard import protocol as p
from devices.idcard.driver import SamSerialReader
from devices.idcard.identity import CardDataError, IdentityCard, InvalidIdNumber, mask_id_number, validate_id_number
from devices.idcard.photo import PhotoDecoderUnavailable, load_photo_decoder
from provisioning.console import EXIT_OK, Failure, card_wait_seconds, guarded, masked_summary, write

NAME = "read-id"
SUMMARY = "read one ID card and print what it holds (masked, or --json)"
EXAMPLE = "python -m provisioning read-id --port /dev/ttyUSB0 --timeout 10 --json"

EXIT_NO_CARD = 2  # also argparse's code for a bad argument
EXIT_DEVICE = 3
EXIT_CARD_UNREADABLE = 4

ANSWER_TIMEOUT_S = 1.0  # the SAM's deadline for one answer (the driver's default)
POLL_S = 0.1  # between "is there a card?" attempts while waiting

SUMMARY_KEYS = (
    "card_type", "name", "name_en", "gender", "gender_code", "nation", "nation_code", "birth_date",
    "address", "id_number", "issuer", "valid_from", "valid_to", "pass_number", "issue_count",
    "nationality", "id_number_valid", "photo_available",
)
CARD_TYPE_NAMES = {
    "resident": "居民身份证 / resident ID card",
    "hmt_permit": "港澳台居民居住证 / Hong Kong, Macau, Taiwan residence permit",
    "foreign_2017": "外国人永久居留身份证 (2017) / foreigner's permanent residence card, 2017",
    "foreign_2023": "外国人永久居留身份证 (2023) / foreigner's permanent residence card, 2023",
}
# 2017 foreigner card: 3 Latin letters (country) + 12 digits; its check character's
# algorithm is not published, so only the form is checked (source: the National
# Immigration Administration's 2023 machine-readable rules for the new card).
_FOREIGN_2017_NUMBER = re.compile(r"[A-Z]{3}[0-9]{12}")
# SW3 codes that are about the card in the field, not the reader: retried while waiting
_CARD_RETRY_SW3 = {p.SW3_READ_FAILED, p.SW3_SELECT_FAILED, 0x47}
_CARD_FINAL_SW3 = {p.SW3_UNKNOWN_CARD_TYPE, p.SW3_NO_SUCH_ITEM, 0x31, 0x32, 0x33, 0x37}


# -- the card as this command prints it --------------------------------------------------------
def id_number_valid(card: IdentityCard) -> bool:
    """Whether the number passes the checks its card type has (the same rules as
    IdentityCard.validity_problem, plus the 2017 foreigner card's form)."""
    if card.card_type == "foreign_2017":
        return bool(_FOREIGN_2017_NUMBER.fullmatch(card.id_number))
    gender = card.gender_code if card.card_type in ("resident", "hmt_permit") else None
    try:
        validate_id_number(card.id_number, card.birth_date, gender)
    except InvalidIdNumber:
        return False
    return True


def card_summary(card: IdentityCard) -> dict[str, Any]:
    """The JSON form of a card: exactly SUMMARY_KEYS; null where the card type has no
    such field or the card leaves it blank; dates YYYY-MM-DD (valid_to may be 长期)."""

    def text(value: str) -> str | None:
        return value or None

    def date(value: _dt.date | str | None) -> str | None:
        return value.isoformat() if isinstance(value, _dt.date) else (value or None)

    return {
        "card_type": card.card_type,
        "name": text(card.name),
        "name_en": text(card.english_name),  # a 2023 card's two name fields, already joined
        "gender": text(card.gender),
        "gender_code": text(card.gender_code),
        "nation": text(card.nation),
        "nation_code": text(card.nation_code),
        "birth_date": date(card.birth_date),
        "address": text(card.address),
        "id_number": text(card.id_number),
        "issuer": text(card.issuer or card.issuer_code),  # the 2017 foreigner card has only a code
        "valid_from": date(card.valid_from),
        "valid_to": date(card.valid_to),
        "pass_number": text(card.pass_number),
        "issue_count": text(card.issue_count),
        "nationality": text(card.nationality_code),  # as on the card (ISO 3166-1 alpha-3)
        "id_number_valid": id_number_valid(card),
        "photo_available": card.photo_bmp is not None,
    }


def mask_name(name: str) -> str:
    """First character kept, the rest starred: 张三 -> 张*."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def masked_lines(card: IdentityCard, port: str) -> list[str]:
    """A readable summary with the holder's name, number, birth day and address masked."""
    s = card_summary(card)
    birth = f"{s['birth_date'][:4]}-**-**" if s["birth_date"] else None
    rows: list[tuple[str, str | None]] = [
        ("card type", f"{card.card_type} ({CARD_TYPE_NAMES[card.card_type]})"),
        ("name", mask_name(card.name) or None),
        ("name (en)", mask_name(card.english_name) or None),
        ("gender", f"{s['gender']} ({s['gender_code']})" if s["gender_code"] else None),
        ("nation", f"{s['nation']} ({s['nation_code']})" if s["nation_code"] else None),
        ("birth date", birth),
        ("address", card.address[:6] + "…" if card.address else None),
        ("newer address", "on the card (not shown)" if card.appended_address else None),
        ("ID number", (mask_id_number(card.id_number) + ("  (check OK)" if s["id_number_valid"] else "  (FAILS its check)"))
         if card.id_number else None),
        ("issuer", s["issuer"]),
        ("valid", f"{s['valid_from'] or '?'} to {s['valid_to'] or '?'}" if s["valid_from"] or s["valid_to"] else None),
        ("pass number", mask_id_number(card.pass_number) or None),
        ("issue count", s["issue_count"]),
        ("nationality", s["nationality"]),
        ("photo", "decoded (102x126 BMP)" if s["photo_available"]
         else "not decoded: no photo decoder given (--photo-decoder)" if card.photo_note == "unavailable"
         else f"not decoded: {card.photo_note}"),
    ]
    return masked_summary(f"card read on {port}", rows)


# -- talking to the reader --------------------------------------------------------------------
def _os_reason(exc: BaseException) -> str:
    """The operating system's words for a port error ("No such file or directory"),
    dug out of the driver's wrapped exception."""
    seen: BaseException | None = exc
    while seen is not None:  # the innermost "[Errno N] words" is the OS's own
        found = re.findall(r"\[Errno \d+\] ([^:;'()]+)", str(seen))
        if found:
            return found[-1].strip()
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def _device_failure(exc: DeviceError, port: str, baud: int, opening: bool) -> Failure:
    networked = port.startswith(("socket://", "rfc2217://"))
    if isinstance(exc, DeviceDisconnected):
        check = ("the address and that the serial-device server is powered and reachable" if networked
                 else "the port name (ls /dev/serial/by-id/) and that the reader is plugged in")
        if opening:
            return Failure(EXIT_DEVICE, f"cannot open {port} ({_os_reason(exc)}): check {check}")
        return Failure(EXIT_DEVICE, f"lost the reader on {port} during the read ({_os_reason(exc)}): "
                                    "check the cable and the reader's power")
    if isinstance(exc, DeviceTimeout):
        return Failure(EXIT_DEVICE, f"no answer from the SAM module on {port} within {ANSWER_TIMEOUT_S:.1f} s: "
                                    "check the cable and that the reader is powered")
    if isinstance(exc, DeviceProtocolError):
        return Failure(EXIT_DEVICE, f"the device on {port} does not answer in the SAM protocol "
                                    f"(noise or damaged frames): check that it runs at {baud} baud, "
                                    "the cable, and that this port is the ID-card reader")
    if isinstance(exc, p.SamStatusError):
        if isinstance(exc, p.SamSelfTestFailed):
            hint = "the reader needs service"
        elif isinstance(exc, p.SamCommandError):
            hint = "commands arrive damaged: check the cable and the baud rate"
        elif exc.sw3 in (0x23, 0x66):
            hint = "the SAM is not authorised: contact the reader's vendor"
        else:
            hint = "power-cycle the reader; if it persists it needs service"
        return Failure(EXIT_DEVICE, f"the SAM module on {port} reports 0x{exc.sw3:02X} "
                                    f"({p.describe_sw3(exc.sw3)}): {hint}")
    return Failure(EXIT_DEVICE, f"the reader on {port} failed: {exc}")


def _card_failure(exc: Exception, port: str) -> Failure:
    if isinstance(exc, p.UnknownCardType):
        why = "it is not a second-generation ID card or residence permit the SAM knows"
    elif isinstance(exc, CardDataError):
        why = f"its data cannot be decoded ({exc})"
    else:
        sw3 = getattr(exc, "sw3", 0)
        why = f"0x{sw3:02X}, {p.describe_sw3(sw3)}"
    return Failure(EXIT_CARD_UNREADABLE, f"a card is on the reader at {port} but could not be read ({why}): "
                                         "hold it still and flat on the reader and try again; "
                                         "if it persists, the card may be damaged")


def wait_and_read(reader: SamSerialReader, timeout: float, port: str, baud: int) -> IdentityCard:
    """Read the card, waiting up to `timeout` seconds for one to be placed; Failure if not."""
    deadline = time.monotonic() + timeout
    card_trouble: Exception | None = None
    while True:
        try:
            return reader.read_card()
        except p.NoCardError:
            pass
        except CardDataError as exc:
            raise _card_failure(exc, port) from None
        except p.SamStatusError as exc:
            if exc.sw3 in _CARD_FINAL_SW3:
                raise _card_failure(exc, port) from None
            if exc.sw3 not in _CARD_RETRY_SW3:
                raise _device_failure(exc, port, baud, opening=False) from None
            card_trouble = exc  # the card moved, or RF trouble: try again while there is time
        except DeviceError as exc:
            raise _device_failure(exc, port, baud, opening=False) from None
        left = deadline - time.monotonic()
        if left <= 0:
            if card_trouble is not None:
                raise _card_failure(card_trouble, port)
            raise Failure(EXIT_NO_CARD, f"no card on the reader at {port} within {timeout:g} s: "
                                        "place the card flat on the reader's marked area and run again")
        time.sleep(min(POLL_S, left))


# -- the command ---------------------------------------------------------------------------------
def _baud(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: a baud rate is positive (SAM modules use 115200)")
    return value


def _decoder(text: str) -> str:
    try:
        load_photo_decoder(text)
    except PhotoDecoderUnavailable as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: Any) -> None:
    """Add the read-id subcommand to `python -m provisioning`."""
    parser = subparsers.add_parser(
        NAME,
        help=SUMMARY,
        description="Open the ID-card reader, wait for a card, read it once through the SAM "
        "(GA/T 467) and print what it holds. Personal data is masked unless --json is given.",
        epilog=f"""examples:
  {EXAMPLE}
  python -m provisioning read-id --port /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A1B2C3D4-if00-port0
  python -m provisioning read-id --port socket://192.0.2.10:4001 --photo-decoder /opt/vendor/libwlt.so

JSON keys: {", ".join(SUMMARY_KEYS)}
  null where the card type has no such field or the card leaves it blank;
  dates YYYY-MM-DD, valid_to may be 长期; nationality is the code on the card.

exit codes:
  0  card read
  2  no card within --timeout (or a bad argument)
  3  device fault: port missing, no answer, not the SAM protocol, SAM error
  4  a card is there but cannot be read (moved, damaged, not an ID card)
  1  internal error (run with --verbose and report it)""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", required=True,
                        help="the reader's serial port or pyserial URL: /dev/ttyUSB0, /dev/serial/by-id/..., "
                        "socket://HOST:PORT for a reader behind a serial-device server")
    parser.add_argument("--baud", type=_baud, default=115200, help="line speed (default 115200, as SAM modules use)")
    parser.add_argument("--timeout", type=card_wait_seconds, default=5.0, metavar="SECONDS",
                        help="how long to wait for a card to be placed (default 5; 0 = only look once)")
    parser.add_argument("--json", action="store_true",
                        help="print the card's data in full as JSON (keys below) instead of a masked summary")
    parser.add_argument("--photo-decoder", type=_decoder, default="", metavar="SPEC",
                        help="decode the card photo: the vendor's WLT library path, or 'emulator' for the "
                        "emulator's test cards (default none: photo_available is false)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also log the driver's steps on stderr (ID numbers masked)")
    parser.set_defaults(run=run)


@guarded(NAME)
def run(args: argparse.Namespace) -> int:
    """Read one card; print it; return the exit code (see the epilog in register())."""
    reader = SamSerialReader("read-id", port=args.port, baudrate=args.baud, timeout_s=ANSWER_TIMEOUT_S,
                             photo_decoder=args.photo_decoder)
    try:
        reader.open()
    except DeviceError as exc:
        raise _device_failure(exc, args.port, args.baud, opening=True) from None
    try:
        card = wait_and_read(reader, args.timeout, args.port, args.baud)
    finally:
        reader.close()
    try:
        if args.json:
            write(json.dumps(card_summary(card), ensure_ascii=False, indent=2) + "\n")
        else:
            write("\n".join(masked_lines(card, args.port)) + "\n")
    finally:
        card.wipe()
    return EXIT_OK
