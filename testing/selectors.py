"""Testing reads, always inside one organization."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import Organization
from testing.models import Target, TestResult, TestSession, TestSuite


def targets_for(organization: Organization) -> QuerySet[Target]:
    return Target.objects.for_org(organization)


def suites_for(organization: Organization) -> QuerySet[TestSuite]:
    return TestSuite.objects.for_org(organization).select_related("release", "llm_judge")


def sessions_for(organization: Organization) -> QuerySet[TestSession]:
    return TestSession.objects.for_org(organization).select_related("target", "suite", "created_by")


def results_for(session: TestSession) -> QuerySet[TestResult]:
    return TestResult.objects.filter(session=session, organization_id=session.organization_id).select_related(
        "overridden_by"
    )


def latest_sessions(organization: Organization, limit: int = 10) -> QuerySet[TestSession]:
    return sessions_for(organization).order_by("-created_at")[:limit]


def session_counts(session: TestSession) -> dict[str, int]:
    """Results per verdict (pending included): the runner's progress and the finished session's `counts`."""
    rows = TestResult.objects.filter(session=session).values("verdict").annotate(n=Count("id"))
    return {row["verdict"]: row["n"] for row in rows}
