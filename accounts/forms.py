"""Forms of the account pages. They parse and validate input only; the services do the writes (and the audit)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from accounts.choices import AuditAction, Plan, Role, Scope
from accounts.filters import AuditLogFilter
from accounts.models import AuditLog
from evalence.errors import ApplicationError


def add_service_error(form: forms.Form, error: ApplicationError) -> None:
    """Show a service's error on the form: per field where the service names one this form has, else on top."""
    placed = False
    for name, messages in (error.fields or {}).items():
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


def audit_log_filter_for_page(data: QueryDict | None, queryset: QuerySet[AuditLog]) -> AuditLogFilter:
    """The API's audit-log FilterSet, with page-friendly labels and the browser's date-time pickers."""
    filterset = AuditLogFilter(data, queryset=queryset)
    fields = filterset.form.fields
    fields["action"].empty_label = "Any action"
    fields["action"].choices = AuditAction.choices  # re-set, so the choice list picks up the new empty label
    fields["actor"].widget.attrs["placeholder"] = "Email contains…"
    for name, label in (("since", "From"), ("until", "Until")):
        fields[name].label = label
        fields[name].widget.input_type = "datetime-local"
    return filterset


class EmailAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, with the email address as the user name (the user model's USERNAME_FIELD)."""

    username = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(
            attrs={"autofocus": True, "autocomplete": "username", "placeholder": "you@company.com"}
        ),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email address and password do not match an account.",
    }


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=120)
    plan = forms.ChoiceField(choices=Plan.choices)


class InvitationForm(forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"placeholder": "name@company.com", "autocomplete": "off"})
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Name it after what uses it, e.g. “support-bot production”.",
        widget=forms.TextInput(attrs={"placeholder": "support-bot production", "autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.FIREWALL_EVALUATE],
        error_messages={"required": "Give the key at least one scope."},
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional. The key works until the end of this day.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_expires_on(self) -> date | None:
        expires_on = self.cleaned_data.get("expires_on")
        if expires_on is not None and expires_on < timezone.localdate():
            raise forms.ValidationError("Choose today or a later day.")
        return expires_on

    @property
    def expires_at(self) -> datetime | None:
        """The end of the chosen day (midnight after it) in the site's time zone."""
        expires_on = self.cleaned_data.get("expires_on")
        if expires_on is None:
            return None
        return datetime.combine(expires_on + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())


class InvitationSignupForm(forms.Form):
    """The invited address has no account yet: choose a name and a password."""

    full_name = forms.CharField(
        max_length=150, required=False, label="Full name", widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    password = forms.CharField(
        strip=False,
        label="Password",
        help_text="At least 10 characters; not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_confirm = forms.CharField(
        strip=False, label="Repeat the password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords differ.")
        return cleaned
