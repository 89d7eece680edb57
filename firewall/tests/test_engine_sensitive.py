"""Secrets and PII detection, masking and redaction (firewall/engine/sensitive.py).

Key-shaped test values are assembled from pieces so no real-looking credential sits in the repository verbatim
(secret scanners on push would flag it)."""

import base64
import json

import pytest

from firewall.engine.sensitive import (
    find_pii,
    find_secrets,
    iban_ok,
    luhn_ok,
    mask,
    redact,
    shannon_entropy,
)
from firewall.engine.types import Finding, Severity, Span, ThreatType


def _jwt(header: dict[str, str]) -> str:
    def part(obj: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part(header)}.{part({'sub': '1234567890', 'name': 'Jo'})}.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


SECRETS = {
    "openai_key": "sk-" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "openai_key.project": "sk-" + "proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56_Qr-78",
    "anthropic_key": "sk-" + "ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7Zx6Yw5Vu4Ts3Rq2",
    "aws_access_key_id": "AKIA" + "IOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz",
    "slack_token": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe_key": "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "google_api_key": "AIza" + "SyB1c2D3e4F5g6H7i8J9k0L1m2N3o4P5q6R",
    "jwt": _jwt({"alg": "HS256", "typ": "JWT"}),
    "evalence_key": "ev_" + "0a1b2c3d_" + "Qm9vZ2xlLXRva2VuLXZhbHVlLXRoYXQtaXMtNDMtY2g",
}


@pytest.mark.parametrize(("rule_id", "secret"), SECRETS.items())
def test_each_secret_format_is_found_with_its_span_and_masked_evidence(rule_id: str, secret: str) -> None:
    text = f"here it is: {secret} - keep it safe"
    findings = find_secrets(text)
    assert [f.rule_id for f in findings] == [rule_id]
    finding = findings[0]
    start = text.index(secret)
    assert finding.spans == [Span(start, start + len(secret))]
    assert finding.detector == "secrets"
    assert finding.threat_type == ThreatType.SECRET
    assert finding.severity in {Severity.HIGH, Severity.CRITICAL}
    assert finding.evidence == [mask(secret)]
    assert secret not in finding.evidence[0]
    assert finding.evidence[0].startswith(secret[:4]) and finding.evidence[0].endswith(secret[-2:])


def test_aws_secret_key_is_found_only_next_to_its_name() -> None:
    value = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    text = f'aws_secret_access_key = "{value}"'
    [finding] = find_secrets(text)
    assert finding.rule_id == "aws_secret_key"
    assert text[finding.spans[0].start : finding.spans[0].end] == value
    assert finding.severity == Severity.CRITICAL
    assert find_secrets(f"checksum {value}") == []


def test_private_key_block_is_found_whole_and_never_shown() -> None:
    body = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\nS2b0YzGYnCgMVnZ8hH0f+/=\n"
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----"
    text = f"key:\n{block}\nthanks"
    [finding] = find_secrets(text)
    assert finding.rule_id == "private_key"
    assert text[finding.spans[0].start : finding.spans[0].end] == block
    assert "MIIE" not in finding.evidence[0]


def test_unterminated_private_key_block_covers_its_body() -> None:
    text = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\nAAAAC3NzaC1lZDI1NTE5\n"
    [finding] = find_secrets(text)
    assert finding.spans == [Span(0, len(text.rstrip()))]


def test_jwt_lookalike_without_alg_header_is_not_reported() -> None:
    assert find_secrets(_jwt({"typ": "JWT"})) == []


def test_generic_assignment_needs_a_high_entropy_value() -> None:
    strong = "Xk9#mQ2$vL7pR4"
    text = f'password = "{strong}"\napi_key: changeme\npwd=xxxxxxxxxxxx\ntoken=${{API_TOKEN}}\nsecret: <your-secret>'
    [finding] = find_secrets(text)
    assert finding.rule_id == "generic_secret.password"
    assert text[finding.spans[0].start : finding.spans[0].end] == strong
    assert shannon_entropy("changeme") < 3.0 <= shannon_entropy(strong)


def test_known_key_in_an_assignment_is_reported_once_as_itself() -> None:
    secret = SECRETS["stripe_key"]
    assert [f.rule_id for f in find_secrets(f"api_key={secret}")] == ["stripe_key"]


def test_openai_lookalike_words_are_not_keys() -> None:
    assert find_secrets("we use sk-learn-and-friends-for-everything and scikit-learn") == []


# --- PII ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rule_id", "score"),
    [
        ("jane.doe+news@example.co.uk", "email", 0.9),
        ("+44 20 7946 0958", "phone.intl", 0.7),
        ("+14155552671", "phone.intl", 0.7),
        ("+1 (415) 555-2671", "phone.intl", 0.7),
        ("+44 (0)20 7946 0958", "phone.intl", 0.7),
        ("(415) 555-2671", "phone.nanp", 0.7),
        ("415-555-2671", "phone.nanp", 0.7),
        ("06 12 34 56 78", "phone.trunk", 0.7),
        ("4111 1111 1111 1111", "card.visa", 1.0),
        ("5500-0000-0000-0004", "card.mastercard", 1.0),
        ("378282246310005", "card.amex", 1.0),
        ("3782 822463 10005", "card.amex", 1.0),
        ("DE89 3704 0044 0532 0130 00", "iban", 1.0),
        ("GB82WEST12345698765432", "iban", 1.0),
        ("123-45-6789", "ssn", 0.8),
        ("203.0.113.9", "ipv4", 0.5),
    ],
)
def test_each_pii_kind_is_found_with_span_score_and_masked_evidence(value: str, rule_id: str, score: float) -> None:
    text = f"Contact: {value}. Thanks!"
    [finding] = find_pii(text)
    assert finding.rule_id == rule_id
    assert finding.detector == "pii" and finding.threat_type == ThreatType.PII
    assert finding.score == score
    start = text.index(value)
    assert finding.spans == [Span(start, start + len(value))]
    assert value not in finding.evidence[0]


def test_pii_severities() -> None:
    text = "a@example.com 4111111111111111 DE89370400440532013000 1.2.3.4 +33 6 12 34 56 78"
    severities = {f.rule_id.split(".")[0]: f.severity for f in find_pii(text)}
    assert severities == {
        "email": Severity.MEDIUM,
        "card": Severity.HIGH,
        "iban": Severity.HIGH,
        "ipv4": Severity.LOW,
        "phone": Severity.MEDIUM,
    }


def test_luhn_invalid_card_numbers_are_not_reported() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert find_pii("card 4111 1111 1111 1112 and 5500000000000005") == []


def test_several_cards_in_a_row_are_each_found() -> None:
    findings = find_pii("cards 4111111111111111 5500000000000004, 378282246310005")
    assert [f.rule_id for f in findings] == ["card.visa", "card.mastercard", "card.amex"]


def test_mixed_separators_or_extra_digit_groups_are_not_cards() -> None:
    assert find_pii("4111 1111-1111 1111") == []
    assert find_pii("serial 4111 1111 1111 1111 2222 3333") == []


def test_card_number_needs_a_known_prefix() -> None:
    assert luhn_ok("1234567812345670")
    assert find_pii("ref 1234 5678 1234 5670") == []


def test_mod97_invalid_ibans_are_not_reported() -> None:
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE88370400440532013000")
    assert find_pii("IBAN DE88 3704 0044 0532 0130 00 or GB82WEST12345698765433") == []


def test_iban_followed_by_capitalized_words_is_cut_at_its_length() -> None:
    text = "Pay to DE89 3704 0044 0532 0130 00 TO ACME GMBH"
    [finding] = find_pii(text)
    assert text[finding.spans[0].start : finding.spans[0].end] == "DE89 3704 0044 0532 0130 00"


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"])
def test_never_issued_ssns_are_not_reported(ssn: str) -> None:
    assert find_pii(f"SSN {ssn}") == []


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-03-01 at 10:30",
        "meeting 01.02.2024 or 12/03/2024",
        "upgrade to version 10.0.19041.1234 or v1.2.3.4",
        "order number 1234-5678-9012 and invoice 4155552671",
        "tracking 123456789012345",
        "loopback 127.0.0.1 and 0.0.0.0",
        "ratio 3.14159 and 2.71828",
    ],
)
def test_dates_versions_and_order_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_overlapping_matches_keep_the_most_specific() -> None:
    [finding] = find_pii("card: 4111-1111-1111-1111")
    assert finding.rule_id == "card.visa"


# --- redaction ------------------------------------------------------------------------------------------------------


def test_redact_replaces_each_finding_with_a_typed_placeholder() -> None:
    key = SECRETS["openai_key"]
    text = f"Mail jane@example.com, card 4111 1111 1111 1111, key {key}."
    redacted = redact(text, [*find_pii(text), *find_secrets(text)])
    assert redacted == "Mail [REDACTED:EMAIL], card [REDACTED:CARD], key [REDACTED:OPENAI_KEY]."


def test_redact_merges_overlapping_spans_and_ignores_bad_offsets() -> None:
    text = "0123456789abcdef"
    findings = [
        Finding("pii", 0.9, ThreatType.PII, rule_id="email", spans=[Span(2, 6)]),
        Finding("secrets", 0.9, ThreatType.SECRET, rule_id="jwt", spans=[Span(4, 12)]),
        Finding("pii", 0.9, ThreatType.PII, rule_id="ipv4", spans=[Span(14, 99), Span(5, 5)]),
    ]
    assert redact(text, findings) == "01[REDACTED:JWT]cd[REDACTED:IPV4]"
    assert redact(text, []) == text


def test_benign_10kb_text_yields_nothing() -> None:
    paragraph = (
        "Our team met on 2024-03-01 to review release 3.2.1 of the scheduler. Throughput rose 12.5% to 4,200 "
        "requests per second; order 88213 shipped on time. Please read section 4.2 of the guide, password "
        "rotation is described there, and contact the on-call engineer if anything looks off. "
    )
    text = (paragraph * (10_240 // len(paragraph) + 1))[:10_240]
    assert find_secrets(text) == []
    assert find_pii(text) == []


@pytest.mark.parametrize(
    "hostile", ["+1234567890123456789x" * 487, "1 " * 5120, "a@" * 5120, "eyJ" * 3413, "DE89 " * 2048, "sk-" * 3413]
)
def test_hostile_10kb_inputs_are_handled(hostile: str) -> None:
    assert find_secrets(hostile) == []
    assert find_pii(hostile) == []
