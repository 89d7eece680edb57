"""The firewall's threat patterns as a source for the bank's nearest-attack search (`promptbank.nearest`).

The bank cannot import the firewall (ARCHITECTURE.md), so the firewall registers this source when it starts. It hands
over only what a search may use: a pattern's signature, hash and counts, never text; and an organization sees a
pattern only if it was sent that text itself, or at least `SHARED_PATTERN_ORGS` organizations were (so a pattern
that one other tenant saw does not even reveal that it exists)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Max

from accounts.models import Organization
from firewall.models import ThreatPattern, ThreatPatternSighting
from promptbank.nearest import LOAD_CHUNK, Nearest

SHARED_PATTERN_ORGS = 2


class ThreatPatternSource:
    """`promptbank.nearest.PatternSource` over `ThreatPattern` rows that carry a signature."""

    def _signed(self) -> Any:
        return ThreatPattern.objects.exclude(signature=b"").order_by()

    def signatures(self) -> Iterable[tuple[Any, bytes | memoryview | None]]:
        return self._signed().values_list("pk", "signature").iterator(chunk_size=LOAD_CHUNK)

    def fingerprint(self) -> tuple[Any, ...]:
        row = self._signed().aggregate(n=Count("pk"), latest=Max("first_seen"))
        return row["n"], row["latest"]

    def visible(self, organization: Organization, estimates: dict[Any, float]) -> list[Nearest]:
        seen = set(
            ThreatPatternSighting.objects.filter(organization=organization, pattern_id__in=list(estimates)).values_list(
                "pattern_id", flat=True
            )
        )
        rows = ThreatPattern.objects.filter(pk__in=list(estimates)).only(
            "pk", "pattern_hash", "threat_type", "detection_count", "organizations_affected", "first_seen", "last_seen"
        )
        return [
            Nearest(
                kind="pattern",
                id=str(row.pk),
                score=round(estimates[row.pk], 4),
                threat_type=row.threat_type,
                pattern_hash=row.pattern_hash,
                detection_count=row.detection_count,
                organizations_affected=row.organizations_affected,
                first_seen=row.first_seen,
                last_seen=row.last_seen,
            )
            for row in rows
            if row.pk in seen or row.organizations_affected >= SHARED_PATTERN_ORGS
        ]
