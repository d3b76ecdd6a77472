"""What a scanned code is, and whether the kiosk may use it: checked BEFORE anything acts on it.

A QR scanner reads whatever a citizen holds up: the right code, a payment code, a
phishing link, a code made to look like a government one. `parse_code` accepts exactly
the formats below and raises `InvalidCode(reason)` for everything else; `reason` is a
text key (config/texts.toml) for the message the citizen sees, `detail` is for the
technician and never holds the code's content.

Accepted formats (the real e-licence and e-ID formats differ by province and platform:
what a terminal accepts is set in `CodeRules`, whose defaults are given here):

1. Appointment code (预约码), this system's own format::

       YY 260601000042 6      -> "YY2606010000426"
       ^^ ^^^^^^^^^^^^ ^
       |  12 digits    check character over the 12 digits: ISO 7064 MOD 11-2
       prefix (CodeRules.appointment_prefix, default "YY")

   The 12 digits are the platform's booking number without its century: the booking day
   YYMMDD and a 6-digit serial (govapi/appointment_codes.py, shared with the platform,
   which issues the code with every booking). The check character is ISO 7064 MOD 11-2, the algorithm of
   the ID-card number: "0"-"9" or "X" (uppercase). It catches every single wrong digit
   and every swap of two adjacent different digits. `make_appointment_code` generates.
   A code that starts with the prefix and is otherwise made of digits and "X" is judged
   as an appointment code: wrong length -> "code.malformed", wrong check -> "code.bad_check_digit".

2. E-licence code (电子证照), either

   a) a link ``https://HOST[:443][/PATH][?QUERY][#FRAGMENT]`` on a trusted host
      (CodeRules.e_licence_hosts; default: none, so every terminal names its
      province's platform hosts), or
   b) a token ``PREFIX + ID`` with PREFIX in CodeRules.e_licence_prefixes (default
      "DZZZ:") and ID of 8-256 characters from ``A-Z a-z 0-9 . _ -`` (this fits the
      national e-licence identifier of GB/T 36904, dotted, e.g. "1.2.156.3005.2....").

3. E-ID code (网证 / CTID), either a link on a trusted e-ID host (CodeRules.e_id_hosts;
   default none) or a token ``PREFIX + TOKEN`` with PREFIX in CodeRules.e_id_prefixes
   (default "CTID:") and TOKEN of 16-1024 characters of base64 or base64url
   (``A-Z a-z 0-9 + / _ -``, up to two "=" at the end). The token is opaque: it is
   forwarded to the platform for verification and never parsed for personal data.

Links, precisely: the scheme is https (any letter case), then "//"; no user-info ("@"),
no port other than 443; the host is ASCII letters, digits, hyphens and dots (so IDNA
look-alikes in Unicode are refused), without a trailing dot, not an IP address, and
matches a trusted entry: "host.example.gov.cn" matches only that host, "*.example.gov.cn"
any host under it (not example.gov.cn itself; list both if both are meant). Matching
is on whole labels, so "gov.cn.evil.com" and "evilzwfw.example.gov.cn" do not match.
Punycode labels ("xn--") are refused unless the entry names that exact host. The rest of
the link may hold only RFC 3986 characters; non-ASCII characters in it (Chinese in a
query) are percent-encoded (UTF-8) in the accepted value. "http:" links are refused as
"code.unsafe_link", and so are "javascript:", "data:", "vbscript:", "file:", "blob:";
other schemes (weixin://, alipays://, mailto:, ...) are "code.unknown_kind".

Always refused first: not text, longer than CodeRules.max_length characters (default
2048), empty, or holding control, format (zero-width, bidi override), private-use,
surrogate or unassigned characters. Spaces at either end are removed.

Token prefixes are matched exactly (letter case included) and must not overlap.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

from govapi.appointment_codes import CHECK_CHARS as _CHECK_CHARS
from govapi.appointment_codes import DIGITS as _APPOINTMENT_DIGITS
from govapi.appointment_codes import make_appointment_code, mod11_2_check  # noqa: F401 - part of this API

KINDS = ("e_licence", "e_id", "appointment")

# text keys of the citizen-facing messages, one per way a code is refused
REASON_KEYS = (
    "code.empty",
    "code.too_long",
    "code.bad_characters",
    "code.unknown_kind",
    "code.unsafe_link",
    "code.untrusted_link",
    "code.malformed",
    "code.bad_check_digit",
    "code.wrong_kind",
)

_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_DANGEROUS_SCHEMES = {"http", "javascript", "data", "vbscript", "file", "blob"}
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_URL_REST_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_E_LICENCE_TOKEN = re.compile(r"[A-Za-z0-9._\-]+")
_E_ID_TOKEN = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")
# second-level names under .cn that anyone may register below: "*.gov.cn" would trust them all
_PUBLIC_SUFFIXES_CN = {"gov", "com", "net", "org", "edu", "ac", "mil"}


class InvalidCode(ValueError):
    """A scanned code the kiosk must not use. `reason` is a text key for the citizen's
    message (REASON_KEYS); `detail` says why for a technician, without the code's content."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASON_KEYS:
            raise ValueError(f"unknown reason key {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, repr=False)
class ScannedCode:
    """A code that passed the checks.

    `value` is what to forward: the canonical link (url), the token without its prefix
    (token), or the whole appointment code (appointment)."""

    kind: str  # "e_licence" | "e_id" | "appointment"
    value: str
    scheme: str  # "url" | "token" | "appointment"
    host: str = ""  # the link's host, for scheme "url"
    prefix: str = ""  # the matched prefix, for scheme "token" and "appointment"

    def masked(self) -> str:
        """For logs and the help desk: enough to tell codes apart, not to reuse one."""
        if self.scheme == "url":
            return f"{self.kind} link on {self.host} ({len(self.value)} characters)"
        if self.scheme == "token":
            return f"{self.kind} token {self.prefix}... ({len(self.value)} characters)"
        return self.value[:4] + "*" * max(len(self.value) - 8, 0) + self.value[-4:]

    def __repr__(self) -> str:
        return f"ScannedCode({self.masked()})"


# -- hosts -------------------------------------------------------------------------------------------
def _valid_hostname(host: str) -> bool:
    if not host or len(host) > 253 or not host.isascii():
        return False
    labels = host.split(".")
    return all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def check_host_entry(entry: str) -> str:
    """One trusted-host entry, normalised; ValueError when malformed or too broad. The config
    schema checks `[codes]` with it too, so a bad entry stops start-up with a ConfigError."""
    entry = entry.strip().lower()
    base = entry.removeprefix("*.")
    if not _valid_hostname(base) or "." not in base:
        raise ValueError(f"trusted host {entry!r}: give a host name like zwfw.example.gov.cn or *.example.gov.cn")
    if entry.startswith("*."):
        labels = base.split(".")
        too_broad = len(labels) < 2 or (len(labels) == 2 and labels[1] == "cn" and (
            labels[0] in _PUBLIC_SUFFIXES_CN or len(labels[0]) == 2))
        if too_broad:
            raise ValueError(f"trusted host {entry!r} is too broad: it trusts every site registered under {base}")
    return entry


def host_matches(host: str, entry: str) -> bool:
    """Whole-label match of a (lower-case) host against one trusted entry."""
    if entry.startswith("*."):
        return host.endswith(entry[1:]) and len(host) > len(entry) - 1
    return host == entry


# -- rules -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeRules:
    """What a terminal accepts; the module docstring gives the formats. A config section
    maps onto it with `from_mapping`."""

    e_licence_hosts: tuple[str, ...] = ()
    e_licence_prefixes: tuple[str, ...] = ("DZZZ:",)
    e_id_hosts: tuple[str, ...] = ()
    e_id_prefixes: tuple[str, ...] = ("CTID:",)
    appointment_prefix: str = "YY"
    max_length: int = 2048
    e_licence_token_length: tuple[int, int] = (8, 256)
    e_id_token_length: tuple[int, int] = (16, 1024)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "e_licence_hosts", tuple(check_host_entry(h) for h in self.e_licence_hosts))
        set_(self, "e_id_hosts", tuple(check_host_entry(h) for h in self.e_id_hosts))
        both = set(self.e_licence_hosts) & set(self.e_id_hosts)
        if both:
            raise ValueError(f"hosts trusted for both e-licence and e-ID codes: {', '.join(sorted(both))}")
        prefixes = [*self.e_licence_prefixes, *self.e_id_prefixes, self.appointment_prefix]
        for p in prefixes:
            if not p or len(p) > 16 or not p.isascii() or not p.isprintable() or " " in p:
                raise ValueError(f"prefix {p!r}: 1-16 printable ASCII characters without spaces")
        for i, a in enumerate(prefixes):
            for b in prefixes[i + 1:]:
                if a.startswith(b) or b.startswith(a):
                    raise ValueError(f"prefixes {a!r} and {b!r} overlap: a code could be read as either")
        if not 64 <= self.max_length <= 8192:
            raise ValueError(f"max_length {self.max_length}: from 64 to 8192 characters")
        for name in ("e_licence_token_length", "e_id_token_length"):
            low, high = getattr(self, name)
            if not 1 <= low <= high <= self.max_length:
                raise ValueError(f"{name} ({low}, {high}): 1 <= min <= max <= max_length")
            set_(self, name, (int(low), int(high)))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CodeRules:
        """From a config section: lists become tuples; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown code rule(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in data.items()}
        return cls(**values)


DEFAULT_RULES = CodeRules()


# -- appointment codes -------------------------------------------------------------------------------
def _appointment(text: str, rules: CodeRules) -> ScannedCode:
    body = text[len(rules.appointment_prefix):]
    if len(body) != _APPOINTMENT_DIGITS + 1 or not body[:-1].isdigit() or body[-1] not in _CHECK_CHARS:
        raise InvalidCode("code.malformed", (
            f"appointment code of {len(text)} characters; expected {rules.appointment_prefix} + "
            f"{_APPOINTMENT_DIGITS} digits + a check character (0-9 or X)"))
    if mod11_2_check(body[:-1]) != body[-1]:
        raise InvalidCode("code.bad_check_digit", "appointment code fails its MOD 11-2 check")
    return ScannedCode("appointment", text, "appointment", prefix=rules.appointment_prefix)


# -- tokens and links ----------------------------------------------------------------------------------
def _token(text: str, kind: str, prefix: str, rules: CodeRules) -> ScannedCode:
    token = text[len(prefix):]
    pattern, (low, high) = ((_E_ID_TOKEN, rules.e_id_token_length) if kind == "e_id"
                            else (_E_LICENCE_TOKEN, rules.e_licence_token_length))
    if not low <= len(token) <= high or not pattern.fullmatch(token):
        allowed = "A-Z a-z 0-9 + / _ - (= padding)" if kind == "e_id" else "A-Z a-z 0-9 . _ -"
        raise InvalidCode("code.malformed", (
            f"{kind} token after {prefix!r} has {len(token)} characters; expected {low}-{high} of {allowed}"))
    return ScannedCode(kind, token, "token", prefix=prefix)


def _link(text: str, rules: CodeRules) -> ScannedCode:
    scheme_end = text.index(":")
    after = text[scheme_end + 1:]
    if not after.startswith("//"):
        raise InvalidCode("code.untrusted_link", "https link without // after the scheme")
    rest_at = len(after)
    for sep in "/?#":
        at = after.find(sep, 2)
        if at >= 0:
            rest_at = min(rest_at, at)
    authority, rest = after[2:rest_at], after[rest_at:]
    if "@" in authority:
        raise InvalidCode("code.untrusted_link", "link with user information (@) before the host")
    host, port = authority, ""
    if ":" in authority:
        host, _, port = authority.rpartition(":")
        if port != "443":
            raise InvalidCode("code.untrusted_link", f"link to port {port or '(empty)'}; only 443 is accepted")
    if "\\" in authority or not host.isascii():
        raise InvalidCode("code.untrusted_link", "link host with characters outside ASCII letters, digits, - and .")
    host = host.lower()
    if not _valid_hostname(host):
        raise InvalidCode("code.untrusted_link", "link host is not a plain host name (or is an IP address)")
    kind = entry = ""
    for candidate_kind, entries in (("e_licence", rules.e_licence_hosts), ("e_id", rules.e_id_hosts)):
        for candidate in entries:
            if host_matches(host, candidate):
                kind, entry = candidate_kind, candidate
                break
        if kind:
            break
    if not kind:
        raise InvalidCode("code.untrusted_link", f"link host {host} is not a trusted platform host")
    if any(label.startswith("xn--") for label in host.split(".")) and entry != host:
        raise InvalidCode("code.untrusted_link", f"punycode host {host} is only trusted when listed exactly")
    encoded = "".join(c if c.isascii() else quote(c, safe="") for c in rest)
    if not _URL_REST_CHARS.fullmatch(encoded) or _BAD_ESCAPE.search(encoded):
        raise InvalidCode("code.untrusted_link", "link with characters not allowed in a URL (RFC 3986)")
    return ScannedCode(kind, f"https://{host}{encoded or '/'}", "url", host=host)


# -- the check -------------------------------------------------------------------------------------------
def parse_code(text: str, rules: CodeRules = DEFAULT_RULES, expect: Collection[str] | None = None) -> ScannedCode:
    """Classify and check one scanned code (see the module notes); raise InvalidCode if unusable.

    `expect`: the kinds the current step takes (e.g. {"appointment"}); another valid
    kind raises InvalidCode("code.wrong_kind")."""
    if not isinstance(text, str):
        raise InvalidCode("code.bad_characters", f"not text but {type(text).__name__}")
    if len(text) > rules.max_length:
        raise InvalidCode("code.too_long", f"{len(text)} characters; at most {rules.max_length}")
    text = text.strip(" ")
    if not text:
        raise InvalidCode("code.empty", "no content")
    for i, c in enumerate(text):
        if unicodedata.category(c) in _REFUSED_CATEGORIES:
            raise InvalidCode("code.bad_characters", f"character U+{ord(c):04X} at position {i}")
    code = _classify(text, rules)
    if expect is not None and code.kind not in expect:
        raise InvalidCode("code.wrong_kind", f"a valid {code.kind} code where {', '.join(sorted(expect))} is asked")
    return code


def _classify(text: str, rules: CodeRules) -> ScannedCode:
    for kind, prefixes in (("e_id", rules.e_id_prefixes), ("e_licence", rules.e_licence_prefixes)):
        for prefix in prefixes:
            if text.startswith(prefix):
                return _token(text, kind, prefix, rules)
    prefix = rules.appointment_prefix
    if text.startswith(prefix) and all(c in _CHECK_CHARS for c in text[len(prefix):]):
        return _appointment(text, rules)
    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name == "https":
            return _link(text, rules)
        if name in _DANGEROUS_SCHEMES:
            raise InvalidCode("code.unsafe_link", f"a {name}: link; only https links on trusted hosts are accepted")
        raise InvalidCode("code.unknown_kind", f"a {name}: code, not one this terminal takes")
    raise InvalidCode("code.unknown_kind", f"{len(text)} characters in no accepted format")
