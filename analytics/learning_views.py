"""The learning page: the active organization's learning loop over a time range — its stages as counts (a funnel),
its events over time, and a timeline of the latest events with links to what each one is about.

Thin: the range comes from the overview's `RangeForm`, the figures from `analytics.learning_stats` and
`analytics.learning_charts`; `OrgPageMixin` scopes it to the active organization (every member may read it).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.generic import TemplateView

from analytics.forms import RangeForm
from analytics.learning_charts import EVENT_LABELS, learning_charts
from analytics.learning_stats import LearningStats, learning_stats
from evalence.views import OrgPageMixin
from firewall.selectors import classifier_status
from promptbank.models import LearningEvent

# Where the object behind an event's source is shown (all of them tenant-scoped pages).
SOURCE_PAGES = {
    "testing.TestResult": ("testing:result_detail", "Test result"),
    "testing.TestSession": ("testing:session_detail", "Test session"),
    "firewall.Evaluation": ("firewall:evaluation_detail", "Evaluation"),
    "promptbank.BankRelease": ("promptbank:release_detail", "Release"),
    "promptbank.IngestionRun": ("promptbank:import_detail", "Import"),
}


def event_links(event: LearningEvent) -> list[tuple[str, str]]:
    """(label, url) of the pages an event points at: its source object and its prompt (global or the
    organization's own: the only prompts an organization's events name)."""
    links = []
    page = SOURCE_PAGES.get(event.source_type)
    if page is not None and _is_uuid(event.source_id):
        links.append((page[1], reverse(page[0], args=[event.source_id])))
    elif event.source_type == "promptbank.Submission":
        links.append(("Submissions", reverse("promptbank:submissions")))
    prompt_scope = getattr(event, "prompt_organization_id", None)  # annotated by `learning_stats`
    if event.prompt_id is not None and prompt_scope in (None, event.organization_id):
        links.append(("Prompt", reverse("promptbank:prompt_detail", args=[event.prompt_id])))
    return links


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class LearningView(OrgPageMixin, TemplateView):
    """The loop over the chosen range; an invalid range shows the form's errors (status 400)."""

    template_name = "analytics/learning.html"
    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = RangeForm(request.GET)
        context = self.get_context_data(form=form, **kwargs)
        return self.render_to_response(context, status=200 if form.is_valid() else 400)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form: RangeForm = kwargs["form"]
        context.update(
            nav_active="analytics",
            subnav="learning",
            organization=self.organization,
            classifier=classifier_status(self.organization),
        )
        if not form.is_valid():
            return context
        period = form.period()
        stats: LearningStats = learning_stats(self.organization, period)
        timeline = [
            {"event": event, "label": EVENT_LABELS.get(event.event_type, event.event_type), "links": event_links(event)}
            for event in stats.latest
        ]
        context.update(
            period=period,
            stats=stats,
            charts=learning_charts(stats, period),
            timeline=timeline,
        )
        return context
