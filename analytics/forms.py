"""The overview's time range: a preset (last hour, 24 hours, 7 days, 30 days) or a custom From/Until, turned into the
`Period` every selector of the page reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from analytics.selectors import Period

PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = "7d"
RANGE_CHOICES = [
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("custom", "Custom range"),
]
# Longer spans are for the reports (and the rollups that come with them), not for a page built from raw rows.
MAX_CUSTOM_SPAN = timedelta(days=92)
MIN_CUSTOM_SPAN = timedelta(minutes=5)


class RangeForm(forms.Form):
    """`?range=7d` (the default when nothing is given), or `?range=custom&since=…&until=…` (Until defaults to now)."""

    default_range = DEFAULT_RANGE
    range = forms.ChoiceField(choices=RANGE_CHOICES, label="Time range")
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound and not self.data.get("range"):
            # No preset named: From/Until alone (a bookmarked link) is a custom range; nothing at all, the default.
            data = self.data.copy()
            data["range"] = "custom" if data.get("since") or data.get("until") else self.default_range
            self.data = data
        # Whole seconds: the window's bounds end up in the links of every chart, and readable links are nicer.
        self.now = (now or timezone.now()).replace(microsecond=0)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        chosen = cleaned.get("range")
        since, until = cleaned.get("since"), cleaned.get("until")
        if chosen != "custom":
            return cleaned
        if since is None:
            if not self.has_error("since"):
                self.add_error("since", "A custom range needs a start.")
            return cleaned
        until = until or self.now
        if since >= until:
            self.add_error("until", "Until must be after From.")
        elif until - since > MAX_CUSTOM_SPAN:
            self.add_error("until", f"A custom range spans at most {MAX_CUSTOM_SPAN.days} days.")
        elif until - since < MIN_CUSTOM_SPAN:
            self.add_error(
                "until", f"A custom range spans at least {int(MIN_CUSTOM_SPAN.total_seconds() // 60)} minutes."
            )
        elif since > self.now:
            self.add_error("since", "From is in the future: nothing has happened there yet.")
        cleaned["until"] = until
        return cleaned

    def period(self) -> Period:
        """The chosen period; call after `is_valid()` returned True."""
        if not self.is_valid():
            raise ValueError("The time range is not valid; show the form's errors instead.")
        chosen = self.cleaned_data["range"]
        if chosen in PRESETS:
            return Period.ending(self.now, PRESETS[chosen], preset=chosen)
        return Period(since=self.cleaned_data["since"], until=self.cleaned_data["until"], preset="custom")
