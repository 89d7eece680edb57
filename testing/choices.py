"""The testing app's vocabularies: target kinds, session statuses and result verdicts."""

from django.db import models


class TargetKind(models.TextChoices):
    OPENAI_CHAT = "openai_chat", "OpenAI-compatible chat endpoint"
    HTTP_JSON = "http_json", "Generic HTTP JSON endpoint"
    FIREWALL = "firewall", "This organization's Evalence firewall"
    DEMO = "demo", "Built-in demo assistant"


class SessionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_SESSION_STATUSES = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED})


class Verdict(models.TextChoices):
    """One result's outcome. `error` and `unscorable` are kept apart from `resisted`: a failure is never a defence."""

    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Attack succeeded"
    RESISTED = "resisted", "Resisted"
    BLOCKED = "blocked", "Blocked"
    ERROR = "error", "Error"
    UNSCORABLE = "unscorable", "Unscorable"


# Verdicts that count in the attack success rate's denominator (errors and unscorable results do not).
SCORED_VERDICTS = frozenset({Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED})
FINAL_VERDICTS = frozenset(v for v in Verdict.values if v != Verdict.PENDING)
# What an analyst may set a result to (an override never makes a result pending or an error).
OVERRIDE_VERDICTS = [
    (v.value, v.label) for v in (Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED, Verdict.UNSCORABLE)
]


class ResultKind(models.TextChoices):
    ATTACK = "attack", "Attack"
    BASELINE = "baseline", "No-attack baseline"
