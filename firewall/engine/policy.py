"""From findings to a decision: the tenant's policy, as plain values, applied to what the detectors found.

Why these rules:

- Each threat type is scored by its strongest finding; when two or more *different* detectors point at the same threat
  type the score gets a small agreement bonus (`AGREEMENT_BONUS` per extra detector, capped at 1.0): independent
  evidence is worth more than one detector's say, but weak signals never add up to a block on their own.
- A threat type at or above `block_threshold` gets its action (block, sanitize, allow-and-log); the strictest action
  over all such types wins (block > sanitize > allow). Between `flag_threshold` and `block_threshold` the input is
  allowed but its threat type is recorded, so analysts see near misses.
- `confidence` is the confidence in the decision itself: the top threat score for a block or sanitize, one minus it
  for an allow.
- Monitor mode decides exactly as above and reports what it decided (`policy_decision`) but lets everything through.
- Emergency stop blocks everything; a required detector that could not answer (remote judges all down) blocks under
  fail-closed and is ignored under fail-open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from firewall.engine.sensitive import find_pii, find_secrets, redact
from firewall.engine.types import SEVERITY_RANK, Finding, Severity, ThreatType

AGREEMENT_BONUS = 0.05
ALLOWED, SANITIZED, THROTTLED, BLOCKED = "allowed", "sanitized", "throttled", "blocked"
BLOCK, SANITIZE, ALLOW = "block", "sanitize", "allow"
_ACTION_RANK = {ALLOW: 0, SANITIZE: 1, BLOCK: 2}

DEFAULT_ACTIONS = {
    ThreatType.PROMPT_INJECTION: BLOCK,
    ThreatType.JAILBREAK: BLOCK,
    ThreatType.DATA_EXTRACTION: BLOCK,
    ThreatType.SYSTEM_PROMPT_LEAK: BLOCK,
    ThreatType.ENCODING_OBFUSCATION: BLOCK,
    ThreatType.PII: SANITIZE,
    ThreatType.SECRET: SANITIZE,
}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """A tenant policy as the engine sees it (built from `firewall.models.TenantPolicy`)."""

    block_threshold: float = 0.7
    flag_threshold: float = 0.4
    actions: dict[str, str] = field(default_factory=lambda: {str(k): v for k, v in DEFAULT_ACTIONS.items()})
    detectors: frozenset[str] = frozenset(
        {"signatures", "classifier", "similarity", "adversarial_suffix", "secrets", "pii", "leaks", "context"}
    )
    max_input_chars: int = 10_000
    rate_limit_per_minute: int = 600
    fail_closed: bool = False
    monitor_mode: bool = False
    emergency_stop: bool = False
    context_turns: int = 6
    webhook: bool = False  # a webhook URL is set for blocked events
    version: int = 0

    def action_for(self, threat_type: str) -> str:
        return self.actions.get(threat_type, BLOCK)


@dataclass(slots=True)
class Verdict:
    decision: str
    policy_decision: str
    confidence: float
    threat_type: str
    severity: str
    sanitized_text: str | None = None
    reason: str = ""


def threat_scores(findings: list[Finding]) -> dict[str, tuple[float, str]]:
    """Per threat type: (score with the agreement bonus, the highest severity among its findings)."""
    best: dict[str, float] = {}
    detectors: dict[str, set[str]] = {}
    severity: dict[str, str] = {}
    for f in findings:
        tt = str(f.threat_type)
        if tt == ThreatType.NONE:
            continue
        best[tt] = max(best.get(tt, 0.0), f.score)
        detectors.setdefault(tt, set()).add(f.detector)
        if SEVERITY_RANK[Severity(f.severity)] > SEVERITY_RANK[Severity(severity.get(tt, Severity.NONE))]:
            severity[tt] = str(f.severity)
    return {
        tt: (min(1.0, score + AGREEMENT_BONUS * (len(detectors[tt]) - 1)), severity.get(tt, Severity.LOW.value))
        for tt, score in best.items()
    }


def _rank(item: tuple[str, tuple[float, str]]) -> tuple[float, int]:
    return item[1][0], SEVERITY_RANK[Severity(item[1][1])]


def sanitize(text: str, normalized_text: str, findings: list[Finding], threat_types: set[str]) -> str:
    """Redact the spans behind the sanitized threat types. Secrets and PII are found in the original text (their spans
    index it); other detectors' spans index the normalized text, so when those are redacted the result is built on
    the normalized text (where the original's spans no longer line up, they are found again there)."""
    chosen = [f for f in findings if str(f.threat_type) in threat_types and f.spans]
    on_original = [f for f in chosen if f.view == "original"]
    on_normalized = [f for f in chosen if f.view == "normalized"]
    if not on_normalized:
        return redact(text, on_original)
    if on_original:
        again = [
            f for f in find_secrets(normalized_text) + find_pii(normalized_text) if str(f.threat_type) in threat_types
        ]
        on_normalized += again
    return redact(normalized_text, on_normalized)


def decide(
    findings: list[Finding],
    policy: PolicyConfig,
    *,
    text: str,
    normalized_text: str,
    unavailable: bool = False,
) -> Verdict:
    """Turn findings into a decision under `policy` (see the module docstring)."""
    scores = threat_scores(findings)
    ranked = sorted(scores.items(), key=_rank, reverse=True)
    top_type, (top_score, top_severity) = ranked[0] if ranked else (ThreatType.NONE.value, (0.0, Severity.NONE.value))

    if policy.emergency_stop:
        verdict = Verdict(
            BLOCKED, BLOCKED, 1.0, top_type, top_severity if ranked else "critical", reason="emergency_stop"
        )
        return verdict
    if unavailable and policy.fail_closed:
        verdict = Verdict(BLOCKED, BLOCKED, 1.0, top_type, top_severity if ranked else "high", reason="fail_closed")
        return _monitor(verdict, policy)

    acting = {tt: sc for tt, sc in scores.items() if sc[0] >= policy.block_threshold}
    if acting:
        action = max((policy.action_for(tt) for tt in acting), key=_ACTION_RANK.__getitem__)
        if action == BLOCK:
            tt, (score, sev) = max(((t, s) for t, s in acting.items() if policy.action_for(t) == BLOCK), key=_rank)
            return _monitor(Verdict(BLOCKED, BLOCKED, round(score, 4), tt, sev, reason="threshold"), policy)
        if action == SANITIZE:
            to_redact = {t for t in acting if policy.action_for(t) == SANITIZE}
            tt, (score, sev) = max(((t, s) for t, s in acting.items() if t in to_redact), key=_rank)
            cleaned = sanitize(text, normalized_text, findings, to_redact)
            return _monitor(
                Verdict(SANITIZED, SANITIZED, round(score, 4), tt, sev, cleaned, reason="threshold"), policy
            )
        # Every acting threat type is allow-and-log: allowed, with the threat recorded.
        return Verdict(ALLOWED, ALLOWED, round(top_score, 4), top_type, top_severity, reason="allow_action")
    if top_score >= policy.flag_threshold:
        return Verdict(ALLOWED, ALLOWED, round(1.0 - top_score, 4), top_type, top_severity, reason="flagged")
    return Verdict(
        ALLOWED, ALLOWED, round(1.0 - top_score, 4), ThreatType.NONE.value, Severity.NONE.value, reason="clean"
    )


def decided_by(verdict: Verdict, detectors: list[dict[str, Any]]) -> str:
    """Which detector the decision rests on, for the dashboard's detector contribution: the strongest finding of the
    decided threat type (`detectors` is the report, strongest first), or the policy step that decided on its own
    (emergency stop, fail closed, rate limit). Blank when nothing was found."""
    reason = verdict.reason.removeprefix("monitor:")
    if reason in ("emergency_stop", "fail_closed", "rate_limit"):
        return reason
    if verdict.threat_type == ThreatType.NONE:
        return ""
    for detector in detectors:
        if detector.get("threat_type") == verdict.threat_type:
            return str(detector.get("name", ""))[:32]
    return ""


def _monitor(verdict: Verdict, policy: PolicyConfig) -> Verdict:
    if policy.monitor_mode:
        verdict.decision = ALLOWED
        verdict.sanitized_text = None
        verdict.reason = f"monitor:{verdict.reason}"
    return verdict


def throttled_verdict() -> Verdict:
    return Verdict(THROTTLED, THROTTLED, 1.0, ThreatType.NONE.value, Severity.NONE.value, reason="rate_limit")
