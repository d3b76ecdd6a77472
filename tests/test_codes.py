"""kiosk.codes: every accepted kind, every way of refusing, and the appointment check digit."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.idcard.identity import id_check_digit
from kiosk.codes import (
    DEFAULT_RULES,
    REASON_KEYS,
    CodeRules,
    InvalidCode,
    ScannedCode,
    make_appointment_code,
    mod11_2_check,
    parse_code,
)

RULES = CodeRules(
    e_licence_hosts=("zwfw.example.gov.cn", "*.zwfw.example.gov.cn", "xn--fiq228c.zwfw2.example.gov.cn"),
    e_id_hosts=("ctid.example.gov.cn",),
)
E_ID_TOKEN = "eyJhbGciOiJTTTIifQabc_DEF-123+/xyz=="
LICENCE_ID = "1.2.156.3005.2.11100000000013338W.11MB0174370.001.I"


# -- accepted --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, value, scheme", [
    ("https://zwfw.example.gov.cn/dzzz/v?id=42", "e_licence", "https://zwfw.example.gov.cn/dzzz/v?id=42", "url"),
    ("https://zwfw.example.gov.cn", "e_licence", "https://zwfw.example.gov.cn/", "url"),
    ("HTTPS://ZWFW.Example.gov.cn:443/a#/b", "e_licence", "https://zwfw.example.gov.cn/a#/b", "url"),
    ("https://gd.zwfw.example.gov.cn/x", "e_licence", "https://gd.zwfw.example.gov.cn/x", "url"),
    ("https://a.b.zwfw.example.gov.cn/x", "e_licence", "https://a.b.zwfw.example.gov.cn/x", "url"),
    ("https://zwfw.example.gov.cn/v?name=张三", "e_licence",
     "https://zwfw.example.gov.cn/v?name=%E5%BC%A0%E4%B8%89", "url"),
    ("https://xn--fiq228c.zwfw2.example.gov.cn/x", "e_licence", "https://xn--fiq228c.zwfw2.example.gov.cn/x", "url"),
    ("https://ctid.example.gov.cn/verify?t=abc", "e_id", "https://ctid.example.gov.cn/verify?t=abc", "url"),
    ("DZZZ:" + LICENCE_ID, "e_licence", LICENCE_ID, "token"),
    ("DZZZ:abcd-123_XY", "e_licence", "abcd-123_XY", "token"),
    ("CTID:" + E_ID_TOKEN, "e_id", E_ID_TOKEN, "token"),
    ("CTID:" + "A" * 1024, "e_id", "A" * 1024, "token"),
    ("YY2606010000426", "appointment", "YY2606010000426", "appointment"),
    ("  YY2606010000426 ", "appointment", "YY2606010000426", "appointment"),
])
def test_accepted_codes(text: str, kind: str, value: str, scheme: str) -> None:
    code = parse_code(text, RULES)
    assert (code.kind, code.value, code.scheme) == (kind, value, scheme)


def test_host_and_prefix_are_reported() -> None:
    assert parse_code("https://gd.zwfw.example.gov.cn/x", RULES).host == "gd.zwfw.example.gov.cn"
    assert parse_code("CTID:" + E_ID_TOKEN, RULES).prefix == "CTID:"


def test_repr_and_masked_never_show_a_token() -> None:
    code = parse_code("CTID:" + E_ID_TOKEN, RULES)
    assert E_ID_TOKEN not in repr(code) and E_ID_TOKEN not in code.masked()
    link = parse_code("https://zwfw.example.gov.cn/v?secret=s3cr3tvalue", RULES)
    assert "s3cr3tvalue" not in repr(link)
    appointment = parse_code("YY2606010000426", RULES)
    assert appointment.masked() == "YY26*******0426"


# -- refused -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, reason", [
    ("", "code.empty"),
    ("   ", "code.empty"),
    ("x" * 2049, "code.too_long"),
    ("YY2606010000426\x00", "code.bad_characters"),
    ("YY260601\n0000426", "code.bad_characters"),
    ("https://zwfw.example.gov.cn/\u202egnp.exe", "code.bad_characters"),  # right-to-left override
    ("https://zwfw\u200b.example.gov.cn/", "code.bad_characters"),  # zero-width space
    ("CTID:\ue000" + "A" * 20, "code.bad_characters"),  # private use
    ("hello", "code.unknown_kind"),
    ("中文内容的二维码", "code.unknown_kind"),
    ("weixin://wxpay/bizpayurl?pr=abc", "code.unknown_kind"),
    ("alipays://platformapi/startapp", "code.unknown_kind"),
    ("zwfw.example.gov.cn/dzzz", "code.unknown_kind"),
    ("ctid:" + "A" * 20, "code.unknown_kind"),  # prefixes are matched with their letter case
    ("http://zwfw.example.gov.cn/dzzz", "code.unsafe_link"),
    ("javascript:alert(1)", "code.unsafe_link"),
    ("JavaScript:alert(1)", "code.unsafe_link"),
    ("data:text/html;base64,PHNjcmlwdD4=", "code.unsafe_link"),
    ("file:///etc/passwd", "code.unsafe_link"),
    ("https://evil.com/", "code.untrusted_link"),
    ("https://gov.cn.evil.com/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn.evil.com/", "code.untrusted_link"),
    ("https://evilzwfw.example.gov.cn/", "code.untrusted_link"),
    ("https://example.gov.cn/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn@evil.com/", "code.untrusted_link"),
    ("https://user:pw@zwfw.example.gov.cn/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn:8443/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn:/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn./", "code.untrusted_link"),
    ("https://zwfw.exаmple.gov.cn/", "code.untrusted_link"),  # Cyrillic а
    ("https://ｚｗｆｗ.example.gov.cn/", "code.untrusted_link"),  # full-width letters
    ("https://xn--zwfw-9ua.example.gov.cn/", "code.untrusted_link"),
    ("https://xn--80ak6aa92e.zwfw.example.gov.cn/", "code.untrusted_link"),  # punycode under a wildcard
    ("https://10.0.0.1/", "code.untrusted_link"),
    ("https://[::1]/", "code.untrusted_link"),
    ("https:zwfw.example.gov.cn/", "code.untrusted_link"),
    ("https:\\\\zwfw.example.gov.cn/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn\\@evil.com/", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn/a b", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn/a\\b", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn/a\"onload=x", "code.untrusted_link"),
    ("https://zwfw.example.gov.cn/a%zz", "code.untrusted_link"),
    ("CTID:short", "code.malformed"),
    ("CTID:" + "A" * 1025, "code.malformed"),
    ("CTID:" + "A" * 20 + "===", "code.malformed"),
    ("CTID:" + "A" * 10 + "$" + "A" * 10, "code.malformed"),
    ("CTID:" + "中" * 20, "code.malformed"),
    ("DZZZ:abc", "code.malformed"),
    ("DZZZ:" + "a" * 257, "code.malformed"),
    ("DZZZ:abc/def/ghi", "code.malformed"),
    ("YY", "code.malformed"),
    ("YY260601000042", "code.malformed"),
    ("YY26060100004266", "code.malformed"),
    ("YY26060100004X6", "code.malformed"),
    ("YY2606010000427", "code.bad_check_digit"),
    ("YY2606010000425", "code.bad_check_digit"),
])
def test_refused_codes(text: str, reason: str) -> None:
    with pytest.raises(InvalidCode) as caught:
        parse_code(text, RULES)
    assert caught.value.reason == reason
    assert caught.value.reason in REASON_KEYS


def test_details_never_hold_the_code() -> None:
    secret = "CTID:" + "Q" * 10 + "$" + "Q" * 10
    with pytest.raises(InvalidCode) as caught:
        parse_code(secret, RULES)
    assert "QQQQQQQQQQ" not in str(caught.value)


def test_not_text_is_refused() -> None:
    with pytest.raises(InvalidCode) as caught:
        parse_code(b"YY2606010000426", RULES)  # type: ignore[arg-type]
    assert caught.value.reason == "code.bad_characters"


def test_expected_kind() -> None:
    assert parse_code("YY2606010000426", RULES, expect={"appointment"}).kind == "appointment"
    with pytest.raises(InvalidCode) as caught:
        parse_code("DZZZ:" + LICENCE_ID, RULES, expect={"appointment"})
    assert caught.value.reason == "code.wrong_kind"


def test_default_rules_trust_no_host() -> None:
    """Every terminal names its own platform hosts: by default no link is accepted."""
    with pytest.raises(InvalidCode) as caught:
        parse_code("https://zwfw.example.gov.cn/x", DEFAULT_RULES)
    assert caught.value.reason == "code.untrusted_link"
    assert parse_code("DZZZ:" + LICENCE_ID).kind == "e_licence"


# -- rules -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    ({"e_licence_hosts": ("*.gov.cn",)}, "too broad"),
    ({"e_licence_hosts": ("*.gd.cn",)}, "too broad"),
    ({"e_licence_hosts": ("*.cn",)}, "host name"),
    ({"e_licence_hosts": ("localhost",)}, "host name"),
    ({"e_licence_hosts": ("zwfw.example.gov.cn/path",)}, "host name"),
    ({"e_licence_hosts": ("a.example.gov.cn",), "e_id_hosts": ("A.example.gov.cn",)}, "both"),
    ({"e_id_prefixes": ("DZZZ",)}, "overlap"),
    ({"appointment_prefix": "CTID:X"}, "overlap"),
    ({"e_id_prefixes": ("",)}, "printable"),
    ({"e_id_prefixes": ("网证:",)}, "printable"),
    ({"max_length": 10}, "max_length"),
    ({"e_id_token_length": (20, 10)}, "e_id_token_length"),
])
def test_bad_rules_are_refused(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CodeRules(**kwargs)


def test_rules_from_a_config_section() -> None:
    rules = CodeRules.from_mapping({"e_licence_hosts": ["ZWFW.example.gov.cn"], "e_id_prefixes": ["WZ:"],
                                    "e_id_token_length": [20, 200]})
    assert rules.e_licence_hosts == ("zwfw.example.gov.cn",)
    assert parse_code("WZ:" + "b" * 20, rules).kind == "e_id"
    with pytest.raises(ValueError, match="unknown code rule"):
        CodeRules.from_mapping({"trusted_hosts": ["a.example.gov.cn"]})


def test_other_appointment_prefix() -> None:
    rules = CodeRules(appointment_prefix="BJ")
    code = make_appointment_code("123456789012", prefix="BJ")
    assert parse_code(code, rules).kind == "appointment"
    with pytest.raises(InvalidCode):
        parse_code(make_appointment_code("123456789012"), rules)


# -- the check digit ---------------------------------------------------------------------------------------
def test_mod11_2_matches_the_id_card_check_digit() -> None:
    """The same algorithm as GB 11643 (an independent implementation in devices.idcard)."""
    for first17 in ("11010519491231002", "44030819900101123", "00000000000000000", "99999999999999999"):
        assert mod11_2_check(first17) == id_check_digit(first17)


def test_known_check_characters() -> None:
    # ORCID iDs carry an ISO 7064 MOD 11-2 check character (examples from ORCID's documentation)
    assert mod11_2_check("000000021825009") == "7"
    assert mod11_2_check("000000015109370") == "0"
    assert mod11_2_check("000000021694233") == "X"
    assert make_appointment_code("260601000042") == "YY2606010000426"
    with pytest.raises(ValueError):
        make_appointment_code("26060100004")
    with pytest.raises(ValueError):
        mod11_2_check("12a")


numbers = st.text(alphabet="0123456789", min_size=12, max_size=12)


@settings(max_examples=300, deadline=None)
@given(numbers)
def test_generated_appointment_codes_validate(number: str) -> None:
    code = make_appointment_code(number)
    parsed = parse_code(code, RULES, expect={"appointment"})
    assert isinstance(parsed, ScannedCode) and parsed.value == code


@settings(max_examples=300, deadline=None)
@given(numbers, st.integers(min_value=2, max_value=14), st.sampled_from("0123456789X"))
def test_any_single_character_change_is_refused(number: str, position: int, replacement: str) -> None:
    code = make_appointment_code(number)
    if code[position] == replacement or (replacement == "X" and position < 14):
        replacement = str((int(code[position]) + 1) % 10) if code[position].isdigit() else "0"
    changed = code[:position] + replacement + code[position + 1:]
    assert changed != code
    with pytest.raises(InvalidCode) as caught:
        parse_code(changed, RULES)
    assert caught.value.reason == "code.bad_check_digit"


@settings(max_examples=300, deadline=None)
@given(numbers, st.integers(min_value=2, max_value=12))
def test_adjacent_swaps_are_refused(number: str, position: int) -> None:
    code = make_appointment_code(number)
    if code[position] == code[position + 1]:
        return  # swapping equal digits changes nothing
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2:]
    with pytest.raises(InvalidCode):
        parse_code(swapped, RULES)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_accepted_or_refused_with_a_known_reason(text: str) -> None:
    try:
        code = parse_code(text, RULES)
    except InvalidCode as exc:
        assert exc.reason in REASON_KEYS
    else:
        assert code.kind in ("e_licence", "e_id", "appointment")
        assert code.value.isascii() and code.value.isprintable()
