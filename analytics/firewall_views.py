"""The firewall analytics page: the active organization's firewall traffic per API key and application, decisions
and threats over time, top blocked inputs, false positives and the deciding detectors, for a time range.

Thin: the range comes from the overview's `RangeForm`, the figures from `analytics.firewall_stats` and
`analytics.firewall_charts`; `OrgPageMixin` scopes it to the active organization (viewers included).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from analytics.figures import THREAT_LABELS
from analytics.firewall_charts import ACTED, detector_label, firewall_charts, list_url
from analytics.firewall_stats import firewall_stats
from analytics.selectors import Period
from analytics.views import RangePageView, percent
from firewall.choices import Decision, Feedback


class FirewallAnalyticsView(RangePageView):
    """Firewall figures over the chosen range."""

    template_name = "analytics/firewall.html"
    subnav = "firewall"

    def page_context(self, period: Period, **kwargs: Any) -> dict[str, Any]:
        stats = firewall_stats(self.organization, period)
        evaluate_url = self.request.build_absolute_uri(reverse("api:firewall:evaluate"))
        charts = firewall_charts(stats, period, evaluate_url=evaluate_url)
        since, until = period.since, period.until
        # The list behind each table row, as the charts link theirs.
        for group in [*stats.by_key, *stats.by_application]:
            group["url"] = list_url(since, until, **group["filter"]) if group["filter"] is not None else None
            group["block_rate_label"] = percent(group["block_rate"])
        for row in stats.top_blocked:
            row["url"] = list_url(since, until, decision=Decision.BLOCKED, text_hash=row["text_hash"])
            row["threat_label"] = THREAT_LABELS.get(row["threat_type"], row["threat_type"])
        for row in stats.false_positives["latest"]:
            row["threat_label"] = THREAT_LABELS.get(row["threat_type"], row["threat_type"])
            row["detector_label"] = detector_label(row["decided_by"])
        return {
            "stats": stats,
            "block_rate": percent(stats.block_rate),
            "fp_rate": percent(stats.false_positives["rate"]),
            "charts": charts,
            "group_sections": [
                {"chart": charts[0], "groups": stats.by_key, "more": stats.more_keys, "noun": "API key"},
                {
                    "chart": charts[1],
                    "groups": stats.by_application,
                    "more": stats.more_applications,
                    "noun": "Application",
                },
            ],
            "time_charts": charts[2:],
            "has_figures": any(chart.figure for chart in charts),
            "links": {
                "all": list_url(since, until),
                "blocked": list_url(since, until, decision=Decision.BLOCKED),
                "false_positives": list_url(since, until, decision=list(ACTED), feedback=Feedback.FALSE_POSITIVE),
            },
        }
