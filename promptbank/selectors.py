"""Reads of the prompt bank: what an organization can see, counts for the browser, release contents."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from accounts.models import Organization
from promptbank.models import BankRelease, Prompt, ReleaseEntry


def scope_q(organization: Organization | None, *, include_global: bool = True) -> Q:
    """The rows of a bank scope: an organization's own (plus the global bank it sees), or the global bank alone."""
    if organization is None:
        return Q(organization__isnull=True)
    if include_global:
        return Q(organization=organization) | Q(organization__isnull=True)
    return Q(organization=organization)


def visible_prompts(organization: Organization | None) -> QuerySet[Prompt]:
    return Prompt.objects.filter(scope_q(organization))


def visible_releases(organization: Organization | None) -> QuerySet[BankRelease]:
    return BankRelease.objects.filter(scope_q(organization))


def active_release(organization: Organization | None) -> BankRelease | None:
    """The organization's active release, else the global bank's."""
    if organization is not None:
        own = BankRelease.objects.filter(organization=organization, is_active=True).first()
        if own is not None:
            return own
    return BankRelease.objects.filter(organization__isnull=True, is_active=True).first()


def category_counts(prompts: QuerySet[Prompt]) -> list[dict[str, Any]]:
    """`[{"category", "count"}]` for a filtered set, largest first, in one aggregate query."""
    return list(prompts.order_by().values("category").annotate(count=Count("id")).order_by("-count", "category"))


def release_prompt_versions(release: BankRelease) -> dict[Any, tuple[Any, int, str]]:
    """`{prompt_id: (prompt_version_id, version, text)}` of a release's entries."""
    rows = ReleaseEntry.objects.filter(release=release).values_list(
        "prompt_id", "prompt_version_id", "prompt_version__version", "prompt_version__text"
    )
    return {prompt_id: (version_id, version, text) for prompt_id, version_id, version, text in rows.iterator()}
