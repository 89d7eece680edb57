"""The firewall in the Django admin: signature rules (with a test against the bank before a rule goes live), remote
model detectors, and read-only views of policies, evaluations, threat patterns and classifier versions.

Writes that matter go through the services or are checked by them: a signature is validated by
`services.signature_validate` (the engine's own compile), a policy changes only on its page (`services.policy_update`,
audited), classifier versions are trained and activated by `firewall.detectors`. Process caches follow every save
through `firewall.signals`.

Tenancy: superusers curate everything, including the global signatures (organization empty). Other staff see their
organizations' rows plus the global signatures, read-only. Threat patterns (counted across organizations) and
classifier versions (one for everyone) are for superusers only; they have no per-object pages, so a staff member of
one organization has no URL that names another's object.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from accounts.models import Membership, Organization
from evalence.admin import TenantAdmin
from evalence.crypto import mask
from evalence.errors import ApplicationError
from evalence.http import client_ip
from firewall import services
from firewall.models import (
    DetectorModel,
    DetectorVersion,
    Evaluation,
    Signature,
    TenantPolicy,
    ThreatPattern,
    ThreatPatternSighting,
)
from promptbank.choices import ATTACK_CATEGORIES, Category, Severity

SHORT_TEXT = 80


def short(text: str, length: int = SHORT_TEXT) -> str:
    return Truncator(" ".join((text or "").split())).chars(length)


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))


class ReadOnlyTenantAdmin(TenantAdmin):
    """Records the firewall writes: viewed here, never added or edited (superusers may delete)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


class SuperuserListAdmin(admin.ModelAdmin):
    """A global model for superusers only, as a list without per-object pages (its columns say everything)."""

    list_display_links = None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [path("", self.admin_site.admin_view(self.changelist_view), name="{}_{}_changelist".format(*info))]


def _model_admin_view(model_admin: admin.ModelAdmin, view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap an extra admin view the way ModelAdmin wraps its own (staff sign-in, `model_admin` for the URL walker)."""

    def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
        return model_admin.admin_site.admin_view(view)(*args, **kwargs)

    wrapper.model_admin = model_admin  # type: ignore[attr-defined]
    return update_wrapper(wrapper, view)


def _user_organizations(request: HttpRequest) -> QuerySet[Organization]:
    if request.user.is_superuser:
        return Organization.objects.order_by("name")
    return Organization.objects.filter(memberships__user=request.user).distinct().order_by("name")


# --- signatures ---------------------------------------------------------------------------------------------------


class SignatureForm(ModelForm):
    """A rule is saved only if the engine compiles it (`services.signature_validate`): a bad pattern, weight or threat
    type shows as the field's error."""

    class Meta:
        model = Signature
        fields = (
            "organization",
            "rule_id",
            "pattern",
            "threat_type",
            "severity",
            "weight",
            "description",
            "source",
            "is_active",
        )
        widgets = {"pattern": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"})}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        needed = ("rule_id", "pattern", "threat_type", "severity", "weight")
        if all(data.get(name) not in (None, "") for name in needed):
            try:
                services.signature_validate(**{name: data[name] for name in needed})
            except ApplicationError as exc:
                placed = False
                for name, problems in (exc.fields or {}).items():
                    if name in self.fields:
                        self.add_error(name, problems)
                        placed = True
                if not placed:
                    self.add_error(None, exc.message)
        return data


class RuleTestForm(forms.Form):
    pattern = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        help_text="A regular expression, as a signature rule holds it (matched against normalized text).",
    )
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        empty_label="The global bank only",
        help_text="Also the organization's own prompts.",
    )

    def __init__(self, *args: Any, organizations: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations


@admin.register(Signature)
class SignatureAdmin(TenantAdmin):
    form = SignatureForm
    change_list_template = "firewall/admin_signature_change_list.html"
    list_display = (
        "rule_id",
        "short_pattern",
        "threat_type",
        "severity",
        "weight",
        "source",
        "is_active",
        "scope",
        "updated_at",
    )
    list_filter = ("is_active", "threat_type", "severity", "source", "organization")
    search_fields = ("rule_id", "pattern", "description")
    list_select_related = ("organization", "created_by")
    readonly_fields = ("created_by", "updated_at")
    actions = ["activate_selected", "deactivate_selected", "test_against_bank"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        if request.user.is_superuser:
            return super().get_queryset(request)
        own = Membership.objects.filter(user=request.user).values("organization_id")
        qs = Signature.objects.select_related(*self.list_select_related)
        return qs.filter(Q(organization__in=own) | Q(organization__isnull=True))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "organization" and not request.user.is_superuser:
            kwargs["required"] = True  # empty would mean a global rule
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="pattern")
    def short_pattern(self, obj: Signature) -> str:
        return short(obj.pattern, 70)

    @admin.display(description="scope", ordering="organization__name")
    def scope(self, obj: Signature) -> str:
        return obj.organization.name if obj.organization_id else "global"

    def save_model(self, request: HttpRequest, obj: Signature, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def _set_active(self, request: HttpRequest, queryset: QuerySet, active: bool) -> None:
        done, skipped = 0, 0
        for signature in queryset:
            if signature.is_active == active or not self.has_change_permission(request, signature):
                skipped += 1
                continue
            signature.is_active = active
            signature.save(update_fields=["is_active", "updated_at"])  # the signal recompiles every process's rules
            done += 1
        self.message_user(request, f"{'Activated' if active else 'Deactivated'}: {done}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped} (read-only or nothing to do).", messages.WARNING)

    @admin.action(description="Activate selected rules", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected rules", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description="Test the selected rule against the bank", permissions=["view"])
    def test_against_bank(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one rule to test.", messages.ERROR)
            return None
        signature = queryset.get()
        return self._render_test(
            request, pattern=signature.pattern, organization=signature.organization, rule=signature
        )

    # --- test a pasted rule ---

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path(
                "test-rule/",
                _model_admin_view(self, self.test_rule_view),
                name="{}_{}_test_rule".format(*info),
            )
        ]
        return extra + super().get_urls()

    def test_rule_view(self, request: HttpRequest) -> HttpResponse:
        """Paste a pattern, see what it would match in the bank (attack recall, benign false-positive rate, examples)
        before anyone saves it as a rule."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = RuleTestForm(request.POST or None, organizations=_user_organizations(request))
        if request.method == "POST" and form.is_valid():
            return self._render_test(
                request, pattern=form.cleaned_data["pattern"], organization=form.cleaned_data["organization"], form=form
            )
        return self._render_test(request, form=form)

    def _render_test(
        self,
        request: HttpRequest,
        *,
        pattern: str = "",
        organization: Organization | None = None,
        rule: Signature | None = None,
        form: RuleTestForm | None = None,
    ) -> HttpResponse:
        report, error = None, ""
        if pattern:
            try:
                report = services.signature_test_against_bank(pattern=pattern, organization=organization)
            except ApplicationError as exc:
                error = exc.message
                if form is not None:
                    form.add_error("pattern", exc.message)
        if form is None:
            form = RuleTestForm(
                initial={"pattern": pattern, "organization": organization}, organizations=_user_organizations(request)
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Test {rule.rule_id} against the bank" if rule else "Test a rule against the bank",
            "form": form,
            "rule": rule,
            "pattern": pattern,
            "scope": organization.name if organization else "the global bank",
            "report": report,
            "examples": _examples(report) if report else [],
            "error": error,
            "action_url": reverse("admin:firewall_signature_test_rule"),
        }
        return TemplateResponse(request, "firewall/admin_test_rule.html", context)


def _examples(report: services.RuleTestReport) -> list[dict[str, Any]]:
    """The report's example matches, attacks first, each with a link to the prompt in the admin."""
    return [
        {
            "label": label,
            "prompt_id": pk,
            "excerpt": excerpt,
            "url": reverse("admin:promptbank_prompt_change", args=[pk]),
        }
        for label, examples in (("attack", report.attack_examples), ("benign", report.benign_examples))
        for pk, excerpt in examples
    ]


# --- remote model detectors ---------------------------------------------------------------------------------------


class DetectorModelForm(ModelForm):
    """The API key is write-only: never shown back; left blank, the current key stays."""

    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the API key")
    base_url = forms.URLField(
        max_length=500, assume_scheme="https", help_text="The API root, e.g. https://api.example.com/v1"
    )

    class Meta:
        model = DetectorModel
        fields = (
            "organization",
            "name",
            "base_url",
            "model",
            "api_key",
            "clear_api_key",
            "priority",
            "timeout_s",
            "failure_threshold",
            "recovery_timeout_s",
            "extra_params",
            "is_active",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("clear_api_key"):
            data["api_key"] = ""
        elif not data.get("api_key") and self.instance.pk is not None:
            data["api_key"] = DetectorModel.objects.get(pk=self.instance.pk).api_key
        return data


@admin.register(DetectorModel)
class DetectorModelAdmin(TenantAdmin):
    form = DetectorModelForm
    list_display = ("name", "model", "base_url", "priority", "is_active", "masked_key", "organization", "updated_at")
    list_filter = ("is_active", "organization")
    search_fields = ("name", "model", "base_url")
    readonly_fields = ("masked_key", "updated_at")

    @admin.display(description="API key")
    def masked_key(self, obj: DetectorModel) -> str:
        return mask(obj.api_key) or "none"


# --- policies and records -----------------------------------------------------------------------------------------


@admin.register(TenantPolicy)
class TenantPolicyAdmin(ReadOnlyTenantAdmin):
    """Read-only: a policy changes on its page, through the service that versions and audits it."""

    list_display = (
        "organization",
        "version",
        "monitor_mode",
        "emergency_stop",
        "fail_mode",
        "updated_by",
        "updated_at",
    )
    list_filter = ("emergency_stop", "monitor_mode", "fail_mode")
    search_fields = ("organization__name", "organization__slug")
    list_select_related = ("organization", "updated_by")
    fields = (
        "policy_page",
        "organization",
        "version",
        "block_threshold",
        "flag_threshold",
        "actions_json",
        "detectors_json",
        "max_input_chars",
        "rate_limit_per_minute",
        "fail_mode",
        "monitor_mode",
        "context_turns",
        "emergency_stop",
        "emergency_stop_reason",
        "emergency_stop_at",
        "webhook_url",
        "webhook_secret_masked",
        "updated_by",
        "updated_at",
    )
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting would silently reset the tenant to the defaults, unaudited

    @admin.display(description="change it")
    def policy_page(self, obj: TenantPolicy) -> str:
        return format_html(
            '<a href="{}">On the policy page</a> (as an admin of the organization: versioned and audited)',
            reverse("firewall:policy"),
        )

    @admin.display(description="actions")
    def actions_json(self, obj: TenantPolicy) -> str:
        return pretty_json(obj.actions)

    @admin.display(description="detectors")
    def detectors_json(self, obj: TenantPolicy) -> str:
        return pretty_json(obj.detectors)

    @admin.display(description="webhook secret")
    def webhook_secret_masked(self, obj: TenantPolicy) -> str:
        return mask(obj.webhook_secret) or "none"


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyTenantAdmin):
    list_display = (
        "short_text",
        "decision",
        "threat_type",
        "severity",
        "confidence",
        "direction",
        "source",
        "feedback",
        "organization",
        "created_at",
    )
    list_filter = ("decision", "threat_type", "severity", "direction", "source", "feedback", "organization")
    search_fields = ("text_hash", "session_id", "end_user_id", "request_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ("organization", "direction", "source", "text", "text_length", "text_hash")}),
        (
            "Decision",
            {
                "fields": (
                    "decision",
                    "policy_decision",
                    "confidence",
                    "threat_type",
                    "severity",
                    "sanitized_text",
                    "latency_ms",
                    "detector_version",
                )
            },
        ),
        ("Detectors", {"fields": ("detectors_json", "context_json")}),
        (
            "Caller",
            {"fields": ("session_id", "end_user_id", "application", "api_key", "actor", "ip", "request_id")},
        ),
        ("Feedback", {"fields": ("feedback", "feedback_note", "feedback_by", "feedback_at", "created_at")}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for _, options in self.fieldsets for name in options["fields"]]

    @admin.display(description="text")
    def short_text(self, obj: Evaluation) -> str:
        return short(obj.text)

    @admin.display(description="detectors")
    def detectors_json(self, obj: Evaluation) -> str:
        return pretty_json(obj.detectors)

    @admin.display(description="context")
    def context_json(self, obj: Evaluation) -> str:
        return pretty_json(obj.context)


@admin.register(ThreatPatternSighting)
class ThreatPatternSightingAdmin(ReadOnlyTenantAdmin):
    """One organization's count of a threat pattern, with the pattern's counts across organizations."""

    list_display = ("pattern_hash", "threat_type", "count", "organizations_affected", "organization", "last_seen")
    list_filter = ("pattern__threat_type", "organization")
    search_fields = ("pattern__pattern_hash",)
    list_select_related = ("organization", "pattern")
    fields = ("organization", "pattern_hash", "threat_type", "count", "first_seen", "last_seen", "last_evaluation")
    readonly_fields = fields

    @admin.display(description="pattern", ordering="pattern__pattern_hash")
    def pattern_hash(self, obj: ThreatPatternSighting) -> str:
        return obj.pattern.pattern_hash[:16] + "…"

    @admin.display(description="threat type", ordering="pattern__threat_type")
    def threat_type(self, obj: ThreatPatternSighting) -> str:
        return obj.pattern.get_threat_type_display()

    @admin.display(description="organizations affected")
    def organizations_affected(self, obj: ThreatPatternSighting) -> int:
        return obj.pattern.organizations_affected


class PromotePatternForm(forms.Form):
    """What a promoted pattern becomes in the global bank: the curator's edit of the redacted sample."""

    pattern = forms.UUIDField(widget=forms.HiddenInput)
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"}),
        max_length=20_000,
        help_text="Secrets and personal data were redacted, and are redacted again on save. Generalize the text so "
        "it names no one: it becomes visible to every organization.",
    )
    category = forms.ChoiceField(choices=[])
    severity = forms.ChoiceField(choices=[])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Category.choices)
        self.fields["category"].choices = [(value, labels[value]) for value in ATTACK_CATEGORIES]
        self.fields["severity"].choices = Severity.choices


@admin.register(ThreatPattern)
class ThreatPatternAdmin(SuperuserListAdmin):
    """Blocked attacks by hash across organizations. A superuser may promote one into the global bank: the action
    shows the latest sample text behind the hash (redacted) to edit, then `services.threat_pattern_promote`."""

    list_display = (
        "pattern_hash",
        "threat_type",
        "severity",
        "detection_count",
        "organizations_affected",
        "first_seen",
        "last_seen",
        "promoted",
    )
    list_filter = ("threat_type", "severity")
    search_fields = ("pattern_hash",)
    date_hierarchy = "last_seen"
    list_select_related = ("promoted_prompt",)
    actions = ["promote_to_bank"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("signature")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return super().get_actions(request) if request.user.is_superuser else {}

    @admin.display(description="in the bank", boolean=True)
    def promoted(self, obj: ThreatPattern) -> bool:
        return obj.promoted_prompt_id is not None

    @admin.action(description="Promote the selected pattern into the global bank")
    def promote_to_bank(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one pattern to promote.", messages.ERROR)
            return None
        pattern = queryset.get()
        return redirect(f"{reverse('admin:firewall_threatpattern_promote')}?pattern={pattern.pk}")

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("promote/", _model_admin_view(self, self.promote_view), name="{}_{}_promote".format(*info)),
            *super().get_urls(),
        ]

    def promote_view(self, request: HttpRequest) -> HttpResponse:
        """GET `?pattern=<id>`: the redacted sample in a form; POST: the curator's text becomes a global prompt."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = reverse("admin:firewall_threatpattern_changelist")
        data = request.POST if request.method == "POST" else None
        pattern_id = (data or request.GET).get("pattern", "")
        pattern = ThreatPattern.objects.filter(pk=pattern_id).first() if _is_uuid(pattern_id) else None
        if pattern is None:
            self.message_user(request, "No such threat pattern.", messages.ERROR)
            return redirect(changelist)
        if pattern.promoted_prompt_id is not None:
            self.message_user(request, "This pattern is already in the global bank.", messages.WARNING)
            return redirect(changelist)
        sample = services.threat_pattern_sample(pattern=pattern)
        form = PromotePatternForm(
            data,
            initial={
                "pattern": pattern.pk,
                "text": sample,
                "category": pattern.threat_type if pattern.threat_type in ATTACK_CATEGORIES else "prompt_injection",
                "severity": pattern.severity if pattern.severity in ("low", "medium", "high", "critical") else "high",
            },
        )
        if data is not None and form.is_valid():
            try:
                services.threat_pattern_promote(
                    pattern=pattern,
                    text=form.cleaned_data["text"],
                    category=form.cleaned_data["category"],
                    severity=form.cleaned_data["severity"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form.add_error("text" if "text" in (exc.fields or {}) else None, exc.message)
            else:
                self.message_user(request, "The pattern is now a prompt of the global bank.", messages.SUCCESS)
                return redirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Promote threat pattern {pattern.pattern_hash[:16]}… into the global bank",
            "pattern": pattern,
            "form": form,
            "has_sample": bool(sample),
        }
        return TemplateResponse(request, "firewall/admin_promote_pattern.html", context, status=400 if data else 200)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# --- classifier versions ------------------------------------------------------------------------------------------


@admin.register(DetectorVersion)
class DetectorVersionAdmin(SuperuserListAdmin):
    """Trained classifier versions with their held-out metrics; train a new one now, or activate one (a rollback is
    activating an older version). Training and activation are `firewall.detectors`' (imported when used)."""

    change_list_template = "firewall/admin_detectorversion_change_list.html"
    list_display = (
        "version",
        "scope",
        "status",
        "metrics_summary",
        "short_reason",
        "created_by",
        "created_at",
        "activated_at",
    )
    list_filter = ("status", ("organization", admin.EmptyFieldListFilter))
    list_select_related = ("created_by", "organization")
    actions = ["activate_version", "start_shadow", "stop_shadow"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("artifact")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return super().get_actions(request) if request.user.is_superuser else {}

    @admin.display(description="scope", ordering="organization__slug")
    def scope(self, obj: DetectorVersion) -> str:
        """Shared, or the organization whose own prompts it also learned from."""
        return obj.organization.slug if obj.organization_id else "shared"

    @admin.display(description="metrics")
    def metrics_summary(self, obj: DetectorVersion) -> str:
        metrics = obj.metrics or {}
        parts = [
            f"{name} {metrics[name]:.3f}"
            for name in ("recall", "precision", "f1", "fpr")
            if isinstance(metrics.get(name), int | float)
        ]
        benign = metrics.get("benign_set") or {}
        if isinstance(benign.get("fpr"), int | float):
            parts.append(f"benign fpr {benign['fpr']:.3f} ({benign.get('false_positives')}/{benign.get('prompts')})")
        return ", ".join(parts) or "—"

    @admin.display(description="reason")
    def short_reason(self, obj: DetectorVersion) -> str:
        # The whole reason on hover: why a candidate was not activated is the point of this column.
        return format_html('<span title="{}">{}</span>', obj.reason, short(obj.reason, 100))

    @admin.action(description="Activate the selected version (or roll back to it)")
    def activate_version(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = queryset.get()
        from firewall import detectors

        try:
            detectors.detector_activate(version=version, actor=request.user)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Classifier v{version.version} is now active.", messages.SUCCESS)

    @admin.action(description="Start shadow: score the selected version on live traffic, never enforced")
    def start_shadow(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to run in shadow.", messages.ERROR)
            return
        from firewall import shadow

        try:
            version = shadow.shadow_start(version=queryset.get(), actor=request.user, ip=client_ip(request))
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(
            request,
            f"Classifier v{version.version} is in shadow: every process scores live traffic with it too (never "
            "enforced); compare on each organization's Firewall → Shadow page.",
            messages.SUCCESS,
        )

    @admin.action(description="Stop shadow")
    def stop_shadow(self, request: HttpRequest, queryset: QuerySet) -> None:
        from firewall import shadow

        try:
            version = shadow.shadow_stop(actor=request.user, ip=client_ip(request))
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Classifier v{version.version} left shadow (back to candidate).", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path("train/", _model_admin_view(self, self.train_view), name="{}_{}_train".format(*info)),
            *super().get_urls(),
        ]

    def train_view(self, request: HttpRequest) -> HttpResponse:
        """Train a new classifier version from the bank now (a POST from the list's button)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        from firewall import retrain
        from firewall.choices import DetectorStatus

        # "auto": activated only if no worse than the active version on the held-out split and the benign set.
        summary = retrain.retrain_enqueue(actor=request.user)
        if summary is None:
            self.message_user(
                request,
                "Training queued for a worker: the new version appears in this list when it is done (activated only "
                "if no worse than the active one; otherwise a candidate with the reason).",
                messages.INFO,
            )
        elif "error" in summary:
            self.message_user(request, summary["error"], messages.ERROR)
        else:
            status = DetectorStatus(summary["status"])
            self.message_user(
                request,
                f"Trained classifier v{summary['version']} ({status.label.lower()}). {summary['reason']}",
                messages.SUCCESS if status == DetectorStatus.ACTIVE else messages.WARNING,
            )
        return redirect("admin:firewall_detectorversion_changelist")
