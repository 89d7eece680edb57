"""Reads of firewall state. Every function takes the organization and scopes to it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import F, QuerySet

from firewall.models import Evaluation, TenantPolicy, ThreatPattern

if TYPE_CHECKING:
    from accounts.models import Organization


def policy_for(organization: Organization) -> TenantPolicy:
    """The organization's policy, created with the defaults the first time it is asked for."""
    policy, _ = TenantPolicy.objects.get_or_create(organization=organization)
    return policy


def evaluations_for(
    organization: Organization,
    *,
    decision: str = "",
    threat_type: str = "",
    severity: str = "",
    direction: str = "",
    session_id: str = "",
    feedback: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Evaluation]:
    qs = Evaluation.objects.for_org(organization).select_related("api_key")
    filters = {
        "decision": decision,
        "threat_type": threat_type,
        "severity": severity,
        "direction": direction,
        "session_id": session_id,
        "feedback": feedback,
    }
    qs = qs.filter(**{k: v for k, v in filters.items() if v})
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def blocked_evaluations(organization: Organization) -> QuerySet[Evaluation]:
    """Blocked evaluations alone (a partial index serves this query)."""
    return Evaluation.objects.for_org(organization).filter(decision="blocked")


def threat_patterns_for(organization: Organization) -> QuerySet[ThreatPattern]:
    """Patterns this organization has seen, with the cross-organization counts and its own count (`org_count`).

    Nothing here carries text: a pattern is a hash, a type and counts."""
    return (
        ThreatPattern.objects.filter(sightings__organization=organization)
        .annotate(
            org_count=F("sightings__count"),
            org_first_seen=F("sightings__first_seen"),
            org_last_seen=F("sightings__last_seen"),
        )
        .order_by("-org_last_seen")
    )
