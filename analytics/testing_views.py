"""The testing analytics page: per target, the attack success rate by category over its sessions, the rate's trend,
findings by mutator, and the regressions between the last two completed sessions of each target.

The view parses the range and the target picker and calls `analytics.testing_charts.red_team_page`; tenancy and
roles come from `OrgPageMixin`, so every member (viewers too) sees their own organization only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import Http404

from analytics import testing_charts
from analytics.forms import RangeForm
from analytics.selectors import Period
from analytics.views import RangePageView
from testing import selectors as testing_selectors
from testing.models import Target


class TestingRangeForm(RangeForm):
    """The overview's range (it selects sessions by creation time) and a target: blank for all targets."""

    __test__ = False  # not a pytest class

    target = forms.UUIDField(required=False, label="Target")

    def __init__(self, *args: Any, targets: list[Target], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A UUID field, not a model choice: a malformed id is a form error (400), an unknown one a 404.
        self.fields["target"].widget = forms.Select(
            choices=[("", "All targets"), *((str(target.pk), target.name) for target in targets)]
        )


class TestingView(RangePageView):
    """The red-team figures over the chosen range; an invalid range or target id shows the form's errors (400), a
    target that is not the organization's is a 404."""

    template_name = "analytics/testing.html"
    subnav = "testing"

    def get_form(self) -> TestingRangeForm:
        self.targets = list(testing_selectors.targets_for(self.organization).only("id", "name").order_by("name"))
        form = TestingRangeForm(self.request.GET, targets=self.targets)
        self.target = None
        if form.is_valid() and form.cleaned_data["target"]:
            self.target = next((t for t in self.targets if t.pk == form.cleaned_data["target"]), None)
            if self.target is None:
                raise Http404("No such target in this organization.")
        return form

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(target=self.target, target_count=len(self.targets), **kwargs)

    def page_context(self, period: Period, **kwargs: Any) -> dict[str, Any]:
        page = testing_charts.red_team_page(self.organization, period, self.target)
        return {"page": page, "charts": page.charts, "has_figures": page.has_figures}
