"""Fuzzing what a QR/barcode scanner brings in: the serial scanner's lines (AIM identifiers,
text encodings), the camera scanner's decoder on any picture, and the scanned code's text
as kiosk/codes.py judges it (appointment codes, e-licence and e-ID links and tokens).

Already fuzzed elsewhere, so not repeated here: the serial line framing
(tests/devices/test_qr_scanner_serial.py, LineAssembler) and parse_code on any text
(tests/test_codes.py). This module adds code-shaped text (links to hosts that look like the
trusted ones, tokens, appointment codes with near-miss digits), the canonical form of an
accepted code re-parsing to itself, the path from a line's bytes through the driver to the
check, and QR codes drawn by segno read back by zxing-cpp.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import segno
from fuzzing import fuzz
from hypothesis import event, example, given
from hypothesis import strategies as st

from devices.qr_scanner.camera_driver import decode_qr
from devices.qr_scanner.interface import CODE_SCANNED, CODE_UNREADABLE
from devices.qr_scanner.serial_driver import (
    AIM_SYMBOLOGIES,
    Line,
    LineAssembler,
    SerialQrScanner,
    _Session,
    decode_text,
    split_aim,
)
from kiosk.codes import KINDS, REASON_KEYS, CodeRules, InvalidCode, make_appointment_code, parse_code

RULES = CodeRules(
    e_licence_hosts=("zwfw.example.gov.cn", "*.zwfw.example.gov.cn", "xn--fiq228c.zwfw2.example.gov.cn"),
    e_id_hosts=("ctid.example.gov.cn",),
)
TRUSTED = ("zwfw.example.gov.cn", "gd.zwfw.example.gov.cn", "a.b.zwfw.example.gov.cn", "ctid.example.gov.cn",
           "xn--fiq228c.zwfw2.example.gov.cn")
# text encodings a technician may set for a scanner (all real text codecs)
ENCODINGS = ("utf-8", "gb18030", "gbk", "big5", "latin-1", "ascii", "utf-16", "shift_jis", "cp1252", "utf-8-sig")


def _trusted(host: str, entry: str) -> bool:
    """The matching rule written out again, independently of kiosk.codes.host_matches."""
    if entry.startswith("*."):
        return host.split(".")[-len(entry.split(".")) + 1:] == entry.split(".")[1:] and \
            len(host.split(".")) > len(entry.split(".")) - 1
    return host == entry


# -- code-shaped text -----------------------------------------------------------------------------------
def _mostly(right: list[str], wrong: list[str]) -> st.SearchStrategy[str]:
    """Right most of the time, so a link gets past one check to meet the next."""
    return st.sampled_from(right * (2 * len(wrong) // len(right) + 1) + wrong)


def _near(host: str) -> st.SearchStrategy[str]:
    """The host, or one that looks like it: another label, a trailing dot, Unicode look-alikes,
    upper case, an IP address, the suffix swapped, punycode."""
    return _mostly([host, host.upper()], [
        host + ".", "evil" + host, host + ".evil.com", "x." + host, host.replace(".", "-"),
        host.replace("o", "о"), host.replace("example", "examp1e"), "gov.cn", "127.0.0.1", "[::1]", "xn--" + host,
        host.replace("zwfw", "xn--zwfw"), "a..zwfw.example.gov.cn", "-a.zwfw.example.gov.cn", host + "\\@x.cn",
    ])


_URL_OK = list("/?#=&._-~:!$'()*+,;abcXYZ019") + ["%41", "%E5%BC%A0", "张三", "/a/b", "?x=1&y=2", "#/p"]
_URL_TAIL = st.lists(_mostly(_URL_OK, list("%@[] \\\"<>^`{|}") + ["%zz", "%E"]), max_size=20).map("".join)


@st.composite
def links(draw: st.DrawFn) -> str:
    scheme = draw(_mostly(["https", "HTTPS", "Https"], ["http", "javascript", "data", "file", "weixin", "alipays",
                                                        "mailto", "ftp", "https+x"]))
    slashes = draw(_mostly(["://"], [":/", ":", ":///", ":\\\\"]))
    userinfo = draw(_mostly([""], ["user@", "a:b@", "@"]))
    host = draw(st.sampled_from(TRUSTED).flatmap(_near))
    port = draw(_mostly(["", ":443"], [":8443", ":", ":0443", ":443:443", ":80"]))
    return f"{scheme}{slashes}{userinfo}{host}{port}{draw(_URL_TAIL)}"


_TOKEN_CHARS = _mostly(list("ABCxyz0189.-_+/"), ["=", "==", " ", "张", "\u200b", "%", ":"])


@st.composite
def tokens(draw: st.DrawFn) -> str:
    prefix = draw(_mostly(["DZZZ:", "CTID:"], ["dzzz:", "CTID", "DZZZ", "CTID::", " CTID:"]))
    body = "".join(draw(st.lists(_TOKEN_CHARS, min_size=draw(st.sampled_from([0, 8, 16])), max_size=60)))
    return prefix + body + draw(_mostly([""], ["=", "==", "==="]))


@st.composite
def appointment_like(draw: st.DrawFn) -> str:
    """An appointment code as the platform makes it, or with one near-miss edit."""
    number = draw(st.text("0123456789", min_size=12, max_size=12))
    code = make_appointment_code(number)
    edit = draw(_mostly(["none"], ["digit", "drop", "extra", "lower", "prefix"]))
    if edit == "digit":
        i = draw(st.integers(2, len(code) - 1))
        code = code[:i] + draw(st.sampled_from("0123456789Xx")) + code[i + 1:]
    elif edit == "drop":
        code = code[:-1]
    elif edit == "extra":
        code += draw(st.sampled_from("0X9"))
    elif edit == "lower":
        code = code.lower()
    elif edit == "prefix":
        code = draw(st.sampled_from(["Y", "YYY", "ZZ", ""])) + code[2:]
    return code


code_texts = st.one_of(links(), tokens(), appointment_like(), st.text(max_size=60))


@fuzz(300)
@given(code_texts, st.none() | st.sets(st.sampled_from(KINDS), min_size=1))
def test_code_shaped_text_is_accepted_canonically_or_refused_with_a_known_reason(text: str,
                                                                              expect: set[str] | None) -> None:
    try:
        code = parse_code(text, RULES, expect)
    except InvalidCode as exc:
        assert exc.reason in REASON_KEYS
        event(f"refused: {exc.reason}")
        return
    event(f"accepted: {code.kind} {code.scheme}")
    assert code.kind in KINDS and (expect is None or code.kind in expect)
    assert code.value.isascii() and code.value.isprintable()
    if code.scheme == "url":
        assert code.value.startswith(f"https://{code.host}/") or code.value == f"https://{code.host}/" \
            or code.value.startswith(f"https://{code.host}?") or code.value.startswith(f"https://{code.host}#")
        assert any(_trusted(code.host, entry) for entry in RULES.e_licence_hosts + RULES.e_id_hosts)
        again = parse_code(code.value, RULES)  # the canonical link is itself a valid code, unchanged
        assert (again.kind, again.value, again.host) == (code.kind, code.value, code.host)
    elif code.scheme == "token":
        again = parse_code(code.prefix + code.value, RULES)
        assert (again.kind, again.value) == (code.kind, code.value)
        assert code.value not in repr(code) and code.value not in code.masked()
    else:
        assert parse_code(code.value, RULES).value == code.value


@fuzz(200)
@given(st.sampled_from(TRUSTED).flatmap(_near), st.sampled_from(["", ":443"]), _URL_TAIL.filter(
    lambda t: t[:1] in ("", "/", "?", "#")))
def test_a_link_is_accepted_only_on_a_host_the_rules_trust(host: str, port: str, tail: str) -> None:
    """Look-alike hosts in otherwise well-formed links, checked against the matching rule
    written out independently (_trusted): whole labels only, no Unicode, no IP addresses."""
    try:
        code = parse_code(f"https://{host}{port}{tail}", RULES)
    except InvalidCode as exc:
        event(f"refused: {exc.reason}")
        return
    event("accepted")
    assert any(_trusted(code.host, entry) for entry in RULES.e_licence_hosts + RULES.e_id_hosts), code.host
    assert code.host == host.lower()


@fuzz(100)
@given(st.text("0123456789", min_size=12, max_size=12))
def test_every_appointment_code_made_is_read_back(number: str) -> None:
    code = make_appointment_code(number)
    assert parse_code(code, RULES, {"appointment"}).value == code
    assert parse_code(f"  {code} ", RULES).value == code


# -- the serial scanner's lines ---------------------------------------------------------------------
@functools.cache
def _scanner(encoding: str, fallback: str, aim_id: bool) -> SerialQrScanner:
    scanner = SerialQrScanner("qr", port="fuzz://scanner", encoding=encoding, fallback_encoding=fallback,
                              aim_id=aim_id, duplicate_window_s=0)
    scanner.arm()
    return scanner


def _session() -> _Session:
    return _Session(port=None, assembler=LineAssembler(b"\r", 1024, 0.3))


line_bytes = st.one_of(
    st.binary(min_size=1, max_size=80),
    st.tuples(st.sampled_from([b"]Q1", b"]C0", b"]d2", b"]", b"]Q", b"]\x00\x01", b""]),
              code_texts.map(lambda t: t.encode("utf-8", "surrogatepass"))).map(b"".join),
    code_texts.map(lambda t: t.encode("gb18030", "replace")),
)


@fuzz(200)
@given(line_bytes, st.sampled_from(ENCODINGS), st.sampled_from(("",) + ENCODINGS), st.booleans())
def test_any_line_from_a_serial_scanner_becomes_a_code_event_or_an_unreadable_one(raw: bytes, encoding: str,
                                                                                  fallback: str, aim_id: bool) -> None:
    """A whole line as the framing hands it over, through the driver to the kiosk's check: one
    event, code_scanned (whose text parse_code judges) or code_unreadable; no exception."""
    scanner = _scanner(encoding, fallback, aim_id)
    events: list[Any] = []
    unsubscribe = scanner.subscribe(events.append)
    try:
        scanner._take(_session(), Line(raw), 0.0)
    finally:
        unsubscribe()
    kinds = [e.kind for e in events if e.kind in (CODE_SCANNED, CODE_UNREADABLE)]
    assert len(kinds) == 1
    if kinds[0] == CODE_SCANNED:
        (scanned,) = [e for e in events if e.kind == CODE_SCANNED]
        assert isinstance(scanned.data["text"], str)
        try:
            parse_code(scanned.data["text"], RULES)
        except InvalidCode as exc:
            event(f"scanned, refused: {exc.reason}")
        else:
            event("scanned, accepted")
    else:
        event("unreadable")


@example(b"abc\\", "punycode")
@example(b"xn--a", "idna")
@fuzz(50)
@given(st.binary(max_size=20), st.sampled_from(["punycode", "idna", "utf-7"]))
def test_decode_text_with_any_text_codec_gives_text_or_none(raw: bytes, encoding: str) -> None:
    """punycode and idna raise plain UnicodeError, not UnicodeDecodeError: still None (undecodable),
    never an exception that ends the scanner's reader thread."""
    text = decode_text(raw, encoding, fallback=encoding)
    assert text is None or isinstance(text, str)


@pytest.mark.parametrize("encoding", ["hex", "base64", "rot13", "zlib", "bz2", "uu", "quopri"])
@pytest.mark.parametrize("setting", ["encoding", "fallback_encoding"])
def test_the_scanner_settings_refuse_codecs_that_are_not_text_encodings(setting: str, encoding: str) -> None:
    """Such a codec would raise LookupError on every scanned code in the reader thread (the
    scanner reported lost): refused when the config loads, naming what is wrong."""
    with pytest.raises(ValueError, match="not a text encoding"):
        SerialQrScanner.Params(port="fuzz://scanner", **{setting: encoding})


@pytest.mark.parametrize("encoding", ENCODINGS + ("punycode", "idna", "utf-7"))
def test_the_scanner_settings_take_text_encodings(encoding: str) -> None:
    assert SerialQrScanner.Params(port="fuzz://scanner", encoding=encoding, fallback_encoding=encoding).encoding


@fuzz(200)
@given(st.binary(max_size=40))
def test_aim_identifiers_split_off_or_leave_the_line_alone(raw: bytes) -> None:
    symbology, rest = split_aim(raw)
    assert symbology in set(AIM_SYMBOLOGIES.values()) | {"unknown"}
    assert rest == raw or (raw[:1] == b"]" and rest == raw[3:])


# -- the camera scanner's decoder ---------------------------------------------------------------------
_QR_TEXT = st.one_of(
    appointment_like(), tokens(),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=80),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=20),
)


@fuzz(40)
@given(_QR_TEXT, st.sampled_from("LMQH"), st.integers(2, 6), st.booleans())
def test_qr_codes_drawn_by_segno_are_read_back_by_the_camera_decoder(text: str, error: str, scale: int,
                                                                     mirrored: bool) -> None:
    qr = segno.make_qr(text, error=error, boost_error=False)
    dark = np.pad(np.array(qr.matrix, dtype=np.uint8), 4)  # 1 = dark module, with the quiet zone
    image = np.kron(255 - 255 * dark, np.ones((scale, scale), dtype=np.uint8)).astype(np.uint8)
    if mirrored:
        image = np.ascontiguousarray(image[:, ::-1])
    found = decode_qr(image, mirrored)
    assert [r.text for r in found] == [text]


@fuzz(40)
@given(st.integers(1, 120), st.integers(1, 120), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_the_camera_decoder_takes_any_picture(width: int, height: int, seed: int, colour: bool,
                                              blocky: bool) -> None:
    """Noise, blocks and odd sizes, grey or colour: a list, never a crash of the native decoder."""
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if colour else (height, width)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    if blocky:
        image = np.where(image > 127, 255, 0).astype(np.uint8)
    found = decode_qr(image)
    assert isinstance(found, list)
