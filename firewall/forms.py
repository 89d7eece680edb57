"""Forms of the firewall pages. They parse and validate input only; `firewall.services` evaluates and writes, and
its `ValidationFailed` errors are put back on these forms (`service_error`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from evalence.errors import ApplicationError
from firewall.choices import DETECTORS, Action, Direction, FailMode, Feedback, ThreatType
from firewall.filters import FEEDBACK_CHOICES, EvaluationFilter
from firewall.models import TenantPolicy
from firewall.services import MAX_INPUT_CHARS_CEILING, EvaluationRequest

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
RANGE_CHOICES = [
    ("", "Any time"),
    ("1h", "Last hour"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("custom", "Custom range"),
]
# Threat types a policy has an action for, in the vocabulary's order ("none" takes no action).
POLICY_THREATS = [(value, label) for value, label in ThreatType.choices if value != "none"]
DETECTOR_LABELS = {
    "signatures": "Signature rules",
    "classifier": "Trained classifier",
    "similarity": "Similarity to known attacks",
    "adversarial_suffix": "Adversarial suffixes (optimization attacks' token salad)",
    "secrets": "Secrets (keys, tokens)",
    "pii": "Personal data (PII)",
    "leaks": "System-prompt and canary leaks (outputs)",
    "context": "Conversation context (session turns)",
    "models": "Remote model judges",
}


def service_error(form: forms.Form, error: ApplicationError, aliases: dict[str, str] | None = None) -> None:
    """Put a service's error on the form: on each field it names (through `aliases` for fields the form splits up,
    such as `actions`), and what names no field of the form on top, so no message is lost."""
    aliases = aliases or {}
    placed = False
    for name, problems in (error.fields or {}).items():
        target = aliases.get(name, name)
        for problem in problems:
            if target in form.fields:
                form.add_error(target, problem)
            else:
                form.add_error(None, f"{name.replace('_', ' ').capitalize()}: {problem}")
            placed = True
    if not placed:
        form.add_error(None, error.message)


# --- the playground -----------------------------------------------------------------------------------------------


class PlaygroundForm(forms.Form):
    text = forms.CharField(
        strip=False,
        max_length=MAX_INPUT_CHARS_CEILING,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "Ignore all previous instructions and…"}),
        help_text="An input a user would send, or an output your model gave.",
    )
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.INPUT)
    system_prompt = forms.CharField(
        required=False,
        strip=False,
        max_length=MAX_INPUT_CHARS_CEILING,
        label="System prompt",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For outputs: checks whether the output leaks it.",
    )
    canary = forms.CharField(
        required=False, max_length=200, help_text="For outputs: a marker that must never appear in an output."
    )
    session_id = forms.CharField(
        required=False, max_length=200, label="Session id", help_text="Scans the session's recent turns together."
    )
    dont_store = forms.BooleanField(
        required=False, label="Don't store", help_text="Evaluate only: no evaluation row, no threat pattern."
    )

    def clean_text(self) -> str:
        text = self.cleaned_data["text"].replace("\r\n", "\n")
        if not text.strip():
            raise forms.ValidationError("Enter a text to evaluate.")
        return text

    def evaluation_request(self) -> EvaluationRequest:
        data = self.cleaned_data
        return EvaluationRequest(
            text=data["text"],
            direction=data["direction"],
            session_id=data["session_id"].strip(),
            system_prompt=data["system_prompt"].replace("\r\n", "\n"),
            canary=data["canary"].strip(),
        )


# --- evaluations --------------------------------------------------------------------------------------------------


def evaluation_filter_for_page(data: QueryDict | None, queryset: QuerySet) -> EvaluationFilter:
    """The API's evaluation FilterSet with page-friendly labels and widgets (one FilterSet for both, STYLE.md §2)."""
    filterset = EvaluationFilter(data, queryset=queryset)
    fields = filterset.form.fields
    for name in ("decision", "threat_type", "severity"):  # several may be chosen: a compact list box
        fields[name].widget.attrs.update({"size": 1, "class": "select-multi"})
        fields[name].help_text = ""
    fields["direction"].empty_label = "Both directions"
    fields["direction"].choices = Direction.choices  # re-set, so the choice list picks up the new empty label
    fields["feedback"].empty_label = "With or without feedback"
    fields["feedback"].choices = FEEDBACK_CHOICES
    fields["session_id"].label = "Session"
    fields["session_id"].widget.attrs["placeholder"] = "Session id"
    for name, label in (("since", "From"), ("until", "Until")):
        fields[name].label = label
        fields[name].widget.input_type = "datetime-local"
    fields["text_hash"].widget = forms.HiddenInput()
    return filterset


class TimeRangeForm(forms.Form):
    """The evaluation list's time presets; "custom" (or none) leaves the filter's From and Until to apply."""

    range = forms.ChoiceField(choices=RANGE_CHOICES, required=False, label="Time")

    def since(self, now: datetime | None = None) -> datetime | None:
        """The start of the chosen preset, or None for a custom range or none."""
        window = self.cleaned_data.get("range", "") if self.is_valid() else ""
        if window not in RANGES:
            return None
        return (now or timezone.now()) - RANGES[window]


class FeedbackForm(forms.Form):
    feedback = forms.ChoiceField(
        choices=Feedback.choices, widget=forms.RadioSelect, label="Verdict", error_messages={"required": "Pick one."}
    )
    note = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why, for the reviewer."
    )


# --- the policy ---------------------------------------------------------------------------------------------------


class PolicyForm(forms.Form):
    """Every field of the policy an admin edits. Ranges are the service's to check (one set of rules for the page and
    the API); this form only parses. The webhook secret is write-only: left blank, the current one stays."""

    block_threshold = forms.FloatField(help_text="A threat scored at or above this gets its threat type's action.")
    flag_threshold = forms.FloatField(help_text="At or above this (below the block threshold): allowed and logged.")
    max_input_chars = forms.IntegerField(label="Maximum input (characters)")
    rate_limit_per_minute = forms.IntegerField(label="Rate limit per API key per minute", help_text="0: no limit.")
    fail_mode = forms.ChoiceField(choices=FailMode.choices, label="When a required detector is unavailable")
    monitor_mode = forms.BooleanField(
        required=False, label="Monitor mode", help_text="Decide and log, but never block or sanitize."
    )
    context_turns = forms.IntegerField(label="Context turns", help_text="Recent turns of a session scanned too.")
    webhook_url = forms.CharField(
        required=False,
        max_length=500,
        label="Webhook URL",
        help_text="Called for every blocked evaluation: an http(s) URL on a public address (not your own network).",
    )
    webhook_secret = forms.CharField(
        required=False,
        max_length=200,
        label="Webhook secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each delivery (HMAC-SHA256). Leave blank to keep the current secret.",
    )

    def __init__(self, *args: Any, policy: TenantPolicy, **kwargs: Any) -> None:
        initial = {
            name: getattr(policy, name)
            for name in (
                "block_threshold",
                "flag_threshold",
                "max_input_chars",
                "rate_limit_per_minute",
                "fail_mode",
                "monitor_mode",
                "context_turns",
                "webhook_url",
            )
        }
        actions = policy.actions or {}
        detectors = policy.detectors or {}
        for threat, _label in POLICY_THREATS:
            initial[f"action_{threat}"] = actions.get(threat, Action.BLOCK)
        for name in DETECTORS:
            initial[f"detector_{name}"] = bool(detectors.get(name, False))
        kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.policy = policy
        for threat, label in POLICY_THREATS:
            self.fields[f"action_{threat}"] = forms.ChoiceField(choices=Action.choices, label=label)
        for name in DETECTORS:
            self.fields[f"detector_{name}"] = forms.BooleanField(required=False, label=DETECTOR_LABELS.get(name, name))
        self.has_secret = bool(policy.webhook_secret)
        if self.has_secret:
            self.fields["webhook_secret"].widget.attrs["placeholder"] = "•••• (set; blank keeps it)"

    def action_fields(self) -> list[forms.BoundField]:
        return [self[f"action_{threat}"] for threat, _label in POLICY_THREATS]

    def detector_fields(self) -> list[forms.BoundField]:
        return [self[f"detector_{name}"] for name in DETECTORS]

    def changes(self) -> dict[str, Any]:
        """The whole policy as `services.policy_update` takes it (unchanged values are not audited)."""
        data = self.cleaned_data
        changes: dict[str, Any] = {
            name: data[name]
            for name in (
                "block_threshold",
                "flag_threshold",
                "max_input_chars",
                "rate_limit_per_minute",
                "fail_mode",
                "monitor_mode",
                "context_turns",
            )
        }
        changes["webhook_url"] = data["webhook_url"].strip()
        changes["actions"] = {threat: data[f"action_{threat}"] for threat, _label in POLICY_THREATS}
        changes["detectors"] = {name: data[f"detector_{name}"] for name in DETECTORS}
        if data["webhook_secret"]:
            changes["webhook_secret"] = data["webhook_secret"]
        return changes


class EmergencyStopForm(forms.Form):
    """Switching the stop on: a reason, and the organization's slug typed out so nobody does it by a stray click."""

    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown to your team and kept in the audit log.",
    )
    confirm = forms.CharField(max_length=100, label="Type the organization's slug to confirm")

    def __init__(self, *args: Any, organization: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.fields["confirm"].help_text = f"Type {organization.slug}"
        self.fields["confirm"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the firewall is being stopped.")
        return reason

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.organization.slug:
            raise forms.ValidationError(f"Type {self.organization.slug} exactly to confirm.")
        return typed


class EmergencyResumeForm(forms.Form):
    confirm = forms.BooleanField(
        label="Resume normal evaluation under the policy",
        error_messages={"required": "Tick the box to confirm."},
    )
