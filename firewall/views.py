"""Firewall pages, under /firewall/: evaluations with filters and feedback, the playground, the policy, the emergency
stop and the organization's threat patterns.

Views parse a form, call one service or selector and render or redirect; `firewall.services` validates, writes and
audits. Tenancy and roles come from `evalence.views`: every page subclasses `OrgPageMixin`, every view of one object
`TenantObjectMixin`, so another organization's evaluation is a 404 and a missing role a 403. Viewers read; analysts
use the playground and give feedback; admins change the policy and the emergency stop.

Evidence is highlighted on the server (`highlight`): the text is escaped piece by piece and only the `<mark>` tags
around the detectors' spans are markup, so an input holding HTML shows as text.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.db.models.functions import Substr
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.generic import DetailView, TemplateView

from accounts.choices import AuditAction, Role
from accounts.models import AuditLog
from evalence.errors import ApplicationError, Conflict
from evalence.http import client_ip
from evalence.logging import get_request_id
from evalence.views import OrgPageMixin, TenantObjectMixin
from firewall import selectors, services
from firewall.choices import DETECTORS, Decision, EvaluationSource
from firewall.engine.normalize import normalize
from firewall.forms import (
    DETECTOR_LABELS,
    POLICY_THREATS,
    EmergencyResumeForm,
    EmergencyStopForm,
    FeedbackForm,
    PlaygroundForm,
    PolicyForm,
    TimeRangeForm,
    evaluation_filter_for_page,
    service_error,
)
from firewall.models import Evaluation

PAGE_SIZE = 50
PREVIEW_CHARS = 140
AUDIT_SHOWN = 10
MAX_MARKED_SPANS = 500


# --- evidence highlighting ----------------------------------------------------------------------------------------


def _spans(detectors: list[dict[str, Any]], view: str, length: int) -> list[tuple[int, int, str]]:
    """The well-formed spans of the findings over one view of the text, clamped to it, labelled by detector."""
    found: list[tuple[int, int, str]] = []
    for entry in detectors or []:
        if not isinstance(entry, dict) or entry.get("view") != view:
            continue
        label = str(entry.get("name", ""))
        if entry.get("rule_id"):
            label += f" {entry['rule_id']}"
        for span in entry.get("spans") or []:
            try:
                start, end = int(span[0]), int(span[1])
            except (TypeError, ValueError, IndexError):
                continue
            start, end = max(0, start), min(length, end)
            if start < end:
                found.append((start, end, label))
    return found[:MAX_MARKED_SPANS]


def highlight(text: str, spans: list[tuple[int, int, str]]) -> SafeString:
    """The text, escaped, with every span wrapped in `<mark>` (overlaps split into runs, each titled with the
    detectors that matched it)."""
    spans = [(max(0, s), min(len(text), e), label) for s, e, label in spans]
    spans = [(s, e, label) for s, e, label in spans if s < e]
    if not spans:
        return escape(text)
    points = sorted({0, len(text), *(s for s, _, _ in spans), *(e for _, e, _ in spans)})
    pieces: list[str] = []
    for start, end in pairwise(points):
        labels = sorted({label for s, e, label in spans if s <= start and end <= e})
        piece = text[start:end]
        if labels:
            pieces.append(format_html('<mark class="fw-mark" title="{}">{}</mark>', ", ".join(labels), piece))
        else:
            pieces.append(escape(piece))
    return mark_safe("".join(pieces))  # noqa: S308 - every piece above is escaped or built by format_html


def evidence_texts(text: str, detectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text blocks a page shows with the evidence marked: the text as sent (secrets, PII, leaks index it) and,
    when normalization changed it and a detector matched there, the normalized text the attack detectors read."""
    original = _spans(detectors, "original", len(text))
    normalized_text = normalize(text).text
    normalized = _spans(detectors, "normalized", len(normalized_text))
    if normalized_text == text:
        return [{"title": "Text", "html": highlight(text, original + normalized), "marks": len(original + normalized)}]
    blocks = [{"title": "Text as sent", "html": highlight(text, original), "marks": len(original)}]
    if normalized:
        blocks.append(
            {
                "title": "Normalized text (what the attack detectors read)",
                "html": highlight(normalized_text, normalized),
                "marks": len(normalized),
            }
        )
    return blocks


def detector_rows(detectors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding for the detectors table, with its evidence as a list of strings."""
    rows = []
    for entry in detectors or []:
        if not isinstance(entry, dict):
            continue
        evidence = entry.get("evidence") or []
        rows.append(
            {
                "name": entry.get("name", ""),
                "rule_id": entry.get("rule_id", ""),
                "score": entry.get("score", 0.0),
                "threat_type": entry.get("threat_type", "none"),
                "severity": entry.get("severity", "none"),
                "view": entry.get("view", ""),
                "evidence": [str(e) for e in evidence] if isinstance(evidence, list) else [str(evidence)],
                "spans": len(entry.get("spans") or []),
            }
        )
    return rows


# --- shared -------------------------------------------------------------------------------------------------------


class FirewallPageMixin:
    """Context every firewall page shares: the nav entry and tab, what the member may do, and the policy (for the
    emergency-stop banner). Listed before `OrgPageMixin`, so its `write_role` wins: writes need an analyst unless a
    view asks for more (the policy and the emergency stop need an admin)."""

    tab = ""
    write_role: str | None = Role.ANALYST
    organization: Any
    membership: Any

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        context.update(
            nav_active="firewall",
            tab=self.tab,
            organization=self.organization,
            can_triage=self.membership.has_role(Role.ANALYST),
            can_admin=self.membership.has_role(Role.ADMIN),
            policy=selectors.policy_for(self.organization),
        )
        return context


# --- evaluations --------------------------------------------------------------------------------------------------


class IndexView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """The organization's evaluations through the API's filters (plus time presets), with counts by decision for the
    other filters, so each decision chip says what choosing it would show."""

    template_name = "firewall/evaluations.html"
    tab = "evaluations"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        ranges = TimeRangeForm(params)
        since = ranges.since()
        data = params.copy()
        if since is not None:  # a preset wins over the From and Until fields
            data.pop("since", None)
            data.pop("until", None)
        base = selectors.evaluations_for(self.organization)
        if since is not None:
            base = base.filter(created_at__gte=since)
        filterset = evaluation_filter_for_page(data or None, base)
        without_decision = data.copy()
        without_decision.pop("decision", None)
        counted = evaluation_filter_for_page(without_decision or None, base).qs
        counts = dict(counted.order_by().values_list("decision").annotate(n=Count("pk")))
        rows = filterset.qs.defer("text", "detectors", "context", "sanitized_text").annotate(
            text_preview=Substr("text", 1, PREVIEW_CHARS)
        )
        context.update(
            filter=filterset,
            range_form=ranges,
            page_obj=Paginator(rows.order_by("-created_at", "pk"), PAGE_SIZE).get_page(params.get("page")),
            decision_counts=[(value, label, counts.get(value, 0)) for value, label in Decision.choices],
            selected_decisions=params.getlist("decision"),
            counts_total=sum(counts.values()),
            text_hash=params.get("text_hash", ""),
            is_filtered=any(params.get(name) for name in [*filterset.form.fields, "range"]),
            preview_chars=PREVIEW_CHARS,
        )
        return context


def _submission_for(evaluation: Evaluation) -> Any:
    """The bank submission the latest feedback on this evaluation went to (`services.feedback_record` notes it)."""
    from promptbank.models import Submission

    submission_id = (evaluation.context or {}).get("feedback_submission_id")
    if not submission_id:
        return None
    return Submission.objects.for_org(evaluation.organization).filter(pk=submission_id).first()


class EvaluationDetailView(FirewallPageMixin, TenantObjectMixin, DetailView):
    """One evaluation: the text with the evidence marked, each detector, the context, the sanitized text and the
    feedback form (analysts), with a link to the bank submission feedback created."""

    model = Evaluation
    template_name = "firewall/evaluation_detail.html"
    context_object_name = "evaluation"
    tab = "evaluations"

    def get_base_queryset(self) -> QuerySet[Evaluation]:
        return Evaluation.objects.select_related("api_key", "actor", "feedback_by")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        evaluation: Evaluation = self.object
        context.update(
            texts=evidence_texts(evaluation.text, evaluation.detectors),
            detector_rows=detector_rows(evaluation.detectors),
            context_json=json.dumps(evaluation.context or {}, indent=2, ensure_ascii=False, sort_keys=True),
            submission=_submission_for(evaluation),
            monitor_differs=evaluation.policy_decision != evaluation.decision,
        )
        if context["can_triage"] and evaluation.decision != Decision.THROTTLED:
            context["feedback_form"] = kwargs.get("feedback_form") or FeedbackForm(
                initial={"feedback": evaluation.feedback or None, "note": evaluation.feedback_note}
            )
        return context


class EvaluationFeedbackView(EvaluationDetailView):
    """Record an analyst's verdict; the text goes to the bank's review queue (`services.feedback_record`)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = evaluation = self.get_object()
        form = FeedbackForm(request.POST)
        if form.is_valid():
            try:
                services.feedback_record(
                    evaluation=evaluation,
                    kind=form.cleaned_data["feedback"],
                    note=form.cleaned_data["note"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                service_error(form, exc, {"kind": "feedback"})
            else:
                messages.success(request, "Feedback recorded; the text is in the prompt bank's review queue.")
                return redirect(reverse("firewall:evaluation_detail", args=[evaluation.pk]) + "#feedback")
        context = self.get_context_data(object=evaluation, feedback_form=form)
        return self.render_to_response(context, status=400)


# --- the playground -----------------------------------------------------------------------------------------------


class PlaygroundView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """Evaluate a text under the organization's policy and see why: the decision, each detector's evidence with its
    spans marked, and the time each stage took. Stored with `source="playground"` unless "don't store" is ticked."""

    template_name = "firewall/playground.html"
    tab = "playground"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if context["can_triage"]:
            context["form"] = kwargs.get("form") or PlaygroundForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PlaygroundForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        evaluation_request = form.evaluation_request()
        try:
            outcome = services.evaluate(
                organization=self.organization,
                request=evaluation_request,
                actor=request.user,
                ip=client_ip(request),
                request_id=get_request_id(),
                source=EvaluationSource.PLAYGROUND,
                store=not form.cleaned_data["dont_store"],
                timings=True,
            )
        except ApplicationError as exc:
            if exc.code == "input_too_large":
                form.add_error("text", exc.message)
            else:
                service_error(form, exc)
            return self.render_to_response(self.get_context_data(form=form), status=400)
        result = {
            "verdict": outcome.verdict,
            "latency_ms": outcome.latency_ms,
            "evaluation": outcome.evaluation,
            "timings": sorted(outcome.timings_ms.items(), key=lambda item: -item[1]),
            "texts": evidence_texts(evaluation_request.text, outcome.detectors),
            "detector_rows": detector_rows(outcome.detectors),
            "monitor_differs": outcome.verdict.policy_decision != outcome.verdict.decision,
        }
        return self.render_to_response(self.get_context_data(form=form, result=result))


# --- the policy ---------------------------------------------------------------------------------------------------


def _policy_audit(
    organization: Any, actions: tuple[str, ...] = (AuditAction.POLICY_CHANGED, AuditAction.EMERGENCY_STOP)
) -> QuerySet[AuditLog]:
    return (
        AuditLog.objects.for_org(organization)
        .filter(action__in=actions)
        .select_related("actor")
        .order_by("-created_at", "-sequence")[:AUDIT_SHOWN]
    )


def _audit_rows(entries: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        data = entry.data or {}
        changes = data.get("changes") or {}
        if entry.action == AuditAction.EMERGENCY_STOP:
            state = "on" if data.get("active") else "off"
            summary = [("emergency stop", "", f"{state}: {data['reason']}" if data.get("reason") else state)]
        else:
            summary = [(name.replace("_", " "), *_change_values(change)) for name, change in sorted(changes.items())]
        rows.append({"entry": entry, "version": data.get("version"), "changes": summary})
    return rows


def _change_values(change: Any) -> tuple[str, str]:
    if isinstance(change, dict) and "to" in change:
        old, new = change.get("from"), change.get("to")
        if isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            return (
                ", ".join(f"{k}: {_short_json(old.get(k))}" for k in keys),
                ", ".join(f"{k}: {_short_json(new.get(k))}" for k in keys),
            )
        return _short_json(old), _short_json(new)
    return "", str(change)  # "changed" (a secret: never by value)


def _short_json(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:119] + "…"


class PolicyView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """The organization's policy for every member; admins change it (`services.policy_update`: validated, versioned
    and audited). The recent policy changes and emergency stops from the audit log are listed under it."""

    template_name = "firewall/policy.html"
    tab = "policy"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        policy = context["policy"]
        context["audit_rows"] = _audit_rows(_policy_audit(self.organization))
        context["actions"] = [(label, (policy.actions or {}).get(value, "")) for value, label in POLICY_THREATS]
        context["detector_states"] = [
            (DETECTOR_LABELS.get(name, name), bool((policy.detectors or {}).get(name))) for name in DETECTORS
        ]
        if context["can_admin"]:
            context["form"] = kwargs.get("form") or PolicyForm(policy=policy)
            context["edit_open"] = "form" in kwargs
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PolicyForm(request.POST, policy=selectors.policy_for(self.organization))
        if form.is_valid():
            try:
                before = form.policy.version
                policy = services.policy_update(
                    organization=self.organization, changes=form.changes(), actor=request.user, ip=client_ip(request)
                )
            except ApplicationError as exc:
                service_error(form, exc)
            else:
                if policy.version == before:
                    messages.info(request, "Nothing changed, so the policy keeps its version.")
                else:
                    messages.success(request, f"Policy saved as version {policy.version}.")
                return redirect("firewall:policy")
        return self.render_to_response(self.get_context_data(form=form), status=400)


class EmergencyStopView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """The emergency stop: while on, every evaluation of the organization is blocked. Turning it on asks for a reason
    and the organization's slug typed out; turning it off for a tick. Admins only; both are audited."""

    template_name = "firewall/emergency_stop.html"
    tab = "policy"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        if context["can_admin"]:
            if context["policy"].emergency_stop:
                context["resume_form"] = kwargs.get("resume_form") or EmergencyResumeForm()
            else:
                context["stop_form"] = kwargs.get("stop_form") or EmergencyStopForm(organization=self.organization)
        context["audit_rows"] = _audit_rows(_policy_audit(self.organization, (AuditAction.EMERGENCY_STOP,)))
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        active = request.POST.get("active") == "true"
        policy = selectors.policy_for(self.organization)
        if active == policy.emergency_stop:
            messages.info(request, f"The emergency stop is already {'on' if active else 'off'}.")
            return redirect("firewall:emergency_stop")
        form: EmergencyStopForm | EmergencyResumeForm
        if active:
            form = EmergencyStopForm(request.POST, organization=self.organization)
        else:
            form = EmergencyResumeForm(request.POST)
        if form.is_valid():
            try:
                services.emergency_stop_set(
                    organization=self.organization,
                    active=active,
                    actor=request.user,
                    reason=form.cleaned_data.get("reason", ""),
                    ip=client_ip(request),
                )
            except ApplicationError as exc:
                service_error(form, exc)
            else:
                if active:
                    messages.warning(request, "Emergency stop on: every evaluation is blocked until you turn it off.")
                else:
                    messages.success(request, "Emergency stop off: evaluations follow the policy again.")
                return redirect("firewall:emergency_stop")
        key = "stop_form" if active else "resume_form"
        return self.render_to_response(self.get_context_data(**{key: form}), status=400)


# --- threat patterns ----------------------------------------------------------------------------------------------


class ThreatPatternsView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """Attacks the organization has had blocked, known by hash only: its own count, how many organizations saw the
    same attack, and a link to its own evaluations of it."""

    template_name = "firewall/threat_patterns.html"
    tab = "patterns"
    http_method_names = ["get", "head", "options"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        patterns = selectors.threat_patterns_for(self.organization)
        context["page_obj"] = Paginator(patterns, PAGE_SIZE).get_page(self.request.GET.get("page"))
        context["evaluations_url"] = reverse("firewall:index")
        return context


# --- shadow mode --------------------------------------------------------------------------------------------------


class ShadowPromoteForm(forms.Form):
    force = forms.BooleanField(
        required=False, label="Promote even if the gate refuses", help_text="A forced promotion needs a reason."
    )
    reason = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class ShadowView(FirewallPageMixin, OrgPageMixin, TemplateView):
    """How the classifier version in shadow would have decided this organization's own live traffic, beside what the
    active one decided: agreements, disagreements with examples, the agreement rate and latencies
    (`shadow.shadow_comparison`). Analysts and admins read it. Promoting or stopping the shadow version changes the
    classifier of every organization, so the buttons are for admins who are also platform operators (superusers);
    both are audited (`shadow.shadow_promote`, `shadow.shadow_stop`)."""

    template_name = "firewall/shadow.html"
    tab = "shadow"
    min_role = Role.ANALYST
    write_role = Role.ADMIN
    default_range = "7d"

    def can_operate(self) -> bool:
        return self.membership.has_role(Role.ADMIN) and self.request.user.is_superuser

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from firewall import shadow
        from firewall.choices import DetectorStatus
        from firewall.models import DetectorVersion

        context = super().get_context_data(**kwargs)
        params = self.request.GET.copy()
        params.setdefault("range", self.default_range)
        ranges = TimeRangeForm(params)
        comparison = shadow.shadow_comparison(
            organization=self.organization, since=ranges.since(), version=params.get("version", "")
        )
        from firewall.detectors import active_version

        shadow_version = (
            DetectorVersion.objects.filter(status=DetectorStatus.SHADOW, organization__isnull=True)
            .defer("artifact")
            .first()
        )
        context.update(
            range_form=ranges,
            comparison=comparison,
            shadow_version=shadow_version,
            active_version=active_version(self.organization),
            can_operate=self.can_operate(),
            agreement_pct=None if comparison.agreement_rate is None else round(100 * comparison.agreement_rate, 1),
            example_groups=[
                (kind, title, comparison.examples.get(kind, []))
                for kind, title in (
                    ("active_blocked", "Active blocked, shadow would have let through"),
                    ("shadow_blocked", "Shadow would have blocked, active let through"),
                    ("other", "Other disagreements (sanitized, for instance)"),
                )
            ],
        )
        if context["can_operate"] and context["shadow_version"] is not None:
            context["promote_form"] = kwargs.get("promote_form") or ShadowPromoteForm()
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        from firewall import shadow

        if not self.can_operate():
            raise PermissionDenied("Promoting or stopping the shadow classifier needs a platform operator.")
        action = request.POST.get("action")
        if action == "stop":
            try:
                version = shadow.shadow_stop(actor=request.user, ip=client_ip(request))
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Classifier v{version.version} left shadow; it is a candidate again.")
            return redirect("firewall:shadow")
        if action != "promote":
            return HttpResponseBadRequest("action must be promote or stop")
        form = ShadowPromoteForm(request.POST)
        if form.is_valid():
            try:
                version = shadow.shadow_promote(
                    actor=request.user,
                    organization=self.organization,
                    force=form.cleaned_data["force"],
                    reason=form.cleaned_data["reason"],
                    ip=client_ip(request),
                )
            except ApplicationError as exc:
                service_error(form, exc)
                status = 409 if isinstance(exc, Conflict) else 400
                return self.render_to_response(self.get_context_data(promote_form=form), status=status)
            messages.success(request, f"Classifier v{version.version} is now active. {version.reason}")
            return redirect("firewall:shadow")
        return self.render_to_response(self.get_context_data(promote_form=form), status=400)
