"""Reads of firewall state. Every function takes the organization and scopes to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import F, QuerySet

from firewall.models import DetectorVersion, Evaluation, TenantPolicy, ThreatPattern

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


@dataclass(frozen=True)
class ClassifierStatus:
    """Which classifier serves an organization, and its latest own version when that one was not activated."""

    serving: DetectorVersion | None  # its own active version, else the shared one (None: no classifier yet)
    own: bool  # True when `serving` is the organization's own version
    latest_own: DetectorVersion | None  # the newest own version, if it differs from `serving` (why it is not used)
    own_prompts: int  # prompts of its own an own version learns from


def classifier_status(organization: Organization) -> ClassifierStatus:
    """The classifier an organization's evaluations use (its own, trained with its own prompts, or the shared one)
    and its newest own version when that one is not serving. Never another organization's version."""
    from firewall.detectors import active_version, own_prompts

    own_active = active_version(organization, fallback=False)
    serving = own_active or active_version()
    latest_own = (
        DetectorVersion.objects.defer("artifact").filter(organization=organization).order_by("-version").first()
    )
    if latest_own is not None and serving is not None and latest_own.pk == serving.pk:
        latest_own = None
    return ClassifierStatus(
        serving=serving,
        own=own_active is not None,
        latest_own=latest_own,
        own_prompts=own_prompts(organization).count(),
    )
