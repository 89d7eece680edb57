"""Prompt bank pages: the bank browser, a prompt with its history, imports with live counts, the review queue and
releases.

Views parse a form, call one service (or selector) and redirect (POST/redirect/GET); the services validate, write
and record the learning events. Tenancy and roles come from `evalence.views`: every page subclasses `OrgPageMixin`,
every view of one object `TenantObjectMixin`, so another organization's object is a 404 and a missing role a 403.
Global rows (the shared bank and its releases) are shown read-only: the views that change a row refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Model, Q, QuerySet
from django.db.models.functions import Length, Substr
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.views import View
from django.views.generic import DetailView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from accounts.choices import AuditAction, Role
from accounts.forms import add_service_error
from accounts.models import AuditLog
from evalence.errors import ApplicationError, ValidationFailed
from evalence.http import client_ip
from evalence.views import ObjectActionView, OrgPageMixin, TenantObjectMixin
from promptbank import learning, nearest, selectors, services
from promptbank.choices import Category, IngestionSource, SubmissionStatus
from promptbank.exports import export_lines
from promptbank.forms import (
    ImportForm,
    LearningPolicyForm,
    NearestForm,
    PromptCreateForm,
    PromptEditForm,
    ReleaseCompareForm,
    ReleaseForm,
    SubmissionAcceptForm,
    SubmissionForm,
    SubmissionRejectForm,
    VariantsForm,
    prompt_filter_for_page,
)
from promptbank.imports import import_start
from promptbank.models import BankRelease, IngestionRun, Prompt, PromptStats, Submission

PAGE_SIZE = 50
PREVIEW_CHARS = 180
VERSIONS_SHOWN = 30
RELATED_SHOWN = 50
COMPARE_ROWS_SHOWN = 200
DIFF_MAX_CHARS = 5000
EXPORT_FORMATS = {"jsonl": "application/x-ndjson; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BankPageMixin:
    """Context every prompt bank page shares: the section's nav entry and tab, and what the member may do.

    Listed before `OrgPageMixin` (or `TenantObjectMixin`), so its `write_role` wins: writes need an analyst unless a
    view asks for more (releases need an admin).
    """

    tab = ""
    write_role: str | None = Role.ANALYST
    organization: Any
    membership: Any

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context["nav_active"] = "promptbank"
        context["tab"] = self.tab
        context["organization"] = self.organization
        context["can_curate"] = self.membership.has_role(Role.ANALYST)
        context["can_release"] = self.membership.has_role(Role.ADMIN)
        return context


class BankObjectActionView(ObjectActionView):
    """A POST-only action on one object of the active organization (analyst+ unless `write_role` says more); each
    action says where it goes back to with `success_url(obj)`."""

    write_role = Role.ANALYST


def form_error(form: Any, error: ApplicationError) -> None:
    """Put a service's error on the form: on the fields it names, and its message on top unless a field says it."""
    add_service_error(form, error)
    field_messages = {text for texts in (error.fields or {}).values() for text in texts}
    if any(name in form.fields for name in error.fields or {}) and error.message not in field_messages:
        form.add_error(None, error.message)


def _refuse_global(obj: Model, what: str) -> None:
    if getattr(obj, "organization_id", None) is None:
        raise PermissionDenied(f"The global bank's {what} are read-only; curators change them in the admin.")


# --- diffs between versions --------------------------------------------------------------------------------------

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
# Above this many words a word diff gets slow (SequenceMatcher is quadratic at worst): diff whole lines instead.
DIFF_MAX_TOKENS = 6000


def render_diff(old: str, new: str) -> SafeString:
    """An inline diff of two texts: unchanged runs as text, removed ones in <del>, added ones in <ins>; all escaped.

    Word by word (whitespace and punctuation are tokens of their own), so one changed word shows as one change.
    """
    before, after = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(before) + len(after) > DIFF_MAX_TOKENS:
        before, after = old.splitlines(keepends=True), new.splitlines(keepends=True)
    pieces: list[SafeString] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(escape("".join(before[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(format_html("<del>{}</del>", "".join(before[i1:i2])))
        if j2 > j1:
            pieces.append(format_html("<ins>{}</ins>", "".join(after[j1:j2])))
    return format_html_join("", "{}", ((piece,) for piece in pieces))


def _display(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if value in ("", None):
        return "—"
    return str(value)


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str]]:
    """`(field, old, new)` for every versioned field (besides the text) that differs between two versions."""
    names = sorted((set(before) | set(after)) - {"text"})
    return [
        (name.replace("_", " "), _display(before.get(name)), _display(after.get(name)))
        for name in names
        if before.get(name) != after.get(name)
    ]


# --- the bank browser --------------------------------------------------------------------------------------------


def _bank_queryset(organization: Any) -> QuerySet[Prompt]:
    return selectors.visible_prompts(organization)


class IndexView(BankPageMixin, OrgPageMixin, TemplateView):
    """Filter the bank (the API's filters), count the filtered set per category, export it; analysts add prompts."""

    template_name = "promptbank/index.html"
    tab = "bank"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        filterset = prompt_filter_for_page(self.request.GET or None, _bank_queryset(self.organization))
        prompts = filterset.qs
        rows = (
            prompts.defer("text", "minhash")
            .annotate(text_preview=Substr("text", 1, PREVIEW_CHARS), text_length=Length("text"))
            .order_by("-created_at", "pk")
        )
        page = Paginator(rows, PAGE_SIZE).get_page(self.request.GET.get("page"))
        labels = dict(Category.choices)
        counts = selectors.category_counts(prompts)
        for row in counts:
            row["label"] = labels.get(row["category"], row["category"])
        params = self.request.GET.copy()
        params.pop("page", None)
        export_url = reverse("promptbank:export")
        context.update(
            filter=filterset,
            page_obj=page,
            category_counts=counts,
            selected_categories=self.request.GET.getlist("category"),
            filtered_total=sum(row["count"] for row in counts),
            is_filtered=any(self.request.GET.get(name) for name in filterset.form.fields),
            preview_chars=PREVIEW_CHARS,
            export_links=[
                (label, f"{export_url}?{urlencode([*params.lists(), ('format', [fmt])], doseq=True)}")
                for fmt, label in (("jsonl", "JSONL"), ("csv", "CSV"))
            ],
        )
        if context["can_curate"]:
            context["form"] = kwargs.get("form") or PromptCreateForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PromptCreateForm(request.POST)
        duplicate = None
        if form.is_valid():
            try:
                created = services.prompt_create(
                    organization=self.organization, source="manual", author=request.user, **form.cleaned_data
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                if created.status != "duplicate":
                    if created.status == "near_duplicate" and created.prompt.near_duplicate_of_id:
                        messages.warning(
                            request, "Prompt added. It is a near duplicate of another prompt, linked below."
                        )
                    else:
                        messages.success(request, "Prompt added to the bank.")
                    return redirect("promptbank:prompt_detail", pk=created.prompt.pk)
                duplicate = created.prompt
                where = "the global bank" if duplicate.is_global else "your bank"
                form.add_error("text", f"This prompt is already in {where}: “{_short(duplicate.text)}”.")
        context = self.get_context_data(form=form, duplicate=duplicate)
        return self.render_to_response(context, status=400)


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "errors/400.html", {"message": message}, status=400)


def _export_response(lines: Iterable[str], fmt: str, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=EXPORT_FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{fmt}"'
    return response


class ExportView(OrgPageMixin, View):
    """The filtered set (the browser's filters) as JSON lines or CSV, streamed."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        fmt = request.GET.get("format", "jsonl")
        if fmt not in EXPORT_FORMATS:
            return _bad_request(request, f"Unknown export format “{fmt}”: choose jsonl or csv.")
        filterset = prompt_filter_for_page(request.GET, _bank_queryset(self.organization))
        if not filterset.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items())
            return _bad_request(request, f"Invalid filters ({problems}).")
        prompts = filterset.qs.defer("minhash").order_by("created_at", "pk")
        return _export_response(export_lines(prompts=prompts, fmt=fmt), fmt, f"promptbank-{self.organization.slug}")


# --- one prompt --------------------------------------------------------------------------------------------------


class PromptDetailView(BankPageMixin, TenantObjectMixin, DetailView):
    """A prompt (own or global): its fields, versions with diffs, this organization's statistics, its variants and
    near duplicates; analysts edit their own prompts, switch them off and on, and make variants of any."""

    model = Prompt
    include_global_rows = True
    template_name = "promptbank/prompt_detail.html"
    context_object_name = "prompt"
    tab = "bank"

    def get_base_queryset(self) -> QuerySet[Prompt]:
        return Prompt.objects.select_related("variant_of", "near_duplicate_of", "author").defer("minhash")

    def _visible(self, prompt: Prompt | None) -> Prompt | None:
        """A linked prompt, only if this organization may see it."""
        if prompt is None or prompt.organization_id not in (None, self.organization.pk):
            return None
        return prompt

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        prompt: Prompt = self.object
        visible = _bank_queryset(self.organization).defer("minhash")
        versions = list(prompt.versions.select_related("changed_by").order_by("-version")[: VERSIONS_SHOWN + 1])
        history = []
        for index, version in enumerate(versions[:VERSIONS_SHOWN]):
            previous = versions[index + 1] if index + 1 < len(versions) else None
            history.append(
                {
                    "version": version,
                    "diff": render_diff(previous.text, version.text)
                    if previous and previous.text != version.text
                    else None,
                    "changes": field_changes(previous.fields, version.fields) if previous else [],
                    "is_first": previous is None and version.version == 1,
                }
            )
        context.update(
            history=history,
            versions_total=prompt.versions.count() if len(versions) > VERSIONS_SHOWN else len(versions),
            stats=PromptStats.objects.for_org(self.organization).filter(prompt=prompt).first(),
            variants=list(visible.filter(variant_of=prompt).order_by("mutator", "-created_at")[:RELATED_SHOWN]),
            near_duplicates=list(visible.filter(near_duplicate_of=prompt).order_by("-created_at")[:RELATED_SHOWN]),
            variant_parent=self._visible(prompt.variant_of),
            near_duplicate_parent=self._visible(prompt.near_duplicate_of),
            related_limit=RELATED_SHOWN,
        )
        if context["can_curate"]:
            context["variants_form"] = kwargs.get("variants_form") or VariantsForm()
            if not prompt.is_global:
                context["edit_form"] = kwargs.get("edit_form") or PromptEditForm(
                    initial={name: getattr(prompt, name) for name in PromptEditForm.EDITABLE}
                )
                context["edit_open"] = "edit_form" in kwargs
        return context

    def render_with(self, status: int = 400, **forms: Any) -> HttpResponse:
        """Re-render the prompt page with a bound form and its errors."""
        return self.render_to_response(self.get_context_data(object=self.object, **forms), status=status)


class PromptEditView(PromptDetailView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = prompt = self.get_object()
        _refuse_global(prompt, "prompts")
        form = PromptEditForm(request.POST)
        if form.is_valid():
            changes = form.changes(prompt)
            if not changes:
                messages.info(request, "Nothing changed, so no new version was written.")
                return redirect("promptbank:prompt_detail", pk=prompt.pk)
            try:
                updated = services.prompt_update(
                    prompt=prompt, actor=request.user, change_note=form.cleaned_data["change_note"], **changes
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                if updated.version == prompt.version:
                    messages.info(request, "Nothing changed, so no new version was written.")
                else:
                    messages.success(request, f"Saved as version {updated.version}.")
                return redirect("promptbank:prompt_detail", pk=prompt.pk)
        return self.render_with(edit_form=form)


class PromptVariantsView(PromptDetailView):
    """Variants go into the organization's own bank, also for a global prompt."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = prompt = self.get_object()
        form = VariantsForm(request.POST)
        if form.is_valid():
            try:
                results = services.variants_create(
                    prompt=prompt,
                    mutators=form.cleaned_data["mutators"],
                    organization=self.organization,
                    actor=request.user,
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                made = sum(1 for result in results if result.status != "duplicate")
                already = len(results) - made
                message = f"Made {made} variant{'s' if made != 1 else ''}"
                if already:
                    message += f"; {already} {'was' if already == 1 else 'were'} already in the bank"
                messages.success(request, message + ".")
                return redirect(reverse("promptbank:prompt_detail", args=[prompt.pk]) + "#variants")
        return self.render_with(variants_form=form)


class PromptActiveView(BankObjectActionView):
    """Deactivate (or reactivate) a private prompt: the form says which, so a double submit does no harm."""

    model = Prompt
    include_global_rows = True

    def act(self, obj: Prompt) -> str:
        _refuse_global(obj, "prompts")
        wanted = self.request.POST.get("active")
        if wanted not in ("true", "false"):
            raise ValidationFailed("Say whether the prompt should be active (active=true or active=false).")
        prompt = services.prompt_set_active(prompt=obj, active=wanted == "true", actor=self.request.user)
        if prompt.is_active:
            return "Prompt reactivated: tests and training use it again."
        return "Prompt deactivated: tests and training leave it out; releases keep the version they have."

    def success_url(self, obj: Prompt) -> str:
        return reverse("promptbank:prompt_detail", args=[obj.pk])


# --- imports -----------------------------------------------------------------------------------------------------


def run_payload(run: IngestionRun) -> dict[str, Any]:
    """What the run page shows, in the shape of the `ingestion.progress` live event (plus what only the row has)."""
    return {
        "run_id": str(run.pk),
        "status": run.status,
        **run.counts(),
        "lines_done": run.lines_done,
        "errors_total": run.errors_total,
        "is_finished": run.is_finished,
        "error": run.error,
    }


class ImportView(BankPageMixin, OrgPageMixin, TemplateView):
    """Upload a file to import through the pipeline (analyst+), and the organization's recent runs."""

    template_name = "promptbank/import_new.html"
    tab = "imports"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["runs"] = IngestionRun.objects.for_org(self.organization).select_related("created_by")[:25]
        if context["can_curate"]:
            context["form"] = kwargs.get("form") or ImportForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                run = import_start(
                    organization=self.organization,
                    channel=IngestionSource.PAGE,
                    source_name=form.cleaned_data["source_name"],
                    fileobj=upload,
                    filename=upload.name,
                    format=form.import_format,
                    license=form.cleaned_data["license"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                return redirect("promptbank:import_detail", pk=run.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ImportDetailView(BankPageMixin, TenantObjectMixin, DetailView):
    """One run: live counts while it runs (websocket, with polling as the fallback), then the errors by line."""

    model = IngestionRun
    template_name = "promptbank/import_detail.html"
    context_object_name = "run"
    tab = "imports"

    def get_base_queryset(self) -> QuerySet[IngestionRun]:
        return IngestionRun.objects.select_related("created_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        run: IngestionRun = self.object
        context["payload"] = run_payload(run)
        context["errors"] = run.errors or []
        context["ws_path"] = f"/ws/promptbank/imports/{run.pk}/"
        return context


class ImportStatusView(TenantObjectMixin, SingleObjectMixin, View):
    """The run's counts as JSON: the run page polls this when its websocket is down."""

    model = IngestionRun
    http_method_names = ["get"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return JsonResponse(run_payload(self.get_object()))


# --- submissions -------------------------------------------------------------------------------------------------


class SubmissionsView(BankPageMixin, OrgPageMixin, TemplateView):
    """The review queue in tabs by status; analysts submit prompts and accept or reject pending ones."""

    template_name = "promptbank/submissions.html"
    tab = "submissions"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        status = self.request.GET.get("status")
        if status not in SubmissionStatus.values:
            status = SubmissionStatus.PENDING
        submissions = Submission.objects.for_org(self.organization)
        counts = dict(submissions.order_by().values_list("status").annotate(n=Count("pk")))
        rows = submissions.filter(status=status).select_related("submitter", "reviewer")
        context.update(
            status=status,
            status_tabs=[(value, label, counts.get(value, 0)) for value, label in SubmissionStatus.choices],
            page_obj=Paginator(rows.order_by("-created_at", "pk"), PAGE_SIZE).get_page(self.request.GET.get("page")),
        )
        if context["can_curate"]:
            context["form"] = kwargs.get("form") or SubmissionForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SubmissionForm(request.POST)
        if form.is_valid():
            try:
                submission = services.submission_create(
                    organization=self.organization, submitter=request.user, source="user", **form.cleaned_data
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                if submission.occurrences > 1:
                    messages.info(
                        request,
                        f"That prompt is already waiting for review; it has now been seen "
                        f"{submission.occurrences} times.",
                    )
                else:
                    messages.success(request, "Submitted for review.")
                return redirect("promptbank:submissions")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class SubmissionAcceptView(BankObjectActionView):
    model = Submission

    def act(self, obj: Submission) -> str:
        form = SubmissionAcceptForm(self.request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        submission = services.submission_accept(submission=obj, reviewer=self.request.user, reason=reason)
        return f"Accepted: “{_short(submission.text, 60)}” is in the bank."

    def success_url(self, obj: Submission) -> str:
        return reverse("promptbank:submissions")


class SubmissionRejectView(BankObjectActionView):
    model = Submission

    def act(self, obj: Submission) -> str:
        form = SubmissionRejectForm(self.request.POST)
        if not form.is_valid():
            raise ValidationFailed(form.errors["reason"][0])
        services.submission_reject(submission=obj, reviewer=self.request.user, reason=form.cleaned_data["reason"])
        return f"Rejected: “{_short(obj.text, 60)}”."

    def success_url(self, obj: Submission) -> str:
        return reverse("promptbank:submissions")


# --- releases ----------------------------------------------------------------------------------------------------


def _releases(organization: Any) -> QuerySet[BankRelease]:
    return (
        selectors.visible_releases(organization)
        .select_related("created_by")
        .order_by("organization", "-major", "-minor", "-patch")
    )


class ReleasesView(BankPageMixin, OrgPageMixin, TemplateView):
    """The organization's releases (and the global bank's, read-only); admins cut, activate and roll back."""

    template_name = "promptbank/releases.html"
    tab = "releases"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        releases = list(_releases(self.organization))
        own = [release for release in releases if release.organization_id is not None]
        active = next((release for release in own if release.is_active), None)
        for release in own:
            release.is_rollback = active is not None and _semver(release) < _semver(active)
        regressions = selectors.release_regressions(releases)
        for release in releases:
            release.regression = _regression_display(regressions.get(release.pk))
        context.update(
            own_releases=own,
            global_releases=[release for release in releases if release.organization_id is None],
            active_release=active,
            compare_form=ReleaseCompareForm(organization=self.organization),
        )
        if context["can_release"]:
            context["form"] = kwargs.get("form") or ReleaseForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ReleaseForm(request.POST)
        if form.is_valid():
            try:
                release = services.release_create(
                    organization=self.organization,
                    bump=form.cleaned_data["bump"],
                    notes=form.cleaned_data["notes"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"Release v{release.version} created with {release.prompt_count} prompts.")
                return redirect("promptbank:release_detail", pk=release.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


def _semver(release: BankRelease) -> tuple[int, int, int]:
    return (release.major, release.minor, release.patch)


def _percent(rate: Any) -> str:
    return f"{rate * 100:.1f}%" if isinstance(rate, int | float) else "—"


def _movement(delta: float | None, *, higher_is_better: bool) -> dict[str, Any] | None:
    """A change between two releases as an arrow and percentage points, and whether it is good news."""
    if delta is None:
        return None
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    return {
        "text": f"{arrow} {delta * 100:+.1f} pp",
        "better": delta != 0 and (delta > 0) == higher_is_better,
        "worse": delta != 0 and (delta > 0) != higher_is_better,
    }


def _regression_display(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A release's firewall regression (`selectors.release_regressions`) as the releases page shows it."""
    if row is None:
        return None
    labels = dict(Category.choices)
    return {
        "status": row.get("status", ""),
        "error": row.get("error", ""),
        "engine": row.get("engine", ""),
        "session_id": row.get("session_id"),
        "detector_version": row.get("detector_version"),
        "previous_version": row.get("previous_version"),
        "attacks": row.get("attacks") or {},
        "benign": row.get("benign") or {},
        "sampled": bool(row.get("benign_sampled") or row.get("attacks_sampled")),
        "detection": _percent(row.get("detection_rate")),
        "detection_change": _movement(row.get("detection_delta"), higher_is_better=True),
        "fpr": _percent(row.get("false_positive_rate")),
        "fpr_change": _movement(row.get("fpr_delta"), higher_is_better=False),
        "categories": [
            {
                "label": labels.get(block["category"], block["category"]),
                "rate": _percent(block.get("detection_rate")),
                "blocked": block.get("blocked", 0),
                "scored": block.get("scored", 0),
                "change": _movement(block.get("delta"), higher_is_better=True),
            }
            for block in row.get("categories", [])
        ],
    }


class ReleaseDetailView(BankPageMixin, TenantObjectMixin, DetailView):
    """A release and the exact prompt versions it holds."""

    model = BankRelease
    include_global_rows = True
    template_name = "promptbank/release_detail.html"
    context_object_name = "release"
    tab = "releases"
    write_role = Role.ADMIN

    def get_base_queryset(self) -> QuerySet[BankRelease]:
        return BankRelease.objects.select_related("created_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        release: BankRelease = self.object
        entries = (
            release.entries.select_related("prompt_version")
            .annotate(text_preview=Substr("prompt_version__text", 1, PREVIEW_CHARS))
            .defer("prompt_version__text")
            .order_by("pk")
        )
        same_scope = _releases(self.organization).filter(organization_id=release.organization_id)
        previous = same_scope.filter(_older_than(release)).first()
        active = same_scope.filter(is_active=True).first()
        context.update(
            page_obj=Paginator(entries, PAGE_SIZE).get_page(self.request.GET.get("page")),
            previous_release=previous,
            is_rollback=active is not None and _semver(release) < _semver(active),
            preview_chars=PREVIEW_CHARS,
        )
        return context


class ReleaseExportView(TenantObjectMixin, SingleObjectMixin, View):
    """The exact prompt versions of a release (own or global) as JSON lines or CSV, streamed."""

    model = BankRelease
    include_global_rows = True
    http_method_names = ["get"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        release = self.get_object()
        fmt = request.GET.get("format", "jsonl")
        if fmt not in EXPORT_FORMATS:
            return _bad_request(request, f"Unknown export format “{fmt}”: choose jsonl or csv.")
        scope = self.organization.slug if release.organization_id else "global"
        return _export_response(export_lines(release=release, fmt=fmt), fmt, f"promptbank-{scope}-v{release.version}")


def _older_than(release: BankRelease) -> Q:
    return (
        Q(major__lt=release.major)
        | Q(major=release.major, minor__lt=release.minor)
        | Q(major=release.major, minor=release.minor, patch__lt=release.patch)
    )


class ReleaseActivateView(BankObjectActionView):
    """Make a release the organization's active one; an older one is a rollback."""

    model = BankRelease
    include_global_rows = True
    write_role = Role.ADMIN

    def act(self, obj: BankRelease) -> str:
        _refuse_global(obj, "releases")
        previous = BankRelease.objects.for_org(self.organization).filter(is_active=True).exclude(pk=obj.pk).first()
        services.release_activate(release=obj, actor=self.request.user)
        if previous is not None and _semver(obj) < _semver(previous):
            return f"Rolled back to v{obj.version} (from v{previous.version})."
        return f"v{obj.version} is now the active release."

    def success_url(self, obj: BankRelease) -> str:
        return reverse("promptbank:release_detail", args=[obj.pk])


class ReleaseCompareView(BankPageMixin, OrgPageMixin, TemplateView):
    """What changed from one release to another: prompts added, removed, and changed (another version)."""

    template_name = "promptbank/release_compare.html"
    tab = "releases"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = ReleaseCompareForm(self.request.GET or None, organization=self.organization)
        context["form"] = form
        if form.is_bound and form.is_valid():
            older, newer = form.cleaned_data["older"], form.cleaned_data["newer"]
            diff = services.release_compare(older, newer)
            context.update(
                older=older,
                newer=newer,
                diff=diff,
                sections=[
                    (key, title, *_diff_rows(getattr(diff, key)))
                    for key, title in (("added", "Added"), ("removed", "Removed"), ("changed", "Changed"))
                ],
                rows_shown=COMPARE_ROWS_SHOWN,
            )
        return context


def _diff_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first rows of one compare table (with a text diff for a changed prompt), and how many there are."""
    shaped = []
    for row in rows[:COMPARE_ROWS_SHOWN]:
        row = {**row, "preview": _short(row.get("text", ""), PREVIEW_CHARS)}
        old_text, new_text = row.get("from_text"), row.get("text")
        if isinstance(old_text, str) and isinstance(new_text, str) and old_text != new_text:
            row["text_diff"] = render_diff(old_text[:DIFF_MAX_CHARS], new_text[:DIFF_MAX_CHARS])
        shaped.append(row)
    return shaped, len(rows)


# --- learning policy ----------------------------------------------------------------------------------------------

LEARNING_AUDIT_SHOWN = 20


class LearningPolicyView(BankPageMixin, OrgPageMixin, TemplateView):
    """How much of the learning loop runs by itself: every member reads it, admins change it (audited); the recent
    changes from the audit log are listed beside it."""

    template_name = "promptbank/learning_policy.html"
    tab = "learning"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        policy = learning.learning_policy_for(self.organization)
        changes = (
            AuditLog.objects.for_org(self.organization)
            .filter(action=AuditAction.LEARNING_POLICY_CHANGED, target_type=policy._meta.label)
            .select_related("actor")
            .order_by("-created_at", "-sequence")[:LEARNING_AUDIT_SHOWN]
        )
        context.update(
            policy=policy,
            audit_rows=[
                {
                    "entry": entry,
                    "changes": [
                        (name.replace("_", " "), _display(change.get("from")), _display(change.get("to")))
                        for name, change in sorted(((entry.data or {}).get("changes") or {}).items())
                        if isinstance(change, dict)
                    ],
                }
                for entry in changes
            ],
        )
        if context["can_release"]:  # admins
            context["form"] = kwargs.get("form") or LearningPolicyForm(policy=policy)
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = LearningPolicyForm(request.POST)
        if form.is_valid():
            try:
                learning.learning_policy_update(
                    organization=self.organization, changes=form.changes(), actor=request.user, ip=client_ip(request)
                )
            except ApplicationError as exc:
                form_error(form, exc)
            else:
                messages.success(request, "Learning policy saved.")
                return redirect("promptbank:learning_policy")
        return self.render_to_response(self.get_context_data(form=form), status=400)


# --- nearest known attacks ----------------------------------------------------------------------------------------


class NearestView(BankPageMixin, OrgPageMixin, TemplateView):
    """Paste a text, see the bank prompts (global and own) and threat patterns nearest to it. Every member may
    search: the POST only reads (the text stays out of the URL and the access log)."""

    template_name = "promptbank/nearest.html"
    tab = "nearest"
    write_role = Role.VIEWER

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", NearestForm(initial={"limit": nearest.DEFAULT_LIMIT}))
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = NearestForm(request.POST)
        results = None
        if form.is_valid():
            try:
                results = nearest.nearest_attacks(organization=self.organization, **form.cleaned_data)
            except ApplicationError as exc:
                form_error(form, exc)
        context = self.get_context_data(form=form, results=results, searched=results is not None)
        return self.render_to_response(context, status=200 if results is not None else 400)
