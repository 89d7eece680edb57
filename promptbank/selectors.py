"""Reads of the prompt bank: what an organization can see, counts for the browser, release contents."""

from __future__ import annotations

from collections.abc import Iterable
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


# --- firewall regression figures on releases ----------------------------------------------------------------------

# `BankRelease.metrics` key under which the testing app records the firewall regression of a release.
FIREWALL_REGRESSION_KEY = "firewall_regression"


def _change(before: Any, after: Any) -> float | None:
    if isinstance(before, int | float) and isinstance(after, int | float):
        return round(after - before, 4)
    return None


def release_regressions(releases: Iterable[BankRelease]) -> dict[Any, dict[str, Any]]:
    """`{release_pk: figures}` for the releases that have a firewall regression recorded, each completed one with
    `detection_delta`, `fpr_delta` and per-category `delta`s against the nearest older release of the same scope whose
    regression completed (`previous_version`), so the releases page shows how each release moved the firewall."""
    scopes: dict[Any, list[BankRelease]] = {}
    for release in releases:
        scopes.setdefault(release.organization_id, []).append(release)
    rows: dict[Any, dict[str, Any]] = {}
    for scoped in scopes.values():
        previous: tuple[BankRelease, dict[str, Any]] | None = None
        for release in sorted(scoped, key=lambda r: (r.major, r.minor, r.patch)):
            figures = (release.metrics or {}).get(FIREWALL_REGRESSION_KEY)
            if not isinstance(figures, dict):
                continue
            row = {**figures, "previous_version": None, "detection_delta": None, "fpr_delta": None}
            categories = figures.get("by_category") or {}
            row["categories"] = [
                {"category": name, **block, "delta": None} for name, block in sorted(categories.items())
            ]
            if figures.get("status") == "completed":
                if previous is not None:
                    older_release, older = previous
                    row["previous_version"] = older_release.version
                    row["detection_delta"] = _change(older.get("detection_rate"), figures.get("detection_rate"))
                    row["fpr_delta"] = _change(older.get("false_positive_rate"), figures.get("false_positive_rate"))
                    older_categories = older.get("by_category") or {}
                    for block in row["categories"]:
                        before = (older_categories.get(block["category"]) or {}).get("detection_rate")
                        block["delta"] = _change(before, block.get("detection_rate"))
                previous = (release, figures)
            rows[release.pk] = row
    return rows
