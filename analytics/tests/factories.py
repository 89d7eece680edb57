"""factory_boy factories for the analytics models (the cross-tenant URL test makes one of each in organization A)."""

from __future__ import annotations

from datetime import UTC, datetime

import factory

from accounts.tests.factories import OrganizationFactory
from analytics.models import (
    EvaluationRollup,
    Granularity,
    LatencyRollup,
    PatternRollup,
    ReportFrequency,
    ReportSchedule,
)

BUCKET = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class EvaluationRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EvaluationRollup

    organization = factory.SubFactory(OrganizationFactory)
    granularity = Granularity.HOUR
    bucket = BUCKET
    direction = "input"
    decision = "blocked"
    threat_type = "prompt_injection"
    severity = "high"
    decided_by = "signatures"
    application = "support-bot"
    count = 3
    latency_sum_ms = 4.5


class LatencyRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LatencyRollup

    organization = factory.SubFactory(OrganizationFactory)
    granularity = Granularity.HOUR
    bucket = BUCKET
    bin = 40
    count = 3


class PatternRollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PatternRollup

    organization = factory.SubFactory(OrganizationFactory)
    granularity = Granularity.HOUR
    bucket = BUCKET
    text_hash = factory.Sequence(lambda n: f"{n:064x}")
    threat_type = "prompt_injection"
    count = 2


class ReportScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReportSchedule
        django_get_or_create = ("organization",)

    organization = factory.SubFactory(OrganizationFactory)
    enabled = True
    frequency = ReportFrequency.WEEKLY
    recipients = "security@acme.test"
