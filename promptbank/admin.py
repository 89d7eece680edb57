"""Curation of the prompt bank in the Django admin.

Every write that matters goes through `promptbank.services` (so the pipeline, versions and learning events apply):
adding or editing a prompt, (de)activating it, making variants, accepting or rejecting submissions, creating and
activating releases. Histories (versions, statistics, ingestion runs, learning events) are read-only.

Tenancy: superusers curate everything, including the global bank (organization empty). Other staff see their
organizations' rows plus the global bank, which is read-only to them, and can only file rows under their own
organizations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from accounts.models import Membership, Organization
from evalence.admin import TenantAdmin
from evalence.errors import ApplicationError
from evalence.tenancy import resolve_session_membership
from promptbank import services
from promptbank.choices import Mutator, ReleaseBump, SubmissionStatus
from promptbank.models import (
    BankRelease,
    IngestionRun,
    LearningEvent,
    Prompt,
    PromptStats,
    PromptVersion,
    Submission,
)

SHORT_TEXT = 80


def short(text: str, length: int = SHORT_TEXT) -> str:
    return Truncator(" ".join(text.split())).chars(length)


def copy_row(source: Any, target: Any) -> None:
    """Make the admin's `obj` the row a service saved, so the admin's log and redirect point at it."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


class _ServiceRefused(Exception):
    def __init__(self, error: ApplicationError):
        super().__init__(error.message)
        self.error = error


class BankAdmin(TenantAdmin):
    """The prompt bank's admin base.

    - Global rows (organization NULL) are listed for every staff member and writable by superusers only; a staff
      member files new rows under one of their organizations (the field is required for them).
    - A service that refuses a save (a duplicate text, an invalid category) shows its message as a form error on the
      same page, with what the curator typed kept, instead of a crash or a false "saved" message.
    """

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        if request.user.is_superuser or not getattr(self.model, "allows_global_rows", False):
            return super().get_queryset(request)
        qs = self.model._default_manager.get_queryset()
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        own = Membership.objects.filter(user=request.user).values("organization_id")
        return qs.filter(Q(organization__in=own) | Q(organization__isnull=True))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "organization" and not request.user.is_superuser:
            kwargs["required"] = True  # empty would mean the global bank
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting loses history that releases and statistics refer to: deactivate instead. Superusers may clean up.
        return request.user.is_superuser

    # --- service errors as form errors ---

    def call_service(self, service: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a service from `save_model`; a refusal aborts the save (its transaction rolls back)."""
        try:
            return service(**kwargs)
        except ApplicationError as exc:
            raise _ServiceRefused(exc) from exc

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _ServiceRefused as refused:
            # The first pass rolled back. Render the form again with the same POST data and the refusal as its error.
            request._promptbank_service_error = refused.error  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)
        error: ApplicationError | None = getattr(request, "_promptbank_service_error", None)
        if error is None:
            return form_class

        class WithServiceError(form_class):  # type: ignore[misc, valid-type]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean()
                shown: list[str] = []
                for name, problems in (error.fields or {}).items():
                    if name in self.fields:
                        self.add_error(name, problems)
                        shown.extend(str(p) for p in problems)
                if error.message not in shown:  # the full sentence, unless a field already says it
                    self.add_error(None, error.message)
                return cleaned

        return WithServiceError

    # --- bulk actions ---

    def run_for_each(
        self, request: HttpRequest, queryset: QuerySet, work: Callable[[Any], str | None], done_label: str
    ) -> None:
        """Apply `work` to each selected row the user may change; report counts, skipped rows and refusals.

        `work` returns None when it did something, or a short reason when it skipped the row."""
        done, skipped, refused = 0, 0, []
        for obj in queryset:
            if not self.has_change_permission(request, obj):
                skipped += 1  # a global row, for a staff member
                continue
            try:
                reason = work(obj)
            except ApplicationError as exc:
                refused.append(f"{short(str(obj), 40)}: {exc.message}")
                continue
            if reason is None:
                done += 1
            else:
                skipped += 1
        self.message_user(request, f"{done_label}: {done}.", messages.SUCCESS if done else messages.INFO)
        if skipped:
            self.message_user(request, f"Skipped {skipped} (read-only or nothing to do).", messages.WARNING)
        for problem in refused[:10]:
            self.message_user(request, problem, messages.ERROR)


class ReadOnlyBankAdmin(BankAdmin):
    """Histories and records written by the system: viewed here, never edited."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- prompts ------------------------------------------------------------------------------------------------------


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("version", "version_text", "changed_by", "change_note", "created_at")
    readonly_fields = fields
    ordering = ("-version",)

    @admin.display(description="text")
    def version_text(self, obj: PromptVersion) -> str:
        return short(obj.text, 120)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PromptForm(ModelForm):
    change_note = forms.CharField(
        required=False, max_length=500, help_text="Why you changed it; kept with the new version."
    )

    class Meta:
        model = Prompt
        fields = ("organization", *Prompt.VERSIONED_FIELDS)


class PromptActionForm(helpers.ActionForm):
    mutator = forms.ChoiceField(
        choices=[("", "Mutator (for “Make variants”)"), *Mutator.choices], required=False, label="Mutator"
    )


@admin.register(Prompt)
class PromptAdmin(BankAdmin):
    form = PromptForm
    action_form = PromptActionForm
    list_display = (
        "short_text",
        "category",
        "label",
        "severity",
        "source",
        "language",
        "scope",
        "is_active",
        "version",
        "quality_score",
        "created_at",
    )
    list_filter = ("category", "label", "severity", "source", "language", "is_active", "organization")
    search_fields = ("text", "source", "tags")
    list_select_related = ("organization",)
    list_per_page = 50
    show_full_result_count = False  # a count over the whole bank on every page is slow once it is large
    inlines = [PromptVersionInline]
    actions = ["activate_selected", "deactivate_selected", "make_variants"]
    state_fields = (
        "version",
        "quality_score",
        "category_confidence",
        "variant_of",
        "mutator",
        "variants_link",
        "near_duplicate_of",
        "near_duplicate_similarity",
        "normalized_hash",
        "author",
        "created_at",
        "updated_at",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        if obj is None:
            return [
                (None, {"fields": ("organization", "text")}),
                ("Classification", {"fields": ("label", "category", "subcategory", "attack_type", "severity")}),
                ("Details", {"fields": ("tags", "language", "source", "source_ref", "license")}),
            ]
        editable = self.has_change_permission(request, obj)
        return [
            (None, {"fields": ("organization", "text", *(("change_note",) if editable else ()))}),
            ("Classification", {"fields": ("label", "category", "subcategory", "attack_type", "severity", "tags")}),
            ("Details", {"fields": ("language", "source", "source_ref", "license", "is_active")}),
            ("State", {"fields": self.state_fields}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("organization", *self.state_fields) if obj is not None else ()

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self.inlines if obj is not None else []  # a new prompt's first version is the pipeline's to write

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return short(obj.text)

    @admin.display(description="scope", ordering="organization__name")
    def scope(self, obj: Prompt) -> str:
        return obj.organization.name if obj.organization_id else "global"

    @admin.display(description="variants")
    def variants_link(self, obj: Prompt) -> str:
        count = obj.variants.count()
        if not count:
            return "none"
        url = reverse("admin:promptbank_prompt_changelist") + f"?variant_of__id__exact={obj.pk}"
        return format_html('<a href="{}">{} variant(s)</a>', url, count)

    def save_model(self, request: HttpRequest, obj: Prompt, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            created = self.call_service(
                services.prompt_create,
                organization=data.get("organization"),
                text=data["text"],
                label=data["label"],
                category=data.get("category") or "",
                severity=data.get("severity") or "",
                tags=data.get("tags") or [],
                subcategory=data.get("subcategory") or "",
                attack_type=data.get("attack_type") or "",
                language=data.get("language") or "",
                source=data.get("source") or "admin",
                source_ref=data.get("source_ref") or "",
                license=data.get("license") or "",
                author=request.user,
            )
            copy_row(created.prompt, obj)
            if created.status == "duplicate":
                self.message_user(request, "This text is already in the bank: showing the existing prompt.")
            return

        # The form has already written the new values onto `obj`: the service gets a fresh copy and the changes.
        current = Prompt.objects.get(pk=obj.pk)
        changes = {name: data[name] for name in form.changed_data if name in Prompt.VERSIONED_FIELDS}
        if changes:  # one call, so one new version however many fields changed (the active flag included)
            current = self.call_service(
                services.prompt_update,
                prompt=current,
                actor=request.user,
                change_note=data.get("change_note", ""),
                **changes,
            )
        copy_row(current, obj)

    # --- actions ---

    def _set_active(self, request: HttpRequest, queryset: QuerySet, active: bool) -> None:
        def work(prompt: Prompt) -> str | None:
            if prompt.is_active == active:
                return "already"
            services.prompt_set_active(prompt=prompt, active=active, actor=request.user)
            return None

        self.run_for_each(request, queryset, work, "Activated" if active else "Deactivated")

    @admin.action(description="Activate selected prompts", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description="Deactivate selected prompts", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description="Make variants with the chosen mutator", permissions=["add"])
    def make_variants(self, request: HttpRequest, queryset: QuerySet) -> None:
        mutator = request.POST.get("mutator", "")
        if mutator not in Mutator.values:
            self.message_user(request, "Choose a mutator next to the action, then run it again.", messages.ERROR)
            return
        organization = self._variant_organization(request)
        made, existing, skipped, refused = 0, 0, 0, []
        for prompt in queryset:
            # A variant of an organization's prompt stays in that organization; a variant of a global prompt goes to
            # the global bank for a superuser, to the staff member's active organization otherwise.
            target = prompt.organization if prompt.organization_id else organization
            if prompt.organization_id is None and target is None and not request.user.is_superuser:
                skipped += 1
                continue
            try:
                results = services.variants_create(
                    prompt=prompt, mutators=[mutator], organization=target, actor=request.user
                )
            except ApplicationError as exc:
                refused.append(f"{short(prompt.text, 40)}: {exc.message}")
                continue
            for result in results:
                if result.status == "duplicate":
                    existing += 1
                else:
                    made += 1
        label = Mutator(mutator).label
        self.message_user(request, f"Made {made} {label} variant(s); {existing} already existed.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped {skipped}: you belong to no organization.", messages.WARNING)
        for problem in refused[:10]:
            self.message_user(request, problem, messages.ERROR)

    def _variant_organization(self, request: HttpRequest) -> Organization | None:
        if request.user.is_superuser:
            return None
        membership = resolve_session_membership(request)
        return membership.organization if membership else None


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyBankAdmin):
    list_display = ("prompt_text", "version", "scope", "changed_by", "change_note", "created_at")
    list_filter = ("organization",)
    search_fields = ("text", "change_note")
    list_select_related = ("organization", "prompt", "changed_by")
    show_full_result_count = False
    readonly_fields = ("prompt", "organization", "version", "text", "fields_json", "changed_by", "change_note")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "created_at")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The release page links here with ?releases__id__exact=<release> to list its frozen versions.
        return lookup == "releases__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="prompt")
    def prompt_text(self, obj: PromptVersion) -> str:
        return short(obj.text)

    @admin.display(description="scope")
    def scope(self, obj: PromptVersion) -> str:
        return obj.organization.name if obj.organization_id else "global"

    @admin.display(description="fields")
    def fields_json(self, obj: PromptVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.fields, indent=2, ensure_ascii=False, sort_keys=True))


@admin.register(PromptStats)
class PromptStatsAdmin(ReadOnlyBankAdmin):
    list_display = (
        "prompt_text",
        "organization",
        "times_used",
        "detection_rate",
        "attack_success_rate",
        "false_positive_rate",
        "last_used_at",
    )
    list_filter = ("organization",)
    search_fields = ("prompt__text",)
    list_select_related = ("organization", "prompt")
    readonly_fields = (
        "prompt",
        "organization",
        "times_used",
        "firewall_evaluations",
        "firewall_detections",
        "detection_rate",
        "test_runs",
        "attack_successes",
        "attack_success_rate",
        "false_positives",
        "false_positive_rate",
        "last_used_at",
        "updated_at",
    )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.readonly_fields

    @admin.display(description="prompt")
    def prompt_text(self, obj: PromptStats) -> str:
        return short(obj.prompt.text)


# --- submissions --------------------------------------------------------------------------------------------------


class SubmissionActionForm(helpers.ActionForm):
    reason = forms.CharField(required=False, max_length=500, label="Reason")


@admin.register(Submission)
class SubmissionAdmin(BankAdmin):
    action_form = SubmissionActionForm
    list_display = (
        "short_text",
        "status",
        "label",
        "category",
        "source",
        "occurrences",
        "organization",
        "submitter",
        "reviewer",
        "created_at",
    )
    list_filter = ("status", "label", "category", "source", "organization")
    search_fields = ("text", "source", "source_ref", "notes")
    list_select_related = ("organization", "submitter", "reviewer")
    actions = ["accept_selected", "reject_selected"]
    fields = (
        "organization",
        "text",
        "label",
        "category",
        "severity",
        "tags",
        "notes",
        "source",
        "source_ref",
        "metadata",
        "occurrences",
        "status",
        "submitter",
        "submitter_key",
        "reviewer",
        "reviewed_at",
        "reason",
        "prompt",
        "created_at",
    )
    # A curator may correct the classification of a pending submission before accepting it; the rest is a record.
    review_fields = ("label", "category", "severity", "tags", "notes")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is not None and obj.status == SubmissionStatus.PENDING:
            return tuple(f for f in self.fields if f not in self.review_fields)
        return self.fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # submissions come from users and integrations (pages, API), with their submitter

    @admin.display(description="text")
    def short_text(self, obj: Submission) -> str:
        return short(obj.text)

    @admin.action(description="Accept selected submissions into the bank", permissions=["change"])
    def accept_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = request.POST.get("reason", "").strip()

        def work(submission: Submission) -> str | None:
            if submission.status != SubmissionStatus.PENDING:
                return "not pending"
            services.submission_accept(submission=submission, reviewer=request.user, reason=reason)
            return None

        self.run_for_each(request, queryset, work, "Accepted")

    @admin.action(description="Reject selected submissions", permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = request.POST.get("reason", "").strip() or "Rejected in the admin."

        def work(submission: Submission) -> str | None:
            if submission.status != SubmissionStatus.PENDING:
                return "not pending"
            services.submission_reject(submission=submission, reviewer=request.user, reason=reason)
            return None

        self.run_for_each(request, queryset, work, "Rejected")


# --- releases -----------------------------------------------------------------------------------------------------


class ReleaseCreateForm(ModelForm):
    bump = forms.ChoiceField(choices=ReleaseBump.choices, initial=ReleaseBump.MINOR, help_text="Which number to raise.")
    activate = forms.BooleanField(required=False, initial=True, help_text="Make it the scope's active release.")

    class Meta:
        model = BankRelease
        fields = ("organization", "notes")


@admin.register(BankRelease)
class BankReleaseAdmin(BankAdmin):
    list_display = (
        "version",
        "scope",
        "is_active",
        "prompt_count",
        "attack_count",
        "benign_count",
        "created_by",
        "activated_at",
        "created_at",
    )
    list_filter = ("is_active", "organization")
    search_fields = ("version", "notes")
    list_select_related = ("organization", "created_by")
    actions = ["activate_release"]
    frozen_fields = (
        "organization",
        "version",
        "is_active",
        "activated_at",
        "prompt_count",
        "attack_count",
        "benign_count",
        "entries_link",
        "metrics_json",
        "created_by",
        "created_at",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        if obj is None:
            return [(None, {"fields": ("organization", "bump", "notes", "activate")})]
        return [(None, {"fields": (*self.frozen_fields[:2], "notes", *self.frozen_fields[2:])})]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.frozen_fields if obj is not None else ()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ReleaseCreateForm
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="scope", ordering="organization__name")
    def scope(self, obj: BankRelease) -> str:
        return obj.organization.name if obj.organization_id else "global"

    @admin.display(description="prompt versions")
    def entries_link(self, obj: BankRelease) -> str:
        url = reverse("admin:promptbank_promptversion_changelist") + f"?releases__id__exact={obj.pk}"
        return format_html('<a href="{}">{} frozen prompt version(s)</a>', url, obj.entries.count())

    @admin.display(description="metrics")
    def metrics_json(self, obj: BankRelease) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.metrics, indent=2, ensure_ascii=False, sort_keys=True))

    def save_model(self, request: HttpRequest, obj: BankRelease, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["notes"])  # the only editable field; the contents are frozen
            return
        data = form.cleaned_data
        release = self.call_service(
            services.release_create,
            organization=data.get("organization"),
            bump=data["bump"],
            notes=data.get("notes", ""),
            actor=request.user,
            activate=data.get("activate", False),
        )
        copy_row(release, obj)

    @admin.action(description="Activate the selected release (or roll back to it)", permissions=["change"])
    def activate_release(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one release to activate.", messages.ERROR)
            return

        def work(release: BankRelease) -> str | None:
            if release.is_active:
                return "already active"
            services.release_activate(release=release, actor=request.user)
            return None

        self.run_for_each(request, queryset, work, "Activated")


# --- records ------------------------------------------------------------------------------------------------------


@admin.register(IngestionRun)
class IngestionRunAdmin(ReadOnlyBankAdmin):
    list_display = (
        "__str__",
        "scope",
        "channel",
        "format",
        "status",
        "received",
        "accepted",
        "duplicates",
        "near_duplicates",
        "rejected",
        "errors_total",
        "created_at",
    )
    list_filter = ("status", "channel", "format", "organization")
    search_fields = ("filename", "source_name", "error")
    list_select_related = ("organization", "created_by")
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ("organization", "status", "channel", "format", "source_name", "license", "filename")}),
        ("Counts", {"fields": ("received", "accepted", "duplicates", "near_duplicates", "rejected", "lines_done")}),
        ("Errors", {"fields": ("errors_total", "errors_table", "error", "traceback")}),
        ("Job", {"fields": ("created_by", "queue", "rq_job_id", "started_at", "finished_at", "created_at")}),
        ("File", {"classes": ("collapse",), "fields": ("file_path", "file_sha256", "options")}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for _, options in self.fieldsets for name in options["fields"]]

    @admin.display(description="scope")
    def scope(self, obj: IngestionRun) -> str:
        return obj.organization.name if obj.organization_id else "global"

    @admin.display(description="rejected lines")
    def errors_table(self, obj: IngestionRun) -> str:
        if not obj.errors:
            return "none"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td></tr>", ((e.get("line", "?"), e.get("reason", "")) for e in obj.errors)
        )
        more = obj.errors_total - len(obj.errors)
        tail = format_html("<p>and {} more</p>", more) if more > 0 else ""
        return format_html("<table><tr><th>line</th><th>reason</th></tr>{}</table>{}", rows, tail)


@admin.register(LearningEvent)
class LearningEventAdmin(ReadOnlyBankAdmin):
    list_display = ("event_type", "action", "scope", "source_type", "source_id", "created_at")
    list_filter = ("event_type", "source_type", "organization")
    search_fields = ("action", "source_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    fields = ("organization", "event_type", "source_type", "source_id", "action", "result_json", "prompt", "created_at")
    readonly_fields = fields

    @admin.display(description="scope")
    def scope(self, obj: LearningEvent) -> str:
        return obj.organization.name if obj.organization_id else "global"

    @admin.display(description="result")
    def result_json(self, obj: LearningEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, ensure_ascii=False, sort_keys=True))
