"""The engine's entry point: one input in, every detector's findings out, in a bounded amount of work.

`Engine.scan` normalizes the text, expands decoded candidates, and runs the detectors the policy switches on:

- on every input: signatures, the classifier and similarity to known attacks over each candidate view; adversarial
  suffixes (optimization attacks' token salad) over the input's lines and the decoded payloads; secrets and PII over
  the original text (their spans index it, so they can be redacted);
- on outputs also: system-prompt leak (when a system prompt is sent along) and canary leak (when a canary is);
- conversation context: with earlier turns of the session, the turns and the new text are joined and scanned again;
  what only the joined text shows, and what reaches into the new text, is reported by the `context` detector (a
  payload split over several messages; an attack wholly in an earlier turn was judged when that turn was new);
- an attack found only inside a decoded payload, or in text that hid characters, adds an `obfuscation` finding, since
  hiding an attack is itself a threat;
- remote model judges (optional) after the local detectors, through a `JudgeChain`-like object; when none can
  answer, `unavailable` is set and the tenant's fail mode decides.

Detectors are objects with `scan(candidates) -> list[Finding]`, so a classifier or index can be swapped per process.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from firewall.engine import adversarial, leaks, sensitive
from firewall.engine.decode import expand
from firewall.engine.normalize import Normalized, normalize
from firewall.engine.signatures import SignatureSet, builtin_signatures
from firewall.engine.types import Candidate, Finding, Severity, ThreatType

OBFUSCATION_DETECTOR = "obfuscation"
CONTEXT_DETECTOR = "context"
# Of earlier turns joined before the new text: a payload split over turns sits at the boundary, so the boundary and a
# few turns before it are enough, and they fit in the classifier's first chunk (classifier.MAX_CHARS) with the start
# of the new text; every request with a session pays this scan, so it stays one chunk, not three.
CONTEXT_MAX_CHARS = 3_000
ATTACK_TYPES = frozenset(
    {
        ThreatType.PROMPT_INJECTION,
        ThreatType.JAILBREAK,
        ThreatType.DATA_EXTRACTION,
        ThreatType.SYSTEM_PROMPT_LEAK,
    }
)
ALL_DETECTORS = frozenset(
    {"signatures", "classifier", "similarity", "adversarial_suffix", "secrets", "pii", "leaks", "context", "models"}
)


class CandidateDetector(Protocol):
    def scan(self, candidates: list[Candidate]) -> list[Finding]: ...


class Judge(Protocol):
    def judge(self, text: str, direction: str) -> Finding: ...


@dataclass(slots=True)
class EngineInput:
    text: str
    direction: str = "input"
    system_prompt: str = ""
    canary: str = ""
    context: Sequence[str] = ()  # earlier turns of the session, oldest first
    detectors: frozenset[str] = ALL_DETECTORS - {"models"}


@dataclass(slots=True)
class EngineResult:
    findings: list[Finding]
    normalized: Normalized
    candidates: list[Candidate]
    text_hash: str
    unavailable: bool = False
    unavailable_reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    def detector_report(self) -> list[dict[str, Any]]:
        """The findings as the API shows them: one entry per finding, strongest first."""
        return [
            {
                "name": f.detector,
                "score": round(f.score, 4),
                "threat_type": str(f.threat_type),
                "severity": str(f.severity),
                "evidence": list(f.evidence),
                "rule_id": f.rule_id,
                "view": f.view,
                "spans": [[s.start, s.end] for s in f.spans],
            }
            for f in sorted(self.findings, key=lambda f: f.score, reverse=True)
        ]


def text_hash(normalized_text: str) -> str:
    """The pattern key of an input: SHA-256 of its normalized, case-folded text (no text leaves a tenant, only this)."""
    return hashlib.sha256(normalized_text.casefold().encode("utf-8", "surrogatepass")).hexdigest()


class Engine:
    """Detectors assembled once per process (per organization when it has its own signatures or prompts)."""

    def __init__(
        self,
        *,
        signatures: SignatureSet | None = None,
        classifier: CandidateDetector | None = None,
        similarity: CandidateDetector | None = None,
        judges: Judge | None = None,
        max_depth: int = 2,
        max_candidates: int = 16,
    ):
        self.signatures = signatures if signatures is not None else builtin_signatures()
        self.classifier = classifier
        self.similarity = similarity
        self.judges = judges
        self.max_depth = max_depth
        self.max_candidates = max_candidates

    def scan(self, request: EngineInput, *, timings: bool = False) -> EngineResult:
        on = request.detectors
        clock = time.perf_counter
        marks: dict[str, float] = {}
        t0 = clock()
        normalized = normalize(request.text)
        candidates = expand(
            normalized.text,
            extra=normalized.payloads,
            max_depth=self.max_depth,
            max_candidates=self.max_candidates,
        )
        if timings:
            marks["normalize_decode"] = clock() - t0
        findings: list[Finding] = []
        attack_detectors: list[tuple[str, CandidateDetector | None]] = [
            ("signatures", self.signatures),
            ("classifier", self.classifier),
            ("similarity", self.similarity),
        ]
        for name, detector in attack_detectors:
            if name in on and detector is not None:
                t = clock()
                findings += detector.scan(candidates)
                if timings:
                    marks[name] = clock() - t
        if "adversarial_suffix" in on:
            t = clock()
            findings += adversarial.scan(request.text, candidates, normalized.text)
            if timings:
                marks["adversarial_suffix"] = clock() - t
        t = clock()
        if "secrets" in on:
            findings += _on_original(sensitive.find_secrets(request.text))
        if "pii" in on:
            findings += _on_original(sensitive.find_pii(request.text))
        if timings:
            marks["secrets_pii"] = clock() - t
        if request.direction == "output" and "leaks" in on:
            if request.system_prompt:
                found = leaks.system_prompt_leak(request.text, request.system_prompt)
                if found is not None:
                    findings.append(found)
            if request.canary:
                found = leaks.canary_leak(request.text, request.canary)
                if found is not None:
                    findings.append(found)
        if "context" in on and request.context:
            t = clock()
            findings += self._context_findings(request, normalized.text, findings)
            if timings:
                marks["context"] = clock() - t
        obfuscation = _obfuscation_finding(findings, normalized)
        if obfuscation is not None:
            findings.append(obfuscation)

        result = EngineResult(findings, normalized, candidates, text_hash(normalized.text))
        if "models" in on and self.judges is not None:
            t = clock()
            try:
                findings.append(self.judges.judge(request.text, request.direction))
            except Exception as exc:
                result.unavailable = True
                result.unavailable_reason = str(exc)[:300] or type(exc).__name__
            if timings:
                marks["models"] = clock() - t
        if timings:
            result.timings_ms = {k: round(v * 1000, 3) for k, v in marks.items()}
        return result

    def _context_findings(self, request: EngineInput, new_text: str, current: list[Finding]) -> list[Finding]:
        """Scan the earlier turns joined with the new text (`new_text`, normalized); keep what the new text alone did
        not show and what reaches into it: the joined text's normalized view marks where the new text starts
        (`Candidate.since`), since what lies wholly in earlier turns was judged when they were new. Without that, one
        attack in a session would be found again in each of the next turns."""
        earlier = normalize("\n".join(request.context)[-CONTEXT_MAX_CHARS:]).text
        if not earlier:
            return []
        joined = f"{earlier} {new_text}"  # as normalizing the two joined would give: whitespace runs become one space
        candidates = expand(joined, max_depth=1, max_candidates=4)
        candidates[0] = Candidate(joined, candidates[0].view, 0, since=len(earlier) + 1)
        seen_rules = {f.rule_id for f in current if f.rule_id}
        best_now = {str(f.threat_type): f.score for f in current}
        found: list[Finding] = []
        for detector in (self.signatures, self.classifier):
            if detector is None:
                continue
            for f in detector.scan(candidates):
                if f.rule_id and f.rule_id in seen_rules:
                    continue
                if f.score <= best_now.get(str(f.threat_type), 0.0):
                    continue
                found.append(
                    Finding(
                        detector=CONTEXT_DETECTOR,
                        score=f.score,
                        threat_type=f.threat_type,
                        severity=f.severity,
                        evidence=[f"across {len(request.context) + 1} turns ({f.detector}): {e}" for e in f.evidence],
                        rule_id=f.rule_id,
                        view="context",
                    )
                )
        return found


def _on_original(findings: list[Finding]) -> list[Finding]:
    for f in findings:
        f.view = "original"
    return findings


def _obfuscation_finding(findings: list[Finding], normalized: Normalized) -> Finding | None:
    """An attack seen only through a decoding (or in text that hid characters) is also an obfuscation attempt."""
    attacks = [f for f in findings if f.threat_type in ATTACK_TYPES]
    if not attacks:
        return None
    plain = [f for f in attacks if f.view in ("normalized", "original", "context")]
    decoded = [f for f in attacks if f not in plain]
    hidden = normalized.obfuscated
    if decoded and (not plain or max(f.score for f in decoded) > max(f.score for f in plain)):
        top = max(decoded, key=lambda f: f.score)
        return Finding(
            detector=OBFUSCATION_DETECTOR,
            score=top.score,
            threat_type=ThreatType.ENCODING_OBFUSCATION,
            severity=top.severity,
            evidence=[f"attack hidden in {top.view} encoding"],
            view=top.view,
        )
    if hidden and plain:
        kinds = sorted(normalized.removed) + (["homoglyphs"] if normalized.homoglyphs_folded else [])
        top = max(plain, key=lambda f: f.score)
        return Finding(
            detector=OBFUSCATION_DETECTOR,
            score=min(top.score, 0.9),
            threat_type=ThreatType.ENCODING_OBFUSCATION,
            severity=Severity.MEDIUM,
            evidence=[f"attack text hid characters: {', '.join(kinds)}"],
            view="normalized",
        )
    return None
