"""Forms of the organization report: its period (a preset or a custom range) and its e-mail schedule. Both validate
through `analytics.reports`, so the page, the command and the scheduler accept the same inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms

from analytics import reports
from analytics.forms import RangeForm
from analytics.models import ReportFrequency
from analytics.selectors import Period

RANGE_CHOICES = [
    ("7d", "Last 7 days"),
    ("weekly", "Last full week (Monday to Monday)"),
    ("monthly", "Last full month"),
    ("custom", "Custom range"),
]


class ReportRangeForm(RangeForm):
    """`?range=7d` (the default), `weekly`, `monthly`, or `?range=custom&since=…&until=…` (Until defaults to now);
    the overview's form with the report's presets and limits (`analytics.reports.report_period`)."""

    default_range = "7d"
    range = forms.ChoiceField(choices=RANGE_CHOICES, label="Period")

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, now=now, **kwargs)
        self._period: Period | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = forms.Form.clean(self)  # the report's own limits, not the overview's
        chosen = cleaned.get("range")
        if chosen is None or self.has_error("since") or self.has_error("until"):
            return cleaned
        try:
            if chosen == "custom":
                self._period = reports.report_period(
                    since=cleaned.get("since"), until=cleaned.get("until"), now=self.now
                )
            else:
                self._period = reports.report_period(preset=chosen, now=self.now)
        except reports.ReportInputError as exc:
            place = None if chosen != "custom" else "since" if cleaned.get("since") is None else "until"
            self.add_error(place, exc.message)
        return cleaned

    def period(self) -> Period:
        """The chosen period; call after `is_valid()` returned True."""
        if not self.is_valid() or self._period is None:
            raise ValueError("The period is not valid; show the form's errors instead.")
        return self._period


class ReportScheduleForm(forms.Form):
    """The schedule as an admin edits it; recipients one per line (commas work too)."""

    enabled = forms.BooleanField(required=False, label="Send the report by e-mail")
    frequency = forms.ChoiceField(choices=ReportFrequency.choices, label="Frequency")
    recipients = forms.CharField(
        required=False,
        label="Recipients",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "security@example.com"}),
        help_text=f"E-mail addresses, one per line, at most {reports.MAX_RECIPIENTS}.",
    )

    def clean_recipients(self) -> str:
        try:
            addresses = reports.parse_recipients(self.cleaned_data.get("recipients", ""))
        except reports.ReportInputError as exc:
            raise forms.ValidationError(exc.message) from exc
        return "\n".join(addresses)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("enabled") and not self.has_error("recipients") and not cleaned.get("recipients"):
            self.add_error("recipients", "An enabled report needs at least one recipient.")
        return cleaned
