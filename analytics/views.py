"""The overview page, the home page after sign-in: the active organization's key figures and charts for a time range.

The view parses the range and calls the selectors (`analytics.selectors`) and figure builders (`analytics.figures`);
tenancy and roles come from `OrgPageMixin`, so every member (viewers too) sees their own organization only.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.generic import TemplateView

from analytics import figures, selectors
from analytics.forms import RangeForm
from evalence.views import OrgPageMixin


class RangePageView(OrgPageMixin, TemplateView):
    """An analytics page over a time range: the range form (`form_class`) decides the period, an invalid one shows
    the form's errors with status 400, and a subclass adds its figures in `page_context`."""

    form_class: type[RangeForm] = RangeForm
    subnav = ""
    http_method_names = ["get", "head", "options"]

    def get_form(self) -> RangeForm:
        return self.form_class(self.request.GET)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        context = self.get_context_data(form=form, **kwargs)
        return self.render_to_response(context, status=200 if form.is_valid() else 400)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form: RangeForm = kwargs["form"]
        context.update(nav_active="analytics", subnav=self.subnav, organization=self.organization)
        if form.is_valid():
            context.update(period=form.period())
            context.update(self.page_context(context["period"], **kwargs))
        return context

    def page_context(self, period: selectors.Period, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError


class OverviewView(RangePageView):
    """Key figures and charts over the chosen range."""

    template_name = "analytics/overview.html"
    subnav = "overview"

    def page_context(self, period: selectors.Period, **kwargs: Any) -> dict[str, Any]:
        kpis = selectors.overview_kpis(self.organization, period)
        evaluate_url = self.request.build_absolute_uri(reverse("api:firewall:evaluate"))
        charts = figures.overview_charts(
            self.organization, period, evaluation_count=kpis["evaluations"], evaluate_url=evaluate_url
        )
        return {
            "kpis": kpis,
            "kpi_cards": kpi_cards(period, kpis),
            "charts": charts,
            "has_figures": any(chart.figure for chart in charts),
        }


def percent(rate: float | None) -> str:
    """A rate as the pages show it; "—" when there was nothing to divide by."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def kpi_cards(period: selectors.Period, kpis: dict[str, Any]) -> list[dict[str, Any]]:
    """The key figures as the page shows them: value, label, a note on what it counts and the list behind it."""
    since, until = period.since, period.until
    session = kpis["latest_session"]
    success = kpis["latest_attack_success"]
    if session is None:
        success_note, success_value = "No completed session yet", "—"
    else:
        success_value = percent(success["rate"])
        target = session.target.name if session.target else "a deleted target"
        success_note = f"{success['succeeded']} of {success['scored']} scored attacks, on {target}"
    return [
        {
            "key": "evaluations",
            "label": "Evaluations",
            "value": f"{kpis['evaluations']:,}",
            "note": "Inputs and outputs checked",
            "url": figures.evaluations_url(since, until),
        },
        {
            "key": "blocked",
            "label": "Blocked",
            "value": f"{kpis['blocked']:,}",
            "note": "Evaluations the firewall blocked",
            "url": figures.evaluations_url(since, until, decision="blocked"),
        },
        {
            "key": "block_rate",
            "label": "Block rate",
            "value": percent(kpis["block_rate"]),
            "note": "Blocked of all evaluations",
            "url": figures.evaluations_url(since, until, decision="blocked"),
        },
        {
            "key": "false_positive_rate",
            "label": "False-positive reports",
            "value": percent(kpis["false_positive_rate"]),
            "note": f"{kpis['false_positives']:,} of {kpis['acted']:,} blocked or sanitized",
            "url": figures.evaluations_url(since, until, feedback="false_positive"),
        },
        {
            "key": "latency_p50",
            "label": "Latency p50",
            "value": _ms(kpis["latency_p50"]),
            "note": "Median time to decide",
            "url": figures.evaluations_url(since, until),
        },
        {
            "key": "latency_p95",
            "label": "Latency p95",
            "value": _ms(kpis["latency_p95"]),
            "note": "95th percentile",
            "url": figures.evaluations_url(since, until),
        },
        {
            "key": "sessions",
            "label": "Test sessions",
            "value": f"{kpis['sessions']:,}",
            "note": "Started in this range",
            "url": figures.sessions_url(since, until),
        },
        {
            "key": "attack_success",
            "label": "Latest attack success rate",
            "value": success_value,
            "note": success_note,
            "url": figures.session_results_url(session.pk) if session else reverse("testing:index"),
        },
        {
            "key": "bank_size",
            "label": "Prompt bank",
            "value": f"{kpis['bank_size']:,}",
            "note": "Active prompts you can test with",
            "url": reverse("promptbank:index"),
        },
    ]
