"""The engine's vocabulary: what a detector is given and what it returns. Plain Python: no Django inside the engine,
so it runs the same in a web request, an RQ job, a command and a benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ThreatType(StrEnum):
    PROMPT_INJECTION = "prompt_injection"
    JAILBREAK = "jailbreak"
    DATA_EXTRACTION = "data_extraction"
    SYSTEM_PROMPT_LEAK = "system_prompt_leak"
    PII = "pii"
    SECRET = "secret"  # noqa: S105 - a threat type, not a password
    ENCODING_OBFUSCATION = "encoding_obfuscation"
    NONE = "none"


class Severity(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_RANK = {Severity.NONE: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


class Direction(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Span:
    """Where evidence sits in the text the detector looked at (character offsets, end exclusive)."""

    start: int
    end: int


@dataclass(slots=True)
class Finding:
    """One detector's verdict: a score in [0, 1], the threat it points to, and the evidence behind it."""

    detector: str
    score: float
    threat_type: ThreatType = ThreatType.NONE
    severity: Severity = Severity.NONE
    evidence: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    rule_id: str = ""
    # Which view of the input matched: "original", "normalized", or a decoding chain such as "base64" or "hex>rot13".
    view: str = "original"

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A text the detectors scan: the normalized input, or a payload decoded from it."""

    text: str
    view: str  # "normalized" or the decoding chain that produced it, e.g. "base64", "url>base64"
    depth: int = 0
    # In a context scan (earlier turns joined before the new text), where the new text starts: everything before it
    # was judged in earlier requests, so signatures report only matches reaching past it and the classifier's intent
    # windows start no earlier than one window before it. 0: the whole text is new.
    since: int = 0
