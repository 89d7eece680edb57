"""The firewall's state: each organization's policy, every evaluation, threat patterns shared by hash only, signature
rules, remote model detectors and the versions of the trained classifier.

Writes go through `firewall.services`; the engine (`firewall.engine`) never sees these models, only plain values.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from evalence.crypto import EncryptedTextField
from evalence.tenancy import TenantModel
from firewall.choices import (
    DEFAULT_ACTIONS,
    DEFAULT_DETECTORS,
    Decision,
    DetectorStatus,
    Direction,
    EvaluationSource,
    FailMode,
    Feedback,
    Severity,
    SignatureSource,
    ThreatType,
)


def default_actions() -> dict[str, str]:
    return dict(DEFAULT_ACTIONS)


def default_detectors() -> dict[str, bool]:
    return dict(DEFAULT_DETECTORS)


class TenantPolicy(TenantModel):
    """How one organization's firewall turns detector scores into decisions. Every change is audited."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    block_threshold = models.FloatField(
        default=0.7, help_text="A threat scored at or above this gets its threat type's action (0 to 1)."
    )
    flag_threshold = models.FloatField(
        default=0.4, help_text="A threat scored at or above this (below the block threshold) is allowed and logged."
    )
    actions = models.JSONField(default=default_actions, help_text="Action per threat type: block, sanitize or allow.")
    detectors = models.JSONField(default=default_detectors, help_text="Detector name → on/off.")
    max_input_chars = models.PositiveIntegerField(default=10_000)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=600, help_text="Evaluations per API key per minute; 0 switches the limit off."
    )
    fail_mode = models.CharField(max_length=8, choices=FailMode.choices, default=FailMode.OPEN)
    monitor_mode = models.BooleanField(default=False, help_text="Decide and log, but never block or sanitize.")
    emergency_stop = models.BooleanField(default=False, help_text="Block every evaluation at once.")
    emergency_stop_reason = models.CharField(max_length=500, blank=True, default="")
    emergency_stop_at = models.DateTimeField(null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    webhook_secret = EncryptedTextField(blank=True, default="", help_text="HMAC-SHA256 key for webhook signatures.")
    context_turns = models.PositiveSmallIntegerField(
        default=6, help_text="Recent turns of a session scanned together with a new one (0: no context)."
    )
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "tenant policy"
        verbose_name_plural = "tenant policies"

    def __str__(self) -> str:
        return f"Policy of {self.organization_id} (v{self.version})"


class Evaluation(TenantModel):
    """One call to the firewall: what came in, what each detector said, what was decided and how fast."""

    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.INPUT)
    source = models.CharField(max_length=16, choices=EvaluationSource.choices, default=EvaluationSource.API)
    text = models.TextField()
    text_length = models.PositiveIntegerField(default=0)
    text_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the normalized text.")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    policy_decision = models.CharField(
        max_length=16, choices=Decision.choices, help_text="What the policy decided; differs in monitor mode."
    )
    confidence = models.FloatField(default=0.0)
    threat_type = models.CharField(max_length=32, choices=ThreatType.choices, default="none")
    severity = models.CharField(max_length=16, choices=Severity.choices, default="none")
    sanitized_text = models.TextField(null=True, blank=True)
    latency_ms = models.FloatField(default=0.0)
    decided_by = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="The detector behind the decision (or emergency_stop, fail_closed, rate_limit); blank when clean.",
    )
    shadow_version = models.CharField(
        max_length=32, blank=True, default="", help_text="The shadow classifier version that also scored this input."
    )
    shadow_decision = models.CharField(max_length=16, blank=True, default="", help_text="What it would have decided.")
    shadow_score = models.FloatField(null=True, blank=True)
    shadow_latency_ms = models.FloatField(null=True, blank=True)
    detectors = models.JSONField(default=list, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="Metadata, session turns scanned, leak inputs.")
    session_id = models.CharField(max_length=200, blank=True, default="")
    end_user_id = models.CharField(max_length=200, blank=True, default="")
    application = models.CharField(max_length=200, blank=True, default="", help_text="metadata.application")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    detector_version = models.CharField(max_length=32, blank=True, default="")
    feedback = models.CharField(max_length=16, choices=Feedback.choices, blank=True, default="")
    feedback_note = models.TextField(blank=True, default="")
    feedback_at = models.DateTimeField(null=True, blank=True)
    feedback_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="fw_eval_org_time"),
            models.Index(fields=["organization", "decision", "-created_at"], name="fw_eval_org_decision"),
            models.Index(fields=["organization", "threat_type", "-created_at"], name="fw_eval_org_threat"),
            models.Index(fields=["organization", "session_id", "-created_at"], name="fw_eval_org_session"),
            models.Index(fields=["organization", "api_key", "-created_at"], name="fw_eval_org_key"),
            models.Index(
                fields=["organization", "shadow_version", "-created_at"],
                name="fw_eval_org_shadow",
                condition=~Q(shadow_version=""),
            ),
            models.Index(
                fields=["organization", "-created_at"], name="fw_eval_org_blocked", condition=Q(decision="blocked")
            ),
            models.Index(
                fields=["organization", "feedback", "-created_at"],
                name="fw_eval_org_feedback",
                condition=~Q(feedback=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.threat_type} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class ThreatPattern(models.Model):
    """A blocked attack known by the hash of its normalized text only, counted across organizations.

    No tenant's text is stored here: a tenant sees the counts, and its own evaluations behind its sightings.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pattern_hash = models.CharField(max_length=64, unique=True)
    threat_type = models.CharField(max_length=32, choices=ThreatType.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default="none")
    detection_count = models.PositiveIntegerField(default=0)
    organizations_affected = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    signature = models.BinaryField(
        blank=True, default=b"", help_text="MinHash of the normalized text (no text): near-pattern search."
    )
    promoted_prompt = models.ForeignKey(
        "promptbank.Prompt",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The global bank prompt a curator made of this pattern.",
    )

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.threat_type} {self.pattern_hash[:12]}… x{self.detection_count}"


class ThreatPatternSighting(TenantModel):
    """One organization's count of a threat pattern (what makes `organizations_affected` countable)."""

    pattern = models.ForeignKey(ThreatPattern, on_delete=models.CASCADE, related_name="sightings")
    count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    last_evaluation = models.ForeignKey(Evaluation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-last_seen"]
        constraints = [models.UniqueConstraint(fields=["organization", "pattern"], name="fw_sighting_unique")]


class Signature(TenantModel):
    """A signature rule (regular expression) with its id, threat type, severity and weight.

    Global rows (organization NULL) are curated for everyone; an organization may add its own. Compiled once per
    process and recompiled when a row changes.
    """

    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=True
    )
    allows_global_rows = True

    rule_id = models.CharField(max_length=32)
    pattern = models.TextField()
    threat_type = models.CharField(max_length=32, choices=ThreatType.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices, default="medium")
    weight = models.FloatField(default=0.8, help_text="The score a match gives, in (0, 1].")
    description = models.CharField(max_length=300, blank=True, default="")
    source = models.CharField(max_length=16, choices=SignatureSource.choices, default=SignatureSource.CURATED)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["rule_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "rule_id"], name="fw_signature_org_rule"),
            models.UniqueConstraint(
                fields=["rule_id"], condition=Q(organization__isnull=True), name="fw_signature_global_rule"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.description or self.pattern[:60]}"


class DetectorModel(TenantModel):
    """A remote model used as a judge: an OpenAI-compatible chat endpoint, behind a circuit breaker."""

    name = models.CharField(max_length=100)
    base_url = models.URLField(max_length=500, help_text="The API root, e.g. https://api.example.com/v1")
    model = models.CharField(max_length=200)
    api_key = EncryptedTextField(blank=True, default="")
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower runs first.")
    timeout_s = models.FloatField(default=2.0)
    failure_threshold = models.PositiveSmallIntegerField(
        default=3, help_text="Failures in a row that open the breaker."
    )
    recovery_timeout_s = models.FloatField(default=30.0, help_text="Seconds an open breaker waits before a trial call.")
    extra_params = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="fw_detector_model_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"


class DetectorVersion(models.Model):
    """One trained classifier artifact with its metrics on the bank's held-out split.

    A shared version (no organization) is trained on the shared bank and serves every organization; an
    organization's own version is trained on the shared bank plus that organization's own prompts (its accepted
    findings and reports), so what it learned stays out of everyone else's model, and serves only that organization.
    One version is active per scope (the shared one, and at most one per organization); shadow runs are shared only.
    """

    version = models.PositiveIntegerField(unique=True)
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the shared classifier. Set: this organization's own, trained with its own prompts.",
    )
    status = models.CharField(max_length=16, choices=DetectorStatus.choices, default=DetectorStatus.CANDIDATE)
    artifact = models.BinaryField()
    artifact_sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    training = models.JSONField(default=dict, blank=True, help_text="Counts, parameters and data the run used.")
    reason = models.TextField(blank=True, default="", help_text="Why it was activated or not.")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="active", organization__isnull=True),
                name="fw_detector_version_one_shared_active",
            ),
            models.UniqueConstraint(
                fields=["organization", "status"],
                condition=Q(status="active", organization__isnull=False),
                name="fw_detector_version_one_active_per_org",
            ),
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="shadow"), name="fw_detector_version_one_shadow"
            ),
        ]

    def __str__(self) -> str:
        scope = f", {self.organization.slug}" if self.organization_id else ""
        return f"classifier v{self.version} ({self.status}{scope})"
