"""The firewall's vocabularies. Threat types and severities are the engine's (`firewall.engine.types`), as choices."""

from django.db import models

from firewall.engine.types import Severity as EngineSeverity
from firewall.engine.types import ThreatType as EngineThreatType


class Decision(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    SANITIZED = "sanitized", "Sanitized"
    THROTTLED = "throttled", "Throttled"
    BLOCKED = "blocked", "Blocked"


class Action(models.TextChoices):
    BLOCK = "block", "Block"
    SANITIZE = "sanitize", "Sanitize (redact and allow)"
    ALLOW = "allow", "Allow and log"


class FailMode(models.TextChoices):
    OPEN = "open", "Fail open (allow when a required detector is unavailable)"
    CLOSED = "closed", "Fail closed (block when a required detector is unavailable)"


class Direction(models.TextChoices):
    INPUT = "input", "Input"
    OUTPUT = "output", "Output"


# Labels as people write them: "PII", not "Pii".
_THREAT_LABELS = {"pii": "PII", "secret": "Secret (keys, tokens)"}


def _threat_label(value: str) -> str:
    return _THREAT_LABELS.get(value, value.replace("_", " ").capitalize())


ThreatType = models.TextChoices("ThreatType", [(t.name, (t.value, _threat_label(t.value))) for t in EngineThreatType])
Severity = models.TextChoices("Severity", [(s.name, (s.value, s.value.capitalize())) for s in EngineSeverity])


class Feedback(models.TextChoices):
    FALSE_POSITIVE = "false_positive", "False positive"
    FALSE_NEGATIVE = "false_negative", "False negative"
    CORRECT = "correct", "Correct"


class EvaluationSource(models.TextChoices):
    API = "api", "API"
    BATCH = "batch", "Batch API"
    PLAYGROUND = "playground", "Playground"
    SCAN = "scan", "firewall_scan command"
    TEST = "test", "Test session"


class SignatureSource(models.TextChoices):
    BUILTIN = "builtin", "Built in"
    CURATED = "curated", "Curated"
    LEARNED = "learned", "Learned"


class DetectorStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    SHADOW = "shadow", "Shadow (scored on live traffic, never enforced)"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"


# Detectors a policy can switch on or off. "models" (remote judges) is off unless a tenant turns it on.
DETECTORS = (
    "signatures",
    "classifier",
    "similarity",
    "adversarial_suffix",
    "secrets",
    "pii",
    "leaks",
    "context",
    "models",
)
DEFAULT_DETECTORS = {name: name != "models" for name in DETECTORS}

DEFAULT_ACTIONS = {
    EngineThreatType.PROMPT_INJECTION.value: Action.BLOCK.value,
    EngineThreatType.JAILBREAK.value: Action.BLOCK.value,
    EngineThreatType.DATA_EXTRACTION.value: Action.BLOCK.value,
    EngineThreatType.SYSTEM_PROMPT_LEAK.value: Action.BLOCK.value,
    EngineThreatType.ENCODING_OBFUSCATION.value: Action.BLOCK.value,
    EngineThreatType.PII.value: Action.SANITIZE.value,
    EngineThreatType.SECRET.value: Action.SANITIZE.value,
}
