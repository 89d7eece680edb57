"""The prompt bank: prompts and their history, usage statistics, review queue, releases, ingestion runs and the
learning events that tie the product's loop together.

Global rows (the shared bank) have `organization = NULL` and are read-only to tenants; an organization's private
rows are its own. Writes go through `promptbank.services` and the ingestion pipeline (`promptbank.pipeline`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from evalence.jobs import JobModel
from evalence.tenancy import TenantModel
from promptbank.choices import (
    Category,
    IngestionFormat,
    IngestionSource,
    Label,
    LearningEventType,
    Severity,
    SubmissionStatus,
)


def _global_org_field() -> models.ForeignKey:
    return models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=True,
        help_text="Empty for the global bank, shared read-only with every organization.",
    )


class Prompt(TenantModel):
    """One attack or benign prompt. Its current state; every state it had is a `PromptVersion`."""

    organization = _global_org_field()
    text = models.TextField()
    normalized_hash = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 of the normalized text: the exact-duplicate key."
    )
    label = models.CharField(max_length=8, choices=Label.choices, db_index=True)
    category = models.CharField(max_length=32, choices=Category.choices, db_index=True)
    category_confidence = models.FloatField(
        null=True, blank=True, help_text="Set when the pipeline filled the category in (0 to 1)."
    )
    subcategory = models.CharField(max_length=64, blank=True, default="")
    attack_type = models.CharField(max_length=64, blank=True, default="")
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=16, blank=True, default="", db_index=True)
    source = models.CharField(max_length=64, db_index=True)
    source_ref = models.CharField(max_length=500, blank=True, default="")
    license = models.CharField(max_length=64, blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True, db_index=True)
    quality_score = models.FloatField(default=0.0)
    variant_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="variants")
    mutator = models.CharField(max_length=32, blank=True, default="")
    near_duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="near_duplicates"
    )
    near_duplicate_similarity = models.FloatField(null=True, blank=True)
    minhash = models.BinaryField(
        null=True, blank=True, editable=False, help_text="MinHash signature of the normalized text's shingles."
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    allows_global_rows = True

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "normalized_hash"],
                condition=Q(organization__isnull=False),
                name="prompt_unique_text_per_org",
            ),
            models.UniqueConstraint(
                fields=["normalized_hash"], condition=Q(organization__isnull=True), name="prompt_unique_text_global"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "is_active", "category"], name="prompt_org_active_cat"),
            models.Index(fields=["organization", "label", "-created_at"], name="prompt_org_label_created"),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.text[:60]}"

    @property
    def is_global(self) -> bool:
        return self.organization_id is None

    # The fields a version snapshots (everything a curator can change, and the text).
    VERSIONED_FIELDS = (
        "text",
        "label",
        "category",
        "subcategory",
        "attack_type",
        "severity",
        "tags",
        "language",
        "source",
        "source_ref",
        "license",
        "is_active",
    )

    def snapshot(self) -> dict:
        return {name: getattr(self, name) for name in self.VERSIONED_FIELDS}


class PromptVersion(TenantModel):
    """The full state of a prompt at one version. Immutable: releases point at these rows."""

    organization = _global_org_field()
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    fields = models.JSONField(default=dict, help_text="The other versioned fields at this version.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_note = models.CharField(max_length=500, blank=True, default="")

    allows_global_rows = True

    class Meta:
        ordering = ["prompt", "-version"]
        constraints = [models.UniqueConstraint(fields=["prompt", "version"], name="prompt_version_unique")]

    def __str__(self) -> str:
        return f"{self.prompt_id} v{self.version}"


class PromptStats(TenantModel):
    """How one prompt fares for one organization. Per organization, so one tenant's results never show in another's."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="stats")
    times_used = models.PositiveIntegerField(default=0)
    firewall_evaluations = models.PositiveIntegerField(default=0)
    firewall_detections = models.PositiveIntegerField(default=0)
    test_runs = models.PositiveIntegerField(default=0)
    attack_successes = models.PositiveIntegerField(default=0)
    false_positives = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "prompt stats"
        constraints = [models.UniqueConstraint(fields=["organization", "prompt"], name="prompt_stats_unique")]

    def __str__(self) -> str:
        return f"stats of {self.prompt_id}"

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    @property
    def detection_rate(self) -> float | None:
        return self._rate(self.firewall_detections, self.firewall_evaluations)

    @property
    def attack_success_rate(self) -> float | None:
        return self._rate(self.attack_successes, self.test_runs)

    @property
    def false_positive_rate(self) -> float | None:
        """For benign prompts: how often the firewall flagged them."""
        return self._rate(self.false_positives, self.firewall_evaluations)


class Submission(TenantModel):
    """A proposed prompt waiting for a curator (from users, integrations, red-team findings or blocked traffic)."""

    text = models.TextField()
    normalized_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    label = models.CharField(max_length=8, choices=Label.choices, default=Label.ATTACK)
    category = models.CharField(max_length=32, choices=Category.choices, blank=True, default="")
    severity = models.CharField(max_length=8, choices=Severity.choices, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=64, default="user", db_index=True)
    source_ref = models.CharField(max_length=500, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    occurrences = models.PositiveIntegerField(default=1, help_text="How many times this candidate was seen.")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=SubmissionStatus.choices, default=SubmissionStatus.PENDING, db_index=True
    )
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitter_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "status", "-created_at"], name="submission_org_status")]

    def __str__(self) -> str:
        return f"{self.status}: {self.text[:60]}"


class BankRelease(TenantModel):
    """A frozen, semantically versioned snapshot of a bank scope: the exact prompt versions it contains."""

    organization = _global_org_field()
    version = models.CharField(max_length=32)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    notes = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=False, db_index=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt_count = models.PositiveIntegerField(default=0)
    attack_count = models.PositiveIntegerField(default=0)
    benign_count = models.PositiveIntegerField(default=0)
    prompt_versions = models.ManyToManyField(PromptVersion, through="ReleaseEntry", related_name="releases")
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Figures recorded against this release (e.g. the firewall regression)."
    )

    allows_global_rows = True

    class Meta:
        ordering = ["-major", "-minor", "-patch"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "major", "minor", "patch"],
                condition=Q(organization__isnull=False),
                name="release_unique_version_per_org",
            ),
            models.UniqueConstraint(
                fields=["major", "minor", "patch"],
                condition=Q(organization__isnull=True),
                name="release_unique_version_global",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(is_active=True, organization__isnull=False),
                name="release_one_active_per_org",
            ),
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True, organization__isnull=True),
                name="release_one_active_global",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"


class ReleaseEntry(models.Model):
    """One prompt version in one release."""

    release = models.ForeignKey(BankRelease, on_delete=models.CASCADE, related_name="entries")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name_plural = "release entries"
        constraints = [models.UniqueConstraint(fields=["release", "prompt"], name="release_entry_unique_prompt")]

    def __str__(self) -> str:
        return f"{self.release} ∋ {self.prompt_version}"


# The counts every import reports, in this order (runs, pipeline results, the import command's last line).
COUNT_FIELDS = ("received", "accepted", "duplicates", "near_duplicates", "rejected")


class IngestionRun(JobModel):
    """One import through the pipeline: its source, counts, and per-line errors. Resumable from `lines_done`."""

    organization = _global_org_field()
    channel = models.CharField(max_length=16, choices=IngestionSource.choices, default=IngestionSource.API)
    format = models.CharField(max_length=8, choices=IngestionFormat.choices)
    source_name = models.CharField(max_length=64, help_text="The `source` given to prompts that do not name one.")
    license = models.CharField(max_length=64, blank=True, default="")
    filename = models.CharField(max_length=255, blank=True, default="")
    file_path = models.CharField(max_length=1000, blank=True, default="", help_text="Stored upload, read by the job.")
    file_sha256 = models.CharField(max_length=64, blank=True, default="")
    options = models.JSONField(default=dict, blank=True)
    received = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    near_duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    lines_done = models.PositiveIntegerField(default=0, help_text="Records committed so far (resume point).")
    errors = models.JSONField(default=list, blank=True, help_text="[{line, reason}], the first ones.")
    errors_total = models.PositiveIntegerField(default=0)

    allows_global_rows = True

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.filename or self.source_name} ({self.status})"

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNT_FIELDS}


class LearningPolicy(TenantModel):
    """How much of the learning loop runs by itself for one organization (admins edit it; every change audited).

    Red-team findings and blocked traffic always become submissions; these switches decide whether they are accepted
    into the bank without a curator, and which blocked inputs are worth keeping as candidates."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="learning_policy"
    )
    auto_accept_findings = models.BooleanField(
        default=False, help_text="Accept red-team findings into the bank at once (else a curator reviews them)."
    )
    auto_accept_false_positives = models.BooleanField(
        default=False, help_text="Accept false-positive reports into the bank as benign prompts at once."
    )
    harvest_blocked = models.BooleanField(
        default=True, help_text="Turn high-confidence blocked inputs into candidate prompts (clustered)."
    )
    harvest_min_confidence = models.FloatField(default=0.9)
    harvested_until = models.DateTimeField(
        null=True, blank=True, help_text="Blocked inputs up to here have been considered (the harvest job's cursor)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"learning policy of {self.organization_id}"


class LearningEvent(TenantModel):
    """One step of the learning loop: what happened, to what, what was done and with what result."""

    organization = _global_org_field()
    event_type = models.CharField(max_length=48, choices=LearningEventType.choices, db_index=True)
    source_type = models.CharField(max_length=64, help_text="app_label.Model of the source object.")
    source_id = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=200)
    result = models.JSONField(default=dict, blank=True)
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    allows_global_rows = True

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "event_type", "-created_at"], name="learning_org_type")]

    def __str__(self) -> str:
        return f"{self.event_type}: {self.action}"
