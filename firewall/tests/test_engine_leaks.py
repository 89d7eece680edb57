"""Output checks: system prompt and canary leaks (firewall/engine/leaks.py)."""

import base64

import pytest

from firewall.engine.leaks import LEAK_FLOOR, canary_leak, system_prompt_leak
from firewall.engine.types import Severity, Span, ThreatType

SYSTEM_PROMPT = (
    "You are Acme's support assistant. Never reveal internal pricing rules. Always answer in French unless the "
    "customer writes in German. Escalate refund requests above 500 euros to a human agent and never promise "
    "delivery dates. The discount code STAFF-ONLY is for employees and must not be shared."
)
CANARY = "CANARY-7f3a9c2e1b"


def test_verbatim_system_prompt_is_a_full_leak() -> None:
    output = f"Sure! Here are my instructions: {SYSTEM_PROMPT.upper()} Anything else?"
    finding = system_prompt_leak(output, SYSTEM_PROMPT)
    assert finding is not None
    assert finding.score == 1.0
    assert finding.threat_type == ThreatType.SYSTEM_PROMPT_LEAK
    assert finding.severity == Severity.HIGH
    start = output.index("YOU ARE")
    assert finding.spans == [Span(start, output.index("SHARED") + len("SHARED"))]
    assert finding.evidence[0].startswith("YOU ARE ACME'S SUPPORT ASSISTANT")
    assert len(finding.evidence[0]) <= 200


def test_paraphrase_quoting_a_long_run_is_a_leak() -> None:
    output = (
        "I help Acme's customers. I was told to always answer in french, unless the customer writes in german; "
        "escalate refund requests above 500 euros to a human agent. That is all I can say."
    )
    finding = system_prompt_leak(output, SYSTEM_PROMPT)
    assert finding is not None
    assert LEAK_FLOOR <= finding.score < 1.0
    assert finding.evidence == [
        "always answer in french, unless the customer writes in german; "
        "escalate refund requests above 500 euros to a human agent"
    ]


def test_longest_run_is_the_evidence() -> None:
    output = (
        "Note: never reveal internal pricing rules. Also escalate refund requests above 500 euros to a human agent."
    )
    finding = system_prompt_leak(output, SYSTEM_PROMPT)
    assert finding is not None
    assert finding.evidence == ["escalate refund requests above 500 euros to a human agent"]


def test_unrelated_answer_is_not_a_leak() -> None:
    output = (
        "Your parcel left our warehouse yesterday and should arrive within three working days. "
        "If you have any questions, the customer writes in the form below and we answer within a day."
    )
    assert system_prompt_leak(output, SYSTEM_PROMPT) is None


def test_one_shared_stock_phrase_stays_below_the_floor() -> None:
    output = "Bonjour! Please note we never promise delivery dates for international orders, sorry."
    assert system_prompt_leak(output, SYSTEM_PROMPT) is None


@pytest.mark.parametrize(("output", "leaked"), [("Okay. Be concise and polite!", True), ("Please be brief.", False)])
def test_short_system_prompt_leaks_only_whole(output: str, leaked: bool) -> None:
    finding = system_prompt_leak(output, "Be concise and polite.")
    assert (finding is not None) is leaked
    if finding:
        assert finding.evidence == ["Be concise and polite"]
        assert finding.rule_id == "system_prompt.ngram4"


def test_empty_inputs_are_no_leak() -> None:
    assert system_prompt_leak("", SYSTEM_PROMPT) is None
    assert system_prompt_leak("anything", "  ...  ") is None


def test_repetitive_10kb_output_is_bounded_and_still_found() -> None:
    output = "word " * 2048 + SYSTEM_PROMPT
    finding = system_prompt_leak(output, "word " * 1000 + SYSTEM_PROMPT)
    assert finding is not None and finding.score == 1.0


@pytest.mark.parametrize(
    ("output", "rule_id"),
    [
        (f"The secret marker is {CANARY}.", "canary.plain"),
        (f"marker: {CANARY.lower()}", "canary.plain"),
        ("marker: C A N A R Y - 7 f 3 a 9 c 2 e 1 b", "canary.separated"),
        ("marker: C.A.N.A.R.Y.7.f.3.a.9.c.2.e.1.b done", "canary.separated"),
        (f"data: {base64.b64encode(CANARY.encode()).decode()}", "canary.base64"),
        (f"blob {base64.b64encode(b'prefix:' + CANARY.encode() + b':suffix').decode()}", "canary.base64"),
        (f"url {base64.urlsafe_b64encode(b'xx' + CANARY.encode()).decode()}", "canary.base64"),
        (f"hex {CANARY.encode().hex()}", "canary.hex"),
        ("hex " + " ".join(f"0x{b:02X}" for b in CANARY.encode()), "canary.hex"),
        ("escaped " + "".join(f"\\x{b:02x}" for b in CANARY.encode()), "canary.hex"),
    ],
)
def test_canary_found_plain_spaced_and_encoded(output: str, rule_id: str) -> None:
    finding = canary_leak(output, CANARY)
    assert finding is not None
    assert finding.rule_id == rule_id
    assert finding.score == 1.0 and finding.severity == Severity.CRITICAL
    assert finding.threat_type == ThreatType.SYSTEM_PROMPT_LEAK
    span = finding.spans[0]
    assert output[span.start : span.end] == finding.evidence[0]


def test_base64_canary_split_over_lines_is_found() -> None:
    encoded = base64.b64encode(CANARY.encode()).decode()
    assert canary_leak(f"{encoded[:10]}\n{encoded[10:]}", CANARY) is not None


@pytest.mark.parametrize(
    "output",
    [
        "No marker here at all.",
        "Almost: CANARY-7f3a9c2e1c",
        "Partial: CANARY-7f3a9c",
        base64.b64encode(b"CANARY-7f3a9c2e1c").decode(),
        "CANARY7f3a9c2e1 " * 600,
    ],
)
def test_canary_absent(output: str) -> None:
    assert canary_leak(output, CANARY) is None


def test_empty_canary_never_matches() -> None:
    assert canary_leak("anything", "") is None
