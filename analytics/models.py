"""Rollups of firewall traffic for long ranges, and the organization report's schedule.

Rollups are counts, never text: one row per organization, bucket (an hour or a day) and combination of the
dimensions the pages group by. They are derived data — `analytics.rollups` rebuilds any range of them from the
evaluations — so a rollup row is never edited by hand. `RollupCursor` says up to when they are complete; what lies
after it is read from the evaluations themselves, so the pages are never stale.
"""

from __future__ import annotations

from django.db import models

from evalence.tenancy import TenantModel


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class EvaluationRollup(TenantModel):
    """How many evaluations one bucket holds for one combination of direction, decision, threat, deciding detector,
    application and API key, with their summed latency (for a mean)."""

    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField(help_text="Start of the hour or of the day (in TIME_ZONE).")
    direction = models.CharField(max_length=8)
    decision = models.CharField(max_length=16)
    threat_type = models.CharField(max_length=32)
    severity = models.CharField(max_length=16)
    decided_by = models.CharField(max_length=32, blank=True, default="")
    application = models.CharField(max_length=200, blank=True, default="")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    count = models.PositiveIntegerField()
    latency_sum_ms = models.FloatField(default=0.0)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "granularity", "bucket"], name="an_evalroll_org_bucket"),
            # the builder replaces a range of buckets of every organization at once
            models.Index(fields=["granularity", "bucket"], name="an_evalroll_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.decision}: {self.count}"


class LatencyRollup(TenantModel):
    """A latency histogram: how many evaluations of one bucket fell in each latency bin (`analytics.rollups.BINS`,
    log-spaced), so percentiles over any range of buckets come from summed bins."""

    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField()
    bin = models.PositiveSmallIntegerField()
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "granularity", "bucket"], name="an_latroll_org_bucket"),
            # the builder replaces a range of buckets of every organization at once
            models.Index(fields=["granularity", "bucket"], name="an_latroll_bucket"),
        ]


class PatternRollup(TenantModel):
    """Blocked evaluations per bucket and normalized-text hash (the threat pattern's key): the top patterns of a long
    range without grouping millions of rows."""

    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField()
    text_hash = models.CharField(max_length=64)
    threat_type = models.CharField(max_length=32)
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["organization", "granularity", "bucket"], name="an_patroll_org_bucket"),
            # the builder replaces a range of buckets of every organization at once
            models.Index(fields=["granularity", "bucket"], name="an_patroll_bucket"),
        ]


class RollupCursor(models.Model):
    """Rollups of this granularity are complete for every bucket that starts before `complete_until` (all
    organizations at once: the job rolls up everyone's traffic of an hour together)."""

    granularity = models.CharField(max_length=8, choices=Granularity.choices, unique=True)
    complete_until = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.granularity} rollups complete until {self.complete_until.isoformat()}"


class ReportFrequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly (the previous 7 days, sent on Mondays)"
    MONTHLY = "monthly", "Monthly (the previous calendar month, sent on the 1st)"


class ReportSchedule(TenantModel):
    """The organization's report by e-mail: admins choose the frequency and the recipients; the scheduler job sends
    it when due and records when it last went out (and the last error, if delivery failed)."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="report_schedule"
    )
    enabled = models.BooleanField(default=False)
    frequency = models.CharField(max_length=8, choices=ReportFrequency.choices, default=ReportFrequency.WEEKLY)
    recipients = models.TextField(blank=True, default="", help_text="E-mail addresses, one per line.")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_period_end = models.DateTimeField(null=True, blank=True, help_text="End of the last period sent.")
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"{self.get_frequency_display()} report ({state})"
