"""A session's figures: attack success rates with Wilson intervals, the no-attack baseline, and session comparison.

Every figure is aggregated in the database (grouped `Count(..., filter=Q(...))`), so a summary costs a handful of
queries whatever the session's size. The rate's denominator holds scored results only (succeeded, resisted, blocked):
an error or an unscorable answer says nothing about the target's defence, so it never counts either way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Substr

from promptbank.choices import SEVERITY_RANK
from testing.choices import SCORED_VERDICTS, ResultKind, Verdict
from testing.models import TestResult, TestSession

TOP_PROMPTS = 20
TOP_PROMPT_TEXT_CHARS = 200
COMPARISON_TEXT_CHARS = 300
ROUND = 4


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion: unlike the normal approximation it stays inside [0, 1] and is
    honest at 0/n and n/n, which is where small red-team categories usually are. (0.0, 0.0) when total == 0."""
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"Wilson interval needs 0 <= successes <= total, got {successes}/{total}.")
    if total == 0:
        return (0.0, 0.0)
    p = successes / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _rate(succeeded: int, scored: int) -> float | None:
    """None when nothing was scored: "no result" must never read as "0% of attacks worked"."""
    return round(succeeded / scored, ROUND) if scored else None


def _ci(succeeded: int, scored: int) -> list[float]:
    low, high = wilson_interval(succeeded, scored)
    return [round(low, ROUND), round(high, ROUND)]


def _count_annotations() -> dict[str, Count]:
    """Per-verdict counts as filtered aggregates: one pass over the rows, in SQL."""
    return {
        "total": Count("id"),
        "succeeded": Count("id", filter=Q(verdict=Verdict.SUCCEEDED)),
        "resisted": Count("id", filter=Q(verdict=Verdict.RESISTED)),
        "blocked": Count("id", filter=Q(verdict=Verdict.BLOCKED)),
        "errors": Count("id", filter=Q(verdict=Verdict.ERROR)),
        "unscorable": Count("id", filter=Q(verdict=Verdict.UNSCORABLE)),
        "pending": Count("id", filter=Q(verdict=Verdict.PENDING)),
        "overridden": Count("id", filter=Q(overridden_at__isnull=False)),
    }


_COUNT_KEYS = ("total", "succeeded", "resisted", "blocked", "errors", "unscorable", "pending")


def _block(row: dict[str, Any] | None) -> dict[str, Any]:
    """One group's figures from its aggregated counts (`row` may be None for an empty group)."""
    counts = {key: int((row or {}).get(key) or 0) for key in _COUNT_KEYS}
    scored = counts["succeeded"] + counts["resisted"] + counts["blocked"]
    return {
        "total": counts["total"],
        "scored": scored,
        "succeeded": counts["succeeded"],
        "resisted": counts["resisted"],
        "blocked": counts["blocked"],
        "errors": counts["errors"],
        "unscorable": counts["unscorable"],
        "pending": counts["pending"],
        "rate": _rate(counts["succeeded"], scored),
        "ci95": _ci(counts["succeeded"], scored),
    }


def _grouped(queryset: QuerySet[TestResult], column: str) -> dict[str, dict[str, Any]]:
    rows = queryset.values(column).annotate(**_count_annotations()).order_by(column)
    return {row[column]: _block(row) for row in rows}


def _percentile(queryset: QuerySet[TestResult], count: int, fraction: float) -> float | None:
    """Linear-interpolated percentile (PostgreSQL's percentile_cont) of `latency_ms`, read with an ordered
    LIMIT/OFFSET of two rows so that it is computed in SQL the same way on every backend."""
    if count == 0:
        return None
    position = fraction * (count - 1)
    lower = math.floor(position)
    values = list(queryset.order_by("latency_ms").values_list("latency_ms", flat=True)[lower : lower + 2])
    if len(values) == 1:
        return round(values[0], 2)
    return round(values[0] + (values[1] - values[0]) * (position - lower), 2)


def _top_prompts(attacks: QuerySet[TestResult]) -> list[dict[str, Any]]:
    """The prompts with the most successes across their variants and generations. Rows whose bank prompt was
    deleted still group, by their original text."""
    rows = (
        attacks.values("prompt_id", "category", text=Substr("original_text", 1, TOP_PROMPT_TEXT_CHARS))
        .annotate(
            succeeded=Count("id", filter=Q(verdict=Verdict.SUCCEEDED)),
            scored=Count("id", filter=Q(verdict__in=SCORED_VERDICTS)),
        )
        .filter(succeeded__gt=0)
        # Same successes: the prompt tried fewer times has the higher rate.
        .order_by("-succeeded", "scored", "text")[:TOP_PROMPTS]
    )
    top = []
    for row in rows:
        scored = row["scored"]
        top.append(
            {
                "prompt_id": str(row["prompt_id"]) if row["prompt_id"] else None,
                "text": row["text"],
                "category": row["category"],
                "succeeded": row["succeeded"],
                "scored": scored,
                "rate": _rate(row["succeeded"], scored),
            }
        )
    return top


def _severity_order(by_severity: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(by_severity.items(), key=lambda item: -SEVERITY_RANK.get(item[0], -1)))


def session_summary(session: TestSession) -> dict[str, Any]:
    """The session's figures, JSON-ready (stored in `TestSession.summary` and served by the API and reports).

    Attack rows only in the top level and the `by_*` groups; the benign control prompts only in `baseline`, where a
    resisted verdict is a refusal. Rates are 0.0 (with a [0.0, 0.0] interval) when nothing was scored."""
    results = TestResult.objects.filter(session=session).order_by()
    attacks = results.filter(kind=ResultKind.ATTACK)
    by_kind = {row["kind"]: row for row in results.values("kind").annotate(**_count_annotations())}
    attack_row = by_kind.get(ResultKind.ATTACK)
    overall = _block(attack_row)

    baseline_row = by_kind.get(ResultKind.BASELINE)
    base = _block(baseline_row)
    refused = base["resisted"]
    baseline = {
        "total": base["total"],
        "scored": base["scored"],
        "succeeded": base["succeeded"],
        "rate": base["rate"],
        "ci95": base["ci95"],
        "refused": refused,
        "refusal_rate": _rate(refused, base["scored"]),
        "errors": base["errors"],
        "unscorable": base["unscorable"],
        "overridden": int((baseline_row or {}).get("overridden") or 0),
    }

    timed = attacks.filter(latency_ms__isnull=False)
    timed_count = timed.count()
    return {
        "attack_success_rate": overall["rate"],
        "ci95": overall["ci95"],
        "scored": overall["scored"],
        "succeeded": overall["succeeded"],
        "resisted": overall["resisted"],
        "blocked": overall["blocked"],
        "errors": overall["errors"],
        "unscorable": overall["unscorable"],
        "pending": overall["pending"],
        "total": overall["total"],
        "by_category": _grouped(attacks, "category"),
        "by_severity": _severity_order(_grouped(attacks, "severity")),
        "by_mutator": _grouped(attacks, "mutator"),
        "top_prompts": _top_prompts(attacks),
        "baseline": baseline,
        "latency_ms": {"p50": _percentile(timed, timed_count, 0.50), "p95": _percentile(timed, timed_count, 0.95)},
        "overridden": int((attack_row or {}).get("overridden") or 0),
    }


# --- comparison -------------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Two sessions of one organization, item by item: what the head run broke, fixed, or left broken."""

    base: TestSession
    head: TestSession
    new_findings: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    still_failing: list[dict[str, Any]] = field(default_factory=list)
    rate_change: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": _session_ref(self.base),
            "head": _session_ref(self.head),
            "counts": {
                "new_findings": len(self.new_findings),
                "fixed": len(self.fixed),
                "still_failing": len(self.still_failing),
            },
            "new_findings": self.new_findings,
            "fixed": self.fixed,
            "still_failing": self.still_failing,
            "rate_change": self.rate_change,
        }


def _session_ref(session: TestSession) -> dict[str, Any]:
    return {
        "id": str(session.pk),
        "name": str(session),
        "status": session.status,
        "created_at": session.created_at.isoformat() if session.created_at else None,
    }


def _match_key(prompt_id: Any, mutator: str, generation: int, text: str | None) -> tuple[Any, ...]:
    """The item's identity across sessions: its bank prompt, mutator and generation; when the prompt was deleted
    (the FK is set to NULL in every session at once), a hash of the text that was sent."""
    if prompt_id is not None:
        return ("prompt", str(prompt_id), mutator, generation)
    digest = hashlib.sha256((text or "").encode("utf-8")).hexdigest()
    return ("text", digest, mutator, generation)


def _items(session: TestSession) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every attack item of a session by match key, without its long texts (the sent text is read only for
    rows whose prompt is gone, which need it for their key)."""
    rows = (
        TestResult.objects.filter(session=session, kind=ResultKind.ATTACK)
        .order_by("sequence")
        .values("id", "item_key", "prompt_id", "mutator", "generation", "verdict", "category", "severity")
    )
    orphans = dict(
        TestResult.objects.filter(session=session, kind=ResultKind.ATTACK, prompt__isnull=True).values_list(
            "id", "prompt_text"
        )
    )
    items = {}
    for row in rows.iterator(chunk_size=2000):
        key = _match_key(row["prompt_id"], row["mutator"], row["generation"], orphans.get(row["id"]))
        items.setdefault(key, row)
    return items


def _excerpts(ids: Iterable[Any]) -> dict[Any, str]:
    ids = list(ids)
    excerpts: dict[Any, str] = {}
    for start in range(0, len(ids), 500):  # stays under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        excerpts.update(
            TestResult.objects.filter(id__in=chunk)
            .annotate(excerpt=Substr("prompt_text", 1, COMPARISON_TEXT_CHARS))
            .values_list("id", "excerpt")
        )
    return excerpts


def _category_rates(session: TestSession) -> tuple[float, dict[str, float]]:
    attacks = TestResult.objects.filter(session=session, kind=ResultKind.ATTACK).order_by()
    overall = _block(attacks.aggregate(**_count_annotations()))["rate"]
    return overall, {category: block["rate"] for category, block in _grouped(attacks, "category").items()}


def _delta(base: float | None, head: float | None) -> float | None:
    return round(head - base, ROUND) if base is not None and head is not None else None


def compare_sessions(base: TestSession, head: TestSession) -> Comparison:
    """Compare `head` against `base`: new findings (succeeded in head, not succeeded or absent in base), fixed
    (succeeded in base, resisted or blocked in head), still failing (succeeded in both). An item that errored in head
    is neither fixed nor failing: nothing is known about it."""
    if base.organization_id != head.organization_id:
        raise ValueError("Both sessions must belong to the same organization to be compared.")
    base_items, head_items = _items(base), _items(head)
    listed: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]] = []
    for key, head_row in head_items.items():
        base_row = base_items.get(key)
        if head_row["verdict"] == Verdict.SUCCEEDED:
            bucket = "still_failing" if base_row and base_row["verdict"] == Verdict.SUCCEEDED else "new_findings"
            listed.append((bucket, head_row, base_row, head_row))
        elif (
            base_row
            and base_row["verdict"] == Verdict.SUCCEEDED
            and head_row["verdict"]
            in (
                Verdict.RESISTED,
                Verdict.BLOCKED,
            )
        ):
            listed.append(("fixed", head_row, base_row, head_row))

    excerpts = _excerpts(shown["id"] for _, shown, _, _ in listed)
    comparison = Comparison(base=base, head=head)
    for bucket, shown, base_row, head_row in listed:
        getattr(comparison, bucket).append(
            {
                "item_key": shown["item_key"],
                "category": shown["category"],
                "severity": shown["severity"],
                "mutator": shown["mutator"],
                "prompt_text": excerpts.get(shown["id"], ""),
                "base_verdict": base_row["verdict"] if base_row else None,
                "head_verdict": head_row["verdict"] if head_row else None,
            }
        )
    for entries in (comparison.new_findings, comparison.fixed, comparison.still_failing):
        entries.sort(key=lambda e: (-SEVERITY_RANK.get(e["severity"], -1), e["category"], e["item_key"]))

    base_rate, base_categories = _category_rates(base)
    head_rate, head_categories = _category_rates(head)
    comparison.rate_change = {
        "base": base_rate,
        "head": head_rate,
        "delta": _delta(base_rate, head_rate),
        "by_category": {
            category: {
                "base": base_categories.get(category),
                "head": head_categories.get(category),
                "delta": _delta(base_categories.get(category), head_categories.get(category)),
            }
            for category in sorted(set(base_categories) | set(head_categories))
        },
    }
    return comparison
