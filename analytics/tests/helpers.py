"""Rows placed at chosen times for the analytics tests (`created_at` is set on insert, so it is moved after)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from firewall.models import Evaluation
from firewall.tests.factories import EvaluationFactory
from testing.models import TestSession
from testing.tests.factories import TestSessionFactory

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def evaluation_at(organization: Any, at: datetime, **fields: Any) -> Evaluation:
    row = EvaluationFactory(organization=organization, **fields)
    Evaluation.objects.filter(pk=row.pk).update(created_at=at)
    row.created_at = at
    return row


def session_at(organization: Any, at: datetime, **fields: Any) -> TestSession:
    row = TestSessionFactory(organization=organization, **fields)
    TestSession.objects.filter(pk=row.pk).update(created_at=at)
    row.created_at = at
    return row
