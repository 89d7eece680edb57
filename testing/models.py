"""Red-team testing: targets to attack, suites of bank prompts, sessions that run them and one result per planned item.

A session plans its items up front (one `TestResult` row per prompt x mutator x generation, unique per session), and
the runner fills in the pending ones. So a resumed session continues where it stopped and nothing is stored twice.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from evalence.crypto import EncryptedTextField
from evalence.tenancy import TenantModel
from promptbank.choices import Category, Severity
from testing.choices import FINISHED_SESSION_STATUSES, ResultKind, SessionStatus, TargetKind, Verdict


class Target(TenantModel):
    """An LLM application to attack. Credentials are encrypted at rest and never shown back in full."""

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.OPENAI_CHAT)
    description = models.TextField(blank=True, default="")
    # openai_chat: the API root (…/v1); http_json: the full URL; firewall and demo: blank (served by Evalence).
    base_url = models.CharField(max_length=500, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    api_key = EncryptedTextField(blank=True, default="")
    # http_json only: the request shape and where the answer is in the response.
    method = models.CharField(max_length=8, default="POST")
    headers = EncryptedTextField(blank=True, default="", help_text="JSON object of extra headers (encrypted).")
    body_template = models.TextField(blank=True, default="", help_text="JSON with a {{prompt}} slot.")
    response_path = models.CharField(max_length=200, blank=True, default="", help_text="e.g. data.reply")
    extra_params = models.JSONField(default=dict, blank=True, help_text="Merged into each chat request's body.")
    system_prompt = models.TextField(blank=True, default="")
    canary = models.CharField(max_length=100, blank=True, default="", help_text="A token planted in the system prompt.")
    timeout_s = models.FloatField(default=30.0, validators=[MinValueValidator(0.1), MaxValueValidator(600)])
    concurrency = models.PositiveSmallIntegerField(default=4, validators=[MinValueValidator(1), MaxValueValidator(256)])
    requests_per_minute = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(100_000)], help_text="0 means no limit."
    )
    max_retries = models.PositiveSmallIntegerField(default=3, validators=[MaxValueValidator(10)])
    is_active = models.BooleanField(default=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="testing_target_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class TestSuite(TenantModel):
    """A saved selection from the bank plus the mutators and generations applied at run time."""

    __test__ = False  # not a pytest class

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    categories = models.JSONField(default=list, blank=True)
    severities = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    sources = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=16, blank=True, default="")
    release = models.ForeignKey(
        "promptbank.BankRelease",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Pin the suite to a bank release (its exact prompt versions); blank uses the live bank.",
    )
    max_prompts = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1), MaxValueValidator(100_000)])
    random_seed = models.IntegerField(default=0)
    mutators = models.JSONField(default=list, blank=True, help_text="Bank mutators applied to each prompt.")
    include_original = models.BooleanField(default=True, help_text="Send the unmutated prompt too.")
    generations = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1), MaxValueValidator(20)])
    baseline_prompts = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(1000)],
        help_text="Benign control prompts sent alongside, for the no-attack baseline.",
    )
    llm_judge = models.ForeignKey(
        "firewall.DetectorModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Optional: an OpenAI-compatible model that judges the responses too.",
    )
    is_builtin = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="testing_suite_name")]

    def __str__(self) -> str:
        return self.name


class TestSession(TenantModel):
    """One run of a suite against a target; the job row the RQ worker moves through its states."""

    __test__ = False

    name = models.CharField(max_length=200, blank=True, default="")
    target = models.ForeignKey(Target, null=True, on_delete=models.SET_NULL, related_name="sessions")
    suite = models.ForeignKey(TestSuite, null=True, on_delete=models.SET_NULL, related_name="sessions")
    # What the session ran with, frozen at creation (no secrets): the report stays true if the target or suite change.
    config = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.QUEUED, db_index=True)
    total_samples = models.PositiveIntegerField(default=0)
    completed_samples = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="Results per verdict.")
    summary = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker took the session up.")
    worker = models.CharField(max_length=200, blank=True, default="", help_text="The worker that holds the session.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    rq_job_id = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="testing_sess_org_time"),
            models.Index(fields=["organization", "target", "-created_at"], name="testing_sess_org_target"),
        ]

    def __str__(self) -> str:
        return self.name or f"Session {self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_SESSION_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class TestResult(TenantModel):
    """One planned item of a session (prompt x mutator x generation): what was sent, the answer, the verdict."""

    __test__ = False

    session = models.ForeignKey(TestSession, on_delete=models.CASCADE, related_name="results")
    item_key = models.CharField(max_length=120, help_text="prompt id : mutator : generation — unique per session.")
    kind = models.CharField(max_length=8, choices=ResultKind.choices, default=ResultKind.ATTACK)
    prompt = models.ForeignKey("promptbank.Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt_version = models.PositiveIntegerField(default=1)
    original_text = models.TextField(help_text="The bank prompt before mutation.")
    prompt_text = models.TextField(help_text="The text actually sent.")
    category = models.CharField(max_length=32, choices=Category.choices, db_index=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    mutator = models.CharField(max_length=32, blank=True, default="")
    generation = models.PositiveSmallIntegerField(default=0)
    sequence = models.PositiveIntegerField(default=0, help_text="Order in the plan.")
    verdict = models.CharField(max_length=12, choices=Verdict.choices, default=Verdict.PENDING, db_index=True)
    judge_verdict = models.CharField(
        max_length=12, choices=Verdict.choices, blank=True, default="", help_text="The judges' verdict."
    )
    reason = models.TextField(blank=True, default="")
    evidence = models.JSONField(default=list, blank=True)
    judges = models.JSONField(default=list, blank=True, help_text="Every judge's verdict, reason and evidence.")
    response = models.TextField(blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    completed_at = models.DateTimeField(null=True, blank=True)
    overridden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overridden_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.TextField(blank=True, default="")
    submission = models.ForeignKey(
        "promptbank.Submission", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["sequence"]
        constraints = [models.UniqueConstraint(fields=["session", "item_key"], name="testing_result_item_once")]
        indexes = [
            models.Index(fields=["session", "verdict"], name="testing_result_sess_verdict"),
            models.Index(fields=["session", "sequence"], name="testing_result_sess_seq"),
            models.Index(fields=["organization", "kind", "-completed_at"], name="testing_result_org_done"),
            # The analytics' most effective prompts: successes per prompt over a time range, from the index alone.
            models.Index(
                fields=["organization", "-completed_at", "prompt"],
                name="testing_result_found",
                condition=Q(verdict=Verdict.SUCCEEDED, kind=ResultKind.ATTACK),
            ),
            models.Index(
                fields=["organization", "-completed_at"],
                name="testing_result_succeeded",
                condition=Q(verdict=Verdict.SUCCEEDED),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_key} → {self.verdict}"

    @property
    def is_overridden(self) -> bool:
        return self.overridden_at is not None
