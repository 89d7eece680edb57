"""Red-team testing pages, under /testing/: the overview with a quick "new session" form, targets, suites, sessions
(live progress, summary tables, results, cancel, resume, exports), one result with its judges and the analyst's
override, and the comparison of two sessions.

Views parse a form, call one service or selector and render or redirect; `testing.services` validates, writes and
audits. Tenancy and roles come from `evalence.views`: every page subclasses `OrgPageMixin`, every view of one object
`TenantObjectMixin`, so another organization's session is a 404 and a missing role a 403. Viewers read; analysts
start, cancel and resume sessions, edit suites, override verdicts and offer findings to the bank; admins manage the
targets (they hold credentials).

The session page renders its state on the server, then `static/js/testing.js` keeps it current from the session's
websocket (`testing.progress` events, the same `runner.progress_payload` the consumer sends on connect), polling
the API while the socket is down.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from django.views.generic import DetailView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from accounts.choices import Role
from evalence.errors import ApplicationError
from evalence.views import ObjectActionView, OrgPageMixin, TenantObjectMixin, error_message
from promptbank.choices import Category, Mutator, Severity
from testing import reports, selectors, services, stats
from testing.choices import ResultKind, SessionStatus, Verdict
from testing.forms import (
    CompareForm,
    OverrideForm,
    SessionStartForm,
    SuiteForm,
    TargetForm,
    result_filter_for_page,
    service_error,
    session_filter_for_page,
)
from testing.models import Target, TestResult, TestSession, TestSuite

PAGE_SIZE = 50
LATEST_SESSIONS = 10
LATEST_FINDINGS = 5
RESPONSE_PREVIEW_CHARS = 240
COMPARE_ROWS_SHOWN = 200
EXPORT_LABELS = {"html": "HTML", "csv": "CSV", "json": "JSON", "junit": "JUnit XML", "sarif": "SARIF"}


# --- shared -------------------------------------------------------------------------------------------------------


class TestingPageMixin:
    """Context every testing page shares: the nav entry and tab, and what the member may do. Listed before
    `OrgPageMixin`, so its `write_role` wins: writes need an analyst unless a view asks for more (targets: admin)."""

    __test__ = False  # not a pytest class
    tab = ""
    write_role: str | None = Role.ANALYST
    organization: Any
    membership: Any

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context.update(
            nav_active="testing",
            tab=self.tab,
            organization=self.organization,
            can_run=self.membership.has_role(Role.ANALYST),
            can_manage=self.membership.has_role(Role.ADMIN),
        )
        return context


class TestingActionView(ObjectActionView):
    """A POST-only action on one object (analyst+ unless `write_role` says more)."""

    __test__ = False
    write_role = Role.ANALYST


def pct(value: float | None, signed: bool = False) -> str:
    """A rate as a percentage with one decimal ("12.5%"); "—" for none. Signed for a change ("+3.0 pp")."""
    if value is None:
        return "—"
    if signed:
        return f"{value * 100:+.1f} pp"
    return f"{value * 100:.1f}%"


def ci_text(ci: Any) -> str:
    try:
        low, high = ci
    except (TypeError, ValueError):
        return "—"
    return f"{low * 100:.1f}\u2013{high * 100:.1f}%"  # an en dash between the bounds


def asr_of(session: TestSession) -> dict[str, Any] | None:
    """The attack success rate with its 95% interval: the stored summary once finished, the counts so far while it
    runs (they include the baseline items, so the live figure is an estimate until the summary is written)."""
    summary = session.summary or {}
    if "attack_success_rate" in summary and summary.get("scored"):
        rate, ci = summary["attack_success_rate"], summary.get("ci95") or [0.0, 0.0]
        return {"rate": rate, "pct": pct(rate), "ci": ci_text(ci), "scored": summary["scored"], "final": True}
    counts = session.counts or {}
    succeeded = int(counts.get(Verdict.SUCCEEDED, 0))
    scored = succeeded + int(counts.get(Verdict.RESISTED, 0)) + int(counts.get(Verdict.BLOCKED, 0))
    if not scored:
        return None
    rate = succeeded / scored
    return {"rate": rate, "pct": pct(rate), "ci": ci_text(stats.wilson_interval(succeeded, scored)), "scored": scored}


def percent_done(session: TestSession) -> int:
    if not session.total_samples:
        return 100 if session.is_finished else 0
    return min(100, round(100 * session.completed_samples / session.total_samples))


def session_rows(sessions: Any) -> list[dict[str, Any]]:
    """What a sessions table shows per row (target and suite names from the frozen config if they were deleted)."""
    rows = []
    for session in sessions:
        config = session.config or {}
        rows.append(
            {
                "session": session,
                "target_name": session.target.name if session.target else (config.get("target") or {}).get("name"),
                "suite_name": session.suite.name if session.suite else (config.get("suite") or {}).get("name"),
                "percent": percent_done(session),
                "asr": asr_of(session),
            }
        )
    return rows


def _label(choices: Any, value: str) -> str:
    return dict(choices).get(value, value)


def summary_rows(groups: dict[str, dict[str, Any]], labels: Any) -> list[dict[str, Any]]:
    rows = []
    for key, block in (groups or {}).items():
        rows.append({**block, "key": key, "label": _label(labels, key), "pct": pct(block.get("rate"))})
        rows[-1]["ci"] = ci_text(block.get("ci95"))
    return rows


def finding_rows(session: TestSession) -> list[dict[str, Any]]:
    """The latest successful attacks, in the shape of the live event's `latest_findings`."""
    rows = (
        selectors.results_for(session)
        .filter(kind=ResultKind.ATTACK, verdict=Verdict.SUCCEEDED)
        .select_related(None)
        .order_by("-completed_at", "-sequence")
        .only("id", "category", "mutator", "prompt_text", "reason")[:LATEST_FINDINGS]
    )
    return [
        {
            "id": str(row.pk),
            "category": row.category,
            "mutator": row.mutator,
            "prompt_text": row.prompt_text[:200],
            "reason": row.reason[:200],
        }
        for row in rows
    ]


# --- overview -----------------------------------------------------------------------------------------------------


class IndexView(TestingPageMixin, OrgPageMixin, TemplateView):
    """The latest sessions with their progress and attack success rate, and a quick "new session" form."""

    template_name = "testing/index.html"
    tab = "overview"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        org = self.organization
        context.update(
            rows=session_rows(selectors.latest_sessions(org, LATEST_SESSIONS)),
            target_count=selectors.targets_for(org).count(),
            suite_count=selectors.suites_for(org).count(),
            running_count=selectors.sessions_for(org).filter(status=SessionStatus.RUNNING).count(),
        )
        if context["can_run"]:
            wanted = {name: self.request.GET.get(name) for name in ("target", "suite") if self.request.GET.get(name)}
            context["form"] = kwargs.get("form") or SessionStartForm(organization=org, initial=wanted)
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SessionStartForm(request.POST, organization=self.organization)
        if form.is_valid():
            try:
                session = services.session_create(
                    organization=self.organization,
                    actor=request.user,
                    target=form.cleaned_data["target"],
                    suite=form.cleaned_data["suite"],
                    name=form.cleaned_data["name"],
                )
            except (ValidationError, ApplicationError) as exc:
                service_error(form, exc)
            else:
                messages.success(request, f"Session queued: {session.total_samples} items to send.")
                return redirect("testing:session_detail", pk=session.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


# --- targets ------------------------------------------------------------------------------------------------------


class TargetListView(TestingPageMixin, OrgPageMixin, TemplateView):
    template_name = "testing/targets.html"
    tab = "targets"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["targets"] = selectors.targets_for(self.organization).defer("api_key", "headers", "system_prompt")
        return context


class TargetCreateView(TestingPageMixin, OrgPageMixin, TemplateView):
    """Admins add a target; the fields of other kinds are hidden by the page's script, validated by the service."""

    template_name = "testing/target_form.html"
    tab = "targets"
    min_role = Role.ADMIN
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["form"] = kwargs.get("form") or TargetForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TargetForm(request.POST)
        if form.is_valid():
            try:
                target = services.target_create(
                    organization=self.organization, actor=request.user, **form.fields_for_service()
                )
            except (ValidationError, ApplicationError) as exc:
                service_error(form, exc)
            else:
                messages.success(request, f"Target “{target.name}” added. Test the connection before a session.")
                return redirect("testing:target_detail", pk=target.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class TargetDetailView(TestingPageMixin, TenantObjectMixin, DetailView):
    """A target for every member (secrets masked); admins edit it, test the connection or delete it."""

    model = Target
    template_name = "testing/target_form.html"
    context_object_name = "target"
    tab = "targets"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        target: Target = self.object
        context["sessions"] = session_rows(selectors.sessions_for(self.organization).filter(target=target)[:5])
        if context["can_manage"]:
            context["form"] = kwargs.get("form") or TargetForm(target=target)
        else:
            context["read_only"] = TargetForm(target=target)  # for the masked key hint and the header names
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = target = self.get_object()
        form = TargetForm(request.POST, target=target)
        if form.is_valid():
            try:
                for field in form.secrets_to_clear():
                    services.target_clear_secret(target=target, actor=request.user, field=field)
                fields = form.fields_for_service()
                for field in form.secrets_to_clear():
                    fields.pop(field, None)
                services.target_update(target=target, actor=request.user, **fields)
            except (ValidationError, ApplicationError) as exc:
                target.refresh_from_db()
                service_error(form, exc)
            else:
                messages.success(request, f"Target “{target.name}” saved.")
                return redirect("testing:target_detail", pk=target.pk)
        return self.render_to_response(self.get_context_data(object=target, form=form), status=400)


class TargetDeleteView(TestingActionView):
    """Delete a target (the page asks first); its sessions keep their results and the frozen config."""

    model = Target
    write_role = Role.ADMIN

    def act(self, obj: Target) -> str:
        name = obj.name
        services.target_delete(target=obj, actor=self.request.user)
        return f"Target “{name}” deleted; its sessions keep their results."

    def success_url(self, obj: Target) -> str:
        if Target.objects.filter(pk=obj.pk).exists():
            return reverse("testing:target_detail", args=[obj.pk])
        return reverse("testing:targets")


class TargetCheckView(TestingActionView):
    """ "Test connection": one short benign prompt; the answer (or the failure) is the message and is kept on the
    target as its last check."""

    model = Target
    write_role = Role.ADMIN

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        target = self.get_object()
        try:
            ok, message = services.target_check(target=target)
        except (ValidationError, ApplicationError) as exc:
            messages.error(request, error_message(exc))
        else:
            text = f"Connection test: {message}" if message else "Connection test done."
            (messages.success if ok else messages.error)(request, text)
        return redirect(self.success_url(target))

    def success_url(self, obj: Target) -> str:
        return reverse("testing:target_detail", args=[obj.pk])


# --- suites -------------------------------------------------------------------------------------------------------


class SuiteListView(TestingPageMixin, OrgPageMixin, TemplateView):
    template_name = "testing/suites.html"
    tab = "suites"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["suites"] = selectors.suites_for(self.organization)
        context["category_labels"] = dict(Category.choices)
        context["mutator_labels"] = dict(Mutator.choices)
        return context


class SuiteCreateView(TestingPageMixin, OrgPageMixin, TemplateView):
    template_name = "testing/suite_form.html"
    tab = "suites"
    min_role = Role.ANALYST

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["form"] = kwargs.get("form") or SuiteForm(organization=self.organization)
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = SuiteForm(request.POST, organization=self.organization)
        if form.is_valid():
            try:
                suite = services.suite_create(
                    organization=self.organization, actor=request.user, **form.fields_for_service()
                )
            except (ValidationError, ApplicationError) as exc:
                service_error(form, exc)
            else:
                messages.success(request, f"Suite “{suite.name}” saved.")
                return redirect("testing:suite_detail", pk=suite.pk)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class SuiteDetailView(TestingPageMixin, TenantObjectMixin, DetailView):
    """A suite and how many items a session of it would send now (`services.plan_items`); analysts edit it."""

    model = TestSuite
    template_name = "testing/suite_detail.html"
    context_object_name = "suite"
    tab = "suites"

    def get_base_queryset(self) -> QuerySet[TestSuite]:
        return TestSuite.objects.select_related("release", "llm_judge")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        suite: TestSuite = self.object
        planned = services.plan_items(suite, self.organization)
        attacks = sum(1 for item in planned if item.kind == ResultKind.ATTACK)
        context.update(
            planned_total=len(planned),
            planned_attacks=attacks,
            planned_baseline=len(planned) - attacks,
            planned_prompts=len({item.prompt_id for item in planned if item.kind == ResultKind.ATTACK}),
            category_labels=[_label(Category.choices, c) for c in suite.categories],
            severity_labels=[_label(Severity.choices, s) for s in suite.severities],
            mutator_labels=[_label(Mutator.choices, m) for m in suite.mutators],
            sessions=session_rows(selectors.sessions_for(self.organization).filter(suite=suite)[:5]),
        )
        if context["can_run"]:
            context["form"] = kwargs.get("form") or SuiteForm(organization=self.organization, suite=suite)
            context["edit_open"] = "form" in kwargs
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = suite = self.get_object()
        form = SuiteForm(request.POST, organization=self.organization, suite=suite)
        if form.is_valid():
            try:
                services.suite_update(suite=suite, actor=request.user, **form.fields_for_service())
            except (ValidationError, ApplicationError) as exc:
                suite.refresh_from_db()
                service_error(form, exc)
            else:
                messages.success(request, f"Suite “{suite.name}” saved.")
                return redirect("testing:suite_detail", pk=suite.pk)
        return self.render_to_response(self.get_context_data(object=suite, form=form), status=400)


# --- sessions -----------------------------------------------------------------------------------------------------


class SessionListView(TestingPageMixin, OrgPageMixin, TemplateView):
    """The organization's sessions through the API's filters (status, target)."""

    template_name = "testing/sessions.html"
    tab = "sessions"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        org = self.organization
        filterset = session_filter_for_page(params or None, selectors.sessions_for(org), org)
        page = Paginator(filterset.qs.order_by("-created_at", "pk"), PAGE_SIZE).get_page(params.get("page"))
        context.update(
            filter=filterset,
            page_obj=page,
            rows=session_rows(page.object_list),
            is_filtered=any(params.get(name) for name in ("status", "target")),
        )
        return context


def _mutators_of(session: TestSession) -> list[str]:
    return list((session.config.get("suite") or {}).get("mutators") or [])


class SessionDetailView(TestingPageMixin, TenantObjectMixin, DetailView):
    """A session: status, counts, progress, rate, ETA and the latest findings (kept live by testing.js), the summary
    by category, severity and mutator with the baseline, the results with filters, and the actions."""

    model = TestSession
    template_name = "testing/session_detail.html"
    context_object_name = "session"
    tab = "sessions"
    http_method_names = ["get", "head", "options"]

    def get_base_queryset(self) -> QuerySet[TestSession]:
        return TestSession.objects.select_related("target", "suite", "created_by")

    def get_object(self, queryset: QuerySet | None = None) -> TestSession:
        return services.session_recover_if_stale(super().get_object(queryset))  # as the API does on read

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from testing.runner import progress_payload

        context = super().get_context_data(**kwargs)
        session: TestSession = self.object
        params = self.request.GET
        summary = session.summary if session.is_finished and session.summary else stats.session_summary(session)
        counts = session.counts or {}
        results = selectors.results_for(session).defer("judges", "evidence", "original_text").order_by("sequence")
        filterset = result_filter_for_page(params or None, results, _mutators_of(session))
        page = Paginator(filterset.qs, PAGE_SIZE).get_page(params.get("page"))
        config = session.config or {}
        context.update(
            payload=progress_payload(session),
            percent=percent_done(session),
            asr=asr_of(session),
            verdict_counts=[(value, label, counts.get(value, 0)) for value, label in Verdict.choices],
            findings=finding_rows(session),
            summary=summary,
            by_category=summary_rows(summary.get("by_category"), Category.choices),
            by_severity=summary_rows(summary.get("by_severity"), Severity.choices),
            by_mutator=summary_rows(summary.get("by_mutator"), [("", "Original (no mutator)"), *Mutator.choices]),
            baseline=_baseline(summary.get("baseline") or {}),
            filter=filterset,
            page_obj=page,
            is_filtered=any(params.get(name) for name in ("verdict", "category", "mutator", "kind", "q")),
            preview_chars=RESPONSE_PREVIEW_CHARS,
            target_name=session.target.name if session.target else (config.get("target") or {}).get("name", ""),
            suite_name=session.suite.name if session.suite else (config.get("suite") or {}).get("name", ""),
            export_links=[
                (EXPORT_LABELS.get(fmt, fmt), reverse("testing:session_export", kwargs={"pk": session.pk, "fmt": fmt}))
                for fmt in reports.EXPORT_FORMATS
            ],
            can_cancel=context["can_run"] and not session.is_finished,
            can_resume=context["can_run"]
            and (
                session.status in (SessionStatus.FAILED, SessionStatus.CANCELLED) or services.session_is_stale(session)
            ),
            ws_path=f"/ws/testing/sessions/{session.pk}/",
            status_url=reverse("api:testing:session-detail", args=[session.pk]),
        )
        return context


def _baseline(baseline: dict[str, Any]) -> dict[str, Any]:
    if not baseline:
        return {}
    return {
        **baseline,
        "pct": pct(baseline.get("rate")),
        "ci": ci_text(baseline.get("ci95")),
        "refusal_pct": pct(baseline.get("refusal_rate")),
    }


class SessionCancelView(TestingActionView):
    model = TestSession

    def act(self, obj: TestSession) -> str:
        session = services.session_cancel(session=obj, actor=self.request.user)
        if session.status == SessionStatus.CANCELLED:
            return "Session cancelled."
        return "Cancelling: the requests in flight finish, nothing new is sent."

    def success_url(self, obj: TestSession) -> str:
        return reverse("testing:session_detail", args=[obj.pk])


class SessionResumeView(TestingActionView):
    model = TestSession

    def act(self, obj: TestSession) -> str:
        services.session_resume(session=obj, actor=self.request.user)
        return "Session resumed: only its pending items are sent."

    def success_url(self, obj: TestSession) -> str:
        return reverse("testing:session_detail", args=[obj.pk])


class SessionExportView(TestingPageMixin, TenantObjectMixin, SingleObjectMixin, View):
    """The session as a download, in the format its URL names (`reports.export_session`)."""

    model = TestSession
    http_method_names = ["get"]
    fmt = ""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        session = self.get_object()
        body, content_type, filename = reports.export_session(session, kwargs.get("fmt") or self.fmt)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# --- results ------------------------------------------------------------------------------------------------------


def judge_rows(judges: Any) -> list[dict[str, Any]]:
    """Each judge's verdict, reason and evidence, whatever shape a judge stored (the list is shown, never trusted)."""
    rows = []
    for entry in judges if isinstance(judges, list) else []:
        if not isinstance(entry, dict):
            continue
        evidence = entry.get("evidence")
        if evidence in (None, "", [], {}):
            shown: list[str] = []
        elif isinstance(evidence, list):
            shown = [e if isinstance(e, str) else _compact(e) for e in evidence]
        else:
            shown = [evidence if isinstance(evidence, str) else _compact(evidence)]
        rows.append(
            {
                "name": str(entry.get("name") or entry.get("judge") or "judge"),
                "verdict": str(entry.get("verdict") or ""),
                "reason": str(entry.get("reason") or ""),
                "score": entry.get("score"),
                "evidence": shown,
            }
        )
    return rows


def _compact(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 500 else text[:499] + "…"


class ResultDetailView(TestingPageMixin, TenantObjectMixin, DetailView):
    """One result: the prompt sent (and the original), the response, every judge's verdict and evidence, who
    overrode it and from what; analysts override the verdict or offer a successful attack to the bank."""

    model = TestResult
    template_name = "testing/result_detail.html"
    context_object_name = "result"
    tab = "sessions"

    def get_base_queryset(self) -> QuerySet[TestResult]:
        return TestResult.objects.select_related("session", "overridden_by", "prompt", "submission")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        result: TestResult = self.object
        context.update(
            session=result.session,
            judge_rows=judge_rows(result.judges),
            evidence_rows=judge_rows([{"name": "", "evidence": result.evidence}])[0]["evidence"],
            can_submit=context["can_run"]
            and result.kind == ResultKind.ATTACK
            and result.verdict == Verdict.SUCCEEDED
            and not result.submission_id,
        )
        if context["can_run"] and result.verdict != Verdict.PENDING:
            context["override_form"] = kwargs.get("override_form") or OverrideForm()
        return context


class ResultOverrideView(ResultDetailView):
    """An analyst's verdict replaces the judges' (kept as the original); audited; the summary is redone."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = result = self.get_object()
        form = OverrideForm(request.POST)
        if form.is_valid():
            try:
                services.result_override(
                    result=result,
                    actor=request.user,
                    verdict=form.cleaned_data["verdict"],
                    reason=form.cleaned_data["reason"],
                )
            except (ValidationError, ApplicationError) as exc:
                service_error(form, exc)
            else:
                messages.success(request, f"Verdict set to {_label(Verdict.choices, form.cleaned_data['verdict'])}.")
                return redirect(reverse("testing:result_detail", args=[result.pk]) + "#override")
        return self.render_to_response(self.get_context_data(object=result, override_form=form), status=400)


class ResultSubmitView(TestingActionView):
    """Offer a successful attack to the prompt bank's review queue (a submission with source "testing")."""

    model = TestResult

    def act(self, obj: TestResult) -> str:
        services.finding_submit(result=obj, actor=self.request.user)
        return "Offered to the prompt bank: the finding waits in its review queue."

    def success_url(self, obj: TestResult) -> str:
        return reverse("testing:result_detail", args=[obj.pk])


# --- compare ------------------------------------------------------------------------------------------------------


def _labelled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    categories, severities, mutators = dict(Category.choices), dict(Severity.choices), dict(Mutator.choices)
    return [
        {
            **row,
            "category": categories.get(row.get("category"), row.get("category")),
            "severity": severities.get(row.get("severity"), row.get("severity")),
            "mutator": mutators.get(row.get("mutator"), row.get("mutator")),
        }
        for row in rows
    ]


class CompareView(TestingPageMixin, OrgPageMixin, TemplateView):
    """Two sessions item by item: new findings, fixed, still failing, and the rate change overall and per category."""

    template_name = "testing/compare.html"
    tab = "compare"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = CompareForm(self.request.GET or None, organization=self.organization)
        context["form"] = form
        if form.is_bound and form.is_valid():
            comparison = stats.compare_sessions(form.cleaned_data["base"], form.cleaned_data["head"]).as_dict()
            labels = dict(Category.choices)
            change = comparison["rate_change"]
            context.update(
                base=form.cleaned_data["base"],
                head=form.cleaned_data["head"],
                comparison=comparison,
                overall_change={
                    "base": pct(change.get("base")),
                    "head": pct(change.get("head")),
                    "delta": pct(change.get("delta"), signed=True),
                    "worse": (change.get("delta") or 0) > 0,
                },
                category_changes=[
                    {
                        "label": labels.get(category, category),
                        "base": pct(values.get("base")),
                        "head": pct(values.get("head")),
                        "delta": pct(values.get("delta"), signed=True),
                        "worse": (values.get("delta") or 0) > 0,
                    }
                    for category, values in (change.get("by_category") or {}).items()
                ],
                sections=[
                    (key, title, _labelled(comparison[key][:COMPARE_ROWS_SHOWN]), len(comparison[key]))
                    for key, title in (
                        ("new_findings", "New findings"),
                        ("fixed", "Fixed"),
                        ("still_failing", "Still failing"),
                    )
                ],
                rows_shown=COMPARE_ROWS_SHOWN,
            )
        return context
