"""Secrets and personal data in a text: find them, show them masked, and redact them.

Why these choices:

- Every pattern is anchored so a hostile input stays linear: a match may only start where the previous character
  cannot continue the token (negative lookbehind), repeated groups consume at least one fixed character each, and every
  quantifier is bounded. Validation (checksums, header decoding, entropy) runs in Python on the few matches only.
- Evidence never carries the full secret or number: `mask` keeps at most the first 4 and last 2 characters (fewer for
  short values), so a finding can be logged and shown on a dashboard without leaking what it found.
- Scores say how sure a match is: 1.0 when a checksum validates it (Luhn for cards, mod-97 for IBANs), 0.9-0.95 for
  formats with a distinctive prefix or structure, lower for pattern-only personal data (phones, SSNs, IPs).
- A generic `password=...` / `api_key: ...` assignment is reported only when its value has at least
  `GENERIC_MIN_LENGTH` characters and a Shannon entropy of at least `GENERIC_MIN_ENTROPY` bits per character: random
  keys and passwords score well above it (a random 16-character alphanumeric string scores about 3.7-4.0), while
  dictionary words, placeholders and repeated characters ("changeme", "xxxxxxxx", "password") stay below it.
  Values that look like template or code references (`${X}`, `<your key>`, `os.environ[...]`) are not values at all.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .types import Finding, Severity, Span, ThreatType

SECRETS_DETECTOR = "secrets"
PII_DETECTOR = "pii"

GENERIC_MIN_LENGTH = 8
GENERIC_MIN_ENTROPY = 3.0  # bits per character

# Characters that may continue a key-like token: a match must not start or end inside a longer such token.
_KEYCH = r"A-Za-z0-9_\-"


def mask(value: str) -> str:
    """The value with its middle hidden: the first 4 and last 2 characters at most, never more than a third of it."""
    n = len(value)
    head = min(4, n // 4)
    tail = min(2, n // 8)
    hidden = n - head - tail
    return value[:head] + "*" * min(hidden, 12) + (value[n - tail :] if tail else "")


def shannon_entropy(value: str) -> float:
    """Shannon entropy of the value's characters, in bits per character (0 for an empty string)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def placeholder(finding: Finding) -> str:
    """The typed placeholder that replaces a finding's span, e.g. `[REDACTED:EMAIL]`, from the rule id's first part."""
    label = finding.rule_id.split(".", 1)[0] if finding.rule_id else str(finding.threat_type)
    return f"[REDACTED:{label.upper() or 'DATA'}]"


# --- secrets ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    rule_id: str
    pattern: re.Pattern[str]
    severity: Severity
    score: float
    hints: tuple[str, ...]  # lowercase substrings one of which any match contains: skip the regex when none is there
    group: int = 0  # the regex group holding the secret (the rest is context such as "aws_secret_access_key =")
    validate: Callable[[str], bool] | None = None


def _has_letter_and_digit(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _jwt_header_ok(token: str) -> bool:
    # A JWT's first part is base64url JSON naming its algorithm; anything else is a lookalike.
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _rule(
    rule_id: str,
    pattern: str,
    severity: Severity,
    score: float,
    hints: tuple[str, ...],
    *,
    group: int = 0,
    validate: Callable[[str], bool] | None = None,
) -> _Rule:
    return _Rule(rule_id, re.compile(pattern), severity, score, hints, group, validate)


_SECRET_RULES: tuple[_Rule, ...] = (
    _rule(
        "anthropic_key",
        rf"(?<![{_KEYCH}])sk-ant-[{_KEYCH}]{{32,200}}(?![{_KEYCH}])",
        Severity.CRITICAL,
        0.95,
        ("sk-ant-",),
    ),
    _rule(
        "openai_key",
        rf"(?<![{_KEYCH}])sk-(?!ant-)(?:proj-|svcacct-|admin-)?[{_KEYCH}]{{20,200}}(?![{_KEYCH}])",
        Severity.CRITICAL,
        0.9,
        ("sk-",),
        validate=_has_letter_and_digit,
    ),
    _rule(
        "aws_access_key_id",
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        Severity.HIGH,
        0.9,
        ("akia", "asia"),
    ),
    _rule(
        "aws_secret_key",
        r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s{0,5}[:=]\s{0,5}[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        Severity.CRITICAL,
        0.95,
        ("secret",),
        group=1,
    ),
    _rule(
        "github_token",
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
        Severity.CRITICAL,
        0.95,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _rule(
        "slack_token",
        r"(?<![A-Za-z0-9_])xox[abprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9_])",
        Severity.HIGH,
        0.9,
        ("xox",),
    ),
    _rule(
        "stripe_key",
        r"(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{16,247}(?![A-Za-z0-9_])",
        Severity.CRITICAL,
        0.95,
        ("k_live_",),
    ),
    _rule(
        "google_api_key",
        rf"(?<![{_KEYCH}])AIza[{_KEYCH}]{{35}}(?![{_KEYCH}])",
        Severity.HIGH,
        0.9,
        ("aiza",),
    ),
    _rule(
        "jwt",
        r"(?<![A-Za-z0-9_\-.])eyJ[A-Za-z0-9_-]{4,4000}\.[A-Za-z0-9_-]{2,8000}\.[A-Za-z0-9_-]{0,2000}"
        r"(?![A-Za-z0-9_\-]|\.[A-Za-z0-9_\-])",
        Severity.HIGH,
        0.95,
        ("eyj",),
        validate=_jwt_header_ok,
    ),
    _rule(
        "evalence_key",
        rf"(?<![{_KEYCH}])ev_[0-9a-f]{{8}}_[{_KEYCH}]{{43}}(?![{_KEYCH}])",
        Severity.CRITICAL,
        0.95,
        ("ev_",),
    ),
)

_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----")
_PRIVATE_KEY_END = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----")
# The body of an unterminated block: base64 lines and PEM headers ("Proc-Type: 4,ENCRYPTED"), no "-----".
_PRIVATE_KEY_BODY = re.compile(r"(?:[A-Za-z0-9+/=:,.\s]|-(?!----)){0,20000}")
_PRIVATE_KEY_MAX = 20000

_GENERIC = re.compile(
    r"(?<![A-Za-z0-9])(?i:(password|passwd|pwd|secret|client_?secret|api_?key|apikey|access_?token|auth_?token|token))"
    r"[\"']?\s{0,5}[:=]\s{0,5}"
    r"(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'|([^\s\"'`,;<>{}()\[\]$][^\s\"'`,;<>{}()\[\]]{0,199}))"
)
# A value that is a template or a variable reference, not a credential: "${API_KEY}", "<your key>", "{{ token }}".
_TEMPLATE_VALUE = re.compile(r"^[$<%]|[{}]")


def _secret_finding(rule_id: str, severity: Severity, score: float, start: int, end: int, evidence: str) -> Finding:
    return Finding(
        detector=SECRETS_DETECTOR,
        score=score,
        threat_type=ThreatType.SECRET,
        severity=severity,
        evidence=[evidence],
        spans=[Span(start, end)],
        rule_id=rule_id,
    )


def _private_keys(text: str) -> list[Finding]:
    findings = []
    pos = 0
    while match := _PRIVATE_KEY_BEGIN.search(text, pos):
        end_match = _PRIVATE_KEY_END.search(text, match.end(), match.end() + _PRIVATE_KEY_MAX)
        if end_match:
            end = end_match.end()
        else:
            body = _PRIVATE_KEY_BODY.match(text, match.end())
            end = len(text[: body.end() if body else match.end()].rstrip())
        header = match.group()
        findings.append(
            _secret_finding("private_key", Severity.CRITICAL, 0.95, match.start(), end, f"{header} [body masked]")
        )
        pos = max(end, match.end())
    return findings


class _Taken:
    """Which characters already belong to a finding: overlap checks cost the span's length, not the findings' count."""

    def __init__(self, size: int) -> None:
        self._mask = bytearray(size)

    def overlaps(self, span: Span) -> bool:
        return 1 in self._mask[span.start : span.end]

    def add(self, span: Span) -> None:
        self._mask[span.start : span.end] = b"\x01" * (span.end - span.start)


def find_secrets(text: str) -> list[Finding]:
    """API keys, tokens, private keys and high-entropy credential assignments in `text`, in order of position."""
    findings = _private_keys(text) if "PRIVATE KEY" in text else []
    taken = _Taken(len(text))
    for finding in findings:
        taken.add(finding.spans[0])
    lowered = text.lower()
    for rule in _SECRET_RULES:
        if not any(hint in lowered for hint in rule.hints):
            continue
        for match in rule.pattern.finditer(text):
            value = match.group(rule.group)
            if rule.validate and not rule.validate(value):
                continue
            start, end = match.span(rule.group)
            if taken.overlaps(Span(start, end)):
                continue
            taken.add(Span(start, end))
            rule_id = rule.rule_id
            if rule_id == "openai_key" and value.startswith("sk-proj-"):
                rule_id = "openai_key.project"
            findings.append(_secret_finding(rule_id, rule.severity, rule.score, start, end, mask(value)))
    for match in _GENERIC.finditer(text):
        group = next(g for g in (2, 3, 4) if match.group(g) is not None)
        value = match.group(group)
        span = Span(*match.span(group))
        if (
            len(value) < GENERIC_MIN_LENGTH
            or shannon_entropy(value) < GENERIC_MIN_ENTROPY
            or _TEMPLATE_VALUE.search(value)
            or taken.overlaps(span)
        ):
            continue
        name = match.group(1).lower().replace("_", "")
        kind = "password" if name in {"password", "passwd", "pwd"} else "api_key"
        findings.append(
            _secret_finding(f"generic_secret.{kind}", Severity.HIGH, 0.7, span.start, span.end, mask(value))
        )
    return sorted(findings, key=lambda f: f.spans[0].start)


# --- personal data ------------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# Phone numbers: international (+ and country code), North American (NXX-NXX-XXXX, optionally with a leading 1), and
# national numbers with a trunk 0 ("020 7946 0958", "06 12 34 56 78"). Separators are required between groups (a
# compact number needs its "+"), so plain long numbers, dates ("2024-03-01", "01.02.2024") and versions are left alone.
_PHONE = re.compile(
    r"(?<![\w.+\-/])(?:"
    r"(?P<intl>\+[1-9][0-9]{7,14}|\+[1-9][0-9]{0,3}(?:[ .\-](?:\([0-9]{1,4}\)[0-9]{0,4}|[0-9]{1,6})){1,6})"
    r"|(?<![0-9] )(?P<nanp>(?:1[ .\-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4})"
    r"|(?<![0-9] )(?P<trunk>0[0-9]{1,4}(?:[ .\-][0-9]{2,4}){2,4})"
    r")(?![\w]|[.\-/][0-9])"
)

# Card numbers: 13-19 digits in one piece, or groups of 3-6 digits after a first group of 4, all with the same separator
# ("4111 1111 1111 1111", "3782-822463-10005"). A spaced number directly followed or preceded by another digit group
# is part of something longer and left alone.
_CARD = re.compile(
    r"(?<![0-9\-])(?:[0-9]{13,19}(?![0-9])"
    r"|(?<![0-9][ \-])[0-9]{4}([ \-])[0-9]{3,6}(?:\1[0-9]{3,6}){1,3}(?![0-9]|[ \-][0-9]))"
)

# Card brands by IIN prefix range (inclusive, compared on the first 6 digits) and the lengths they issue.
_CARD_BRANDS: tuple[tuple[str, int, int, frozenset[int]], ...] = (
    ("visa", 400000, 499999, frozenset({13, 16, 19})),
    ("mastercard", 510000, 559999, frozenset({16})),
    ("mastercard", 222100, 272099, frozenset({16})),
    ("amex", 340000, 349999, frozenset({15})),
    ("amex", 370000, 379999, frozenset({15})),
    ("discover", 601100, 601199, frozenset({16, 17, 18, 19})),
    ("discover", 644000, 659999, frozenset({16, 17, 18, 19})),
    ("jcb", 352800, 358999, frozenset({16, 17, 18, 19})),
    ("diners", 300000, 305999, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 360000, 369999, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 380000, 399999, frozenset({14, 15, 16, 17, 18, 19})),
    ("unionpay", 620000, 629999, frozenset({16, 17, 18, 19})),
)

# IBAN lengths of the common countries (SWIFT IBAN registry). Other countries are not reported.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
}  # fmt: skip

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")

_SSN = re.compile(r"(?<![0-9\-])(?<![0-9] )([0-9]{3})([\- ])([0-9]{2})\2([0-9]{4})(?![0-9]|[\-][0-9])")

_IPV4 = re.compile(
    r"(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    r"(?![0-9]|\.[0-9])"
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits: every card number satisfies it, 9 in 10 random numbers do not."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 check: known country, its length, and the mod-97 check digits (the number mod 97 equals 1)."""
    iban = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def card_brand(digits: str) -> str | None:
    """The card brand whose IIN range and issued lengths fit the number, or None."""
    if len(digits) < 13:
        return None
    prefix = int(digits[:6])
    for brand, low, high, lengths in _CARD_BRANDS:
        if low <= prefix <= high and len(digits) in lengths:
            return brand
    return None


def _pii_finding(rule_id: str, severity: Severity, score: float, start: int, end: int, evidence: str) -> Finding:
    return Finding(
        detector=PII_DETECTOR,
        score=score,
        threat_type=ThreatType.PII,
        severity=severity,
        evidence=[evidence],
        spans=[Span(start, end)],
        rule_id=rule_id,
    )


def _cards(text: str) -> Iterable[Finding]:
    for match in _CARD.finditer(text):
        raw = match.group()
        digits = raw.replace(" ", "").replace("-", "")
        brand = card_brand(digits)
        if brand and luhn_ok(digits):
            yield _pii_finding(f"card.{brand}", Severity.HIGH, 1.0, *match.span(), mask(digits))


def _ibans(text: str) -> Iterable[Finding]:
    for match in _IBAN.finditer(text):
        length = IBAN_LENGTHS.get(match.group()[:2])
        if length is None:
            continue
        # The match may run into following capitalized words ("... 0130 00 TO ..."): cut it at the country's length.
        count, end = 0, match.start()
        for i in range(match.start(), match.end()):
            if text[i] != " ":
                count += 1
                if count == length:
                    end = i + 1
                    break
        if count < length or (end < len(text) and text[end].isalnum()):
            continue
        iban = text[match.start() : end]
        if iban_ok(iban):
            yield _pii_finding("iban", Severity.HIGH, 1.0, match.start(), end, mask(iban.replace(" ", "")))


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    # Never issued: area 000, 666 and 900-999, group 00, serial 0000.
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


def _phone_ok(match: re.Match[str]) -> bool:
    digits = sum(c.isdigit() for c in match.group())
    if match.group("intl"):
        return 8 <= digits <= 15
    if match.group("trunk"):
        separators = {c for c in match.group() if not c.isdigit()}
        return 10 <= digits <= 11 and len(separators) == 1
    return True


def find_pii(text: str) -> list[Finding]:
    """Emails, phone numbers, card numbers, IBANs, US SSNs and IPv4 addresses in `text`, in order of position.

    Where two matches overlap, the more specific one wins (card > IBAN > SSN > email > phone > IP)."""
    findings: list[Finding] = [*_cards(text), *_ibans(text)]
    for match in _SSN.finditer(text):
        if _ssn_ok(match.group(1), match.group(3), match.group(4)):
            findings.append(_pii_finding("ssn", Severity.HIGH, 0.8, *match.span(), mask(match.group())))
    if "@" in text:
        for match in _EMAIL.finditer(text):
            local, domain = match.group().split("@", 1)
            evidence = f"{local[:1]}***@{domain}"
            findings.append(_pii_finding("email", Severity.MEDIUM, 0.9, *match.span(), evidence))
    for match in _PHONE.finditer(text):
        if _phone_ok(match):
            kind = next(k for k in ("intl", "nanp", "trunk") if match.group(k))
            findings.append(_pii_finding(f"phone.{kind}", Severity.MEDIUM, 0.7, *match.span(), mask(match.group())))
    for match in _IPV4.finditer(text):
        address = ipaddress.IPv4Address(match.group())
        if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_reserved:
            continue
        findings.append(_pii_finding("ipv4", Severity.LOW, 0.5, *match.span(), mask(match.group())))
    kept: list[Finding] = []
    taken = _Taken(len(text))
    for finding in findings:  # already in priority order
        if not taken.overlaps(finding.spans[0]):
            taken.add(finding.spans[0])
            kept.append(finding)
    return sorted(kept, key=lambda f: f.spans[0].start)


# --- redaction ----------------------------------------------------------------------------------------------------


def redact(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding's span replaced by a typed placeholder such as `[REDACTED:EMAIL]`.

    Overlapping spans are merged into one placeholder (typed after the widest of them). The result is assembled from
    the original offsets in one pass, so a replacement never shifts the spans after it."""
    spans: list[tuple[int, int, str]] = []
    for finding in findings:
        label = placeholder(finding)
        for span in finding.spans:
            start, end = max(0, span.start), min(len(text), span.end)
            if start < end:
                spans.append((start, end, label))
    if not spans:
        return text
    spans.sort()
    merged: list[tuple[int, int, str, int]] = []  # start, end, label, width of the span that gave the label
    for start, end, label in spans:
        if merged and start < merged[-1][1]:
            m_start, m_end, m_label, m_width = merged[-1]
            if end - start > m_width:
                m_label, m_width = label, end - start
            merged[-1] = (m_start, max(m_end, end), m_label, m_width)
        else:
            merged.append((start, end, label, end - start))
    parts: list[str] = []
    pos = 0
    for start, end, label, _width in merged:
        parts += (text[pos:start], label)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
