"""Testing writes and workflows: targets, suites, sessions (plan, start, cancel, resume, recover), overrides, findings.

A session is planned when it is created: one pending `TestResult` per prompt x mutator x generation, in a fixed
order, in the same transaction as the session row. The runner (`testing.runner`) only fills pending rows, so a
resumed or re-delivered session can never lose or duplicate an item.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.models import Organization, User
from accounts.services import audit_log_write
from evalence.jobs import dispatch
from firewall.models import DetectorModel
from promptbank import mutators
from promptbank.choices import ATTACK_CATEGORIES, Label, LearningEventType, Severity
from promptbank.models import Prompt
from promptbank.selectors import release_prompt_versions, visible_prompts, visible_releases
from promptbank.services import learning_event_record, submission_create
from testing import selectors
from testing.choices import FINISHED_SESSION_STATUSES, ResultKind, SessionStatus, TargetKind, Verdict
from testing.models import Target, TestResult, TestSession, TestSuite

logger = logging.getLogger("testing.services")

# Target fields an API or page may set; secrets are write-only.
TARGET_FIELDS = (
    "name",
    "kind",
    "description",
    "base_url",
    "model",
    "api_key",
    "method",
    "headers",
    "body_template",
    "response_path",
    "extra_params",
    "system_prompt",
    "canary",
    "timeout_s",
    "concurrency",
    "requests_per_minute",
    "max_retries",
    "is_active",
)
SECRET_TARGET_FIELDS = frozenset({"api_key", "headers"})
SUITE_FIELDS = (
    "name",
    "description",
    "categories",
    "severities",
    "tags",
    "sources",
    "language",
    "release",
    "max_prompts",
    "random_seed",
    "mutators",
    "include_original",
    "generations",
    "baseline_prompts",
    "llm_judge",
)
MAX_SESSION_ITEMS = 200_000


def _full_clean(instance: Any, **kwargs: Any) -> None:
    """`full_clean`, plus the per-organization unique name (Django skips constraints on excluded fields)."""
    instance.full_clean(**kwargs)
    model = type(instance)
    taken = model.objects.filter(organization_id=instance.organization_id, name=instance.name)
    if taken.exclude(pk=instance.pk).exists():
        raise ValidationError({"name": f"This organization already has a {model._meta.verbose_name} with this name."})


# --- targets ------------------------------------------------------------------------------------------------------


def _check_target(target: Target) -> None:
    from testing import targets as target_clients

    kind = target.kind
    if kind in (TargetKind.OPENAI_CHAT, TargetKind.HTTP_JSON) and not target.base_url.strip():
        raise ValidationError({"base_url": "This target kind needs a URL."})
    if target.base_url and not target.base_url.startswith(("http://", "https://")):
        raise ValidationError({"base_url": "The URL must start with http:// or https://."})
    if kind == TargetKind.OPENAI_CHAT and not target.model.strip():
        raise ValidationError({"model": "An OpenAI-compatible target needs a model name."})
    if kind == TargetKind.HTTP_JSON:
        try:
            target_clients.validate_http_template(target.body_template, target.response_path)
        except ValueError as exc:
            raise ValidationError({"body_template": str(exc)}) from None
        if target.method.upper() not in {"POST", "PUT", "PATCH", "GET"}:
            raise ValidationError({"method": "Use POST, PUT, PATCH or GET."})
        target.method = target.method.upper()


def headers_json(value: Any) -> str:
    """Extra HTTP headers as stored (JSON text, encrypted by the field): a flat object of strings."""
    if value in (None, "", {}):
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValidationError({"headers": "Headers must be a JSON object of strings."}) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError({"headers": "Headers must be a JSON object of strings."})
    for name, val in value.items():
        if not name or any(c in name for c in " :\r\n") or any(c in val for c in "\r\n"):
            raise ValidationError({"headers": f"Invalid header {name!r}."})
    return json.dumps(value, sort_keys=True)


def target_clear_secret(*, target: Target, actor: User | None, field: str) -> Target:
    """Remove a stored secret (API key or headers) on purpose; a blank value in an update keeps it."""
    if field not in SECRET_TARGET_FIELDS:
        raise ValidationError(f"{field} is not a secret field.")
    setattr(target, field, "")
    with transaction.atomic():
        target.save(update_fields=[field, "updated_at"])
        audit_log_write(
            organization=target.organization,
            action=AuditAction.TARGET_CHANGED,
            actor=actor,
            target=target,
            data={"change": "secret_cleared", "field": field},
        )
    return target


def target_create(*, organization: Organization, actor: User | None, **fields: Any) -> Target:
    """Create a target (credentials encrypted by the model field), audited."""
    unknown = set(fields) - set(TARGET_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown target fields: {', '.join(sorted(unknown))}.")
    if "headers" in fields:
        fields["headers"] = headers_json(fields["headers"])
    target = Target(organization=organization, created_by=actor, **fields)
    _check_target(target)
    _full_clean(target, exclude=["organization", "created_by"])
    with transaction.atomic():
        target.save()
        audit_log_write(
            organization=organization,
            action=AuditAction.TARGET_CHANGED,
            actor=actor,
            target=target,
            data={"change": "created", "name": target.name, "kind": target.kind},
        )
    return target


def target_update(*, target: Target, actor: User | None, **changes: Any) -> Target:
    """Update a target; a blank secret keeps the stored one (forms never show it back)."""
    unknown = set(changes) - set(TARGET_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown target fields: {', '.join(sorted(unknown))}.")
    if changes.get("headers") not in (None, ""):
        changes["headers"] = headers_json(changes["headers"])
    changed = []
    for field, value in changes.items():
        if field in SECRET_TARGET_FIELDS and value in (None, ""):
            continue  # a blank secret keeps the stored one; clear it with target_clear_secret
        if getattr(target, field) != value:
            setattr(target, field, value)
            changed.append(field)
    if not changed:
        return target
    _check_target(target)
    _full_clean(target, exclude=["organization", "created_by"])
    with transaction.atomic():
        target.save()
        audit_log_write(
            organization=target.organization,
            action=AuditAction.TARGET_CHANGED,
            actor=actor,
            target=target,
            data={"change": "updated", "fields": sorted(changed)},
        )
    return target


def target_delete(*, target: Target, actor: User | None) -> None:
    """Delete a target; its sessions keep their results and the frozen config."""
    with transaction.atomic():
        audit_log_write(
            organization=target.organization,
            action=AuditAction.TARGET_CHANGED,
            actor=actor,
            target=target,
            data={"change": "deleted", "name": target.name},
        )
        target.delete()


def target_check(*, target: Target) -> tuple[bool, str]:
    """Send one short benign prompt and record whether the target answered ("test connection")."""
    from testing import targets as target_clients

    return target_clients.check_connection(target)


# --- suites -------------------------------------------------------------------------------------------------------


def _check_suite(suite: TestSuite) -> None:
    for name in ("categories", "severities", "tags", "sources", "mutators"):
        value = getattr(suite, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError({name: "Give a list of strings."})
    bad = [c for c in suite.categories if c not in ATTACK_CATEGORIES]
    if bad:
        raise ValidationError(
            {"categories": f"Unknown categories: {', '.join(bad)}; use {', '.join(ATTACK_CATEGORIES)}."}
        )
    bad = [s for s in suite.severities if s not in Severity.values]
    if bad:
        raise ValidationError({"severities": f"Unknown severities: {', '.join(bad)}."})
    bad = [m for m in suite.mutators if m not in mutators.MUTATORS]
    if bad:
        raise ValidationError(
            {"mutators": f"Unknown mutators: {', '.join(bad)}; known: {', '.join(mutators.MUTATORS)}."}
        )
    if len(set(suite.mutators)) != len(suite.mutators):
        raise ValidationError({"mutators": "A mutator is listed twice."})
    if not suite.include_original and not suite.mutators:
        raise ValidationError({"mutators": "Without the original prompts, pick at least one mutator."})
    org = suite.organization
    if suite.release_id and not visible_releases(org).filter(pk=suite.release_id).exists():
        raise ValidationError({"release": "No such release in this organization's bank."})
    if suite.llm_judge_id and not DetectorModel.objects.filter(pk=suite.llm_judge_id, organization=org).exists():
        raise ValidationError({"llm_judge": "No such model in this organization."})


def suite_create(*, organization: Organization, actor: User | None, **fields: Any) -> TestSuite:
    unknown = set(fields) - set(SUITE_FIELDS) - {"is_builtin"}
    if unknown:
        raise ValidationError(f"Unknown suite fields: {', '.join(sorted(unknown))}.")
    suite = TestSuite(organization=organization, created_by=actor, **fields)
    _full_clean(suite, exclude=["organization", "created_by", "release", "llm_judge"])
    _check_suite(suite)
    suite.save()
    return suite


def suite_update(*, suite: TestSuite, actor: User | None, **changes: Any) -> TestSuite:
    unknown = set(changes) - set(SUITE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown suite fields: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(suite, field, value)
    _full_clean(suite, exclude=["organization", "created_by", "release", "llm_judge"])
    _check_suite(suite)
    suite.save()
    return suite


# --- planning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedItem:
    item_key: str
    kind: str
    prompt_id: Any
    prompt_version: int
    original_text: str
    prompt_text: str
    category: str
    severity: str
    mutator: str
    generation: int


def _selected_prompts(suite: TestSuite, organization: Organization, *, label: str) -> list[tuple[Prompt, int, str]]:
    """The suite's prompts as (prompt, version, text): the live bank, or the pinned release's exact versions."""
    qs = visible_prompts(organization).filter(label=label)
    if label == Label.ATTACK:
        if suite.categories:
            qs = qs.filter(category__in=suite.categories)
        if suite.severities:
            qs = qs.filter(severity__in=suite.severities)
        for tag in suite.tags:
            qs = qs.filter(tags__icontains=f'"{tag.strip().lower()}"')
        if suite.sources:
            qs = qs.filter(source__in=suite.sources)
    if suite.language:
        qs = qs.filter(language=suite.language)
    if suite.release_id:
        versions = release_prompt_versions(suite.release)
        qs = qs.filter(pk__in=list(versions))
        rows = list(qs.order_by("id").only("id", "category", "severity", "label"))
        return [(p, versions[p.pk][1], versions[p.pk][2]) for p in rows]
    qs = qs.filter(is_active=True, variant_of__isnull=True)
    return [(p, p.version, p.text) for p in qs.order_by("id").only("id", "text", "version", "category", "severity")]


def _sample(rows: list, count: int, seed: int) -> list:
    if len(rows) <= count:
        return rows
    picked = random.Random(seed).sample(range(len(rows)), count)
    return [rows[i] for i in sorted(picked)]


def _mutator_seed(prompt_id: Any, mutator: str, generation: int, seed: int) -> int:
    digest = hashlib.sha256(f"{prompt_id}:{mutator}:{generation}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def plan_items(suite: TestSuite, organization: Organization) -> list[PlannedItem]:
    """Everything a session of this suite will send, in order (deterministic for a given bank state and seed)."""
    attacks = _sample(_selected_prompts(suite, organization, label=Label.ATTACK), suite.max_prompts, suite.random_seed)
    variants = ([""] if suite.include_original else []) + list(suite.mutators)
    items: list[PlannedItem] = []
    for prompt, version, text in attacks:
        for mutator in variants:
            for generation in range(suite.generations):
                sent = text
                if mutator:
                    sent = mutators.apply(mutator, text, seed=_mutator_seed(prompt.pk, mutator, 0, suite.random_seed))
                items.append(
                    PlannedItem(
                        item_key=f"{prompt.pk}:{mutator}:{generation}",
                        kind=ResultKind.ATTACK,
                        prompt_id=prompt.pk,
                        prompt_version=version,
                        original_text=text,
                        prompt_text=sent,
                        category=prompt.category,
                        severity=prompt.severity,
                        mutator=mutator,
                        generation=generation,
                    )
                )
    if suite.baseline_prompts:
        benign = _sample(
            _selected_prompts(suite, organization, label=Label.BENIGN), suite.baseline_prompts, suite.random_seed + 1
        )
        for prompt, version, text in benign:
            items.append(
                PlannedItem(
                    item_key=f"{prompt.pk}:baseline:0",
                    kind=ResultKind.BASELINE,
                    prompt_id=prompt.pk,
                    prompt_version=version,
                    original_text=text,
                    prompt_text=text,
                    category=prompt.category,
                    severity=prompt.severity,
                    mutator="",
                    generation=0,
                )
            )
    return items


# --- sessions -----------------------------------------------------------------------------------------------------


def _session_config(target: Target, suite: TestSuite) -> dict[str, Any]:
    from testing import targets as target_clients

    return {
        "target": {"id": str(target.pk), **target_clients.TargetConfig.from_target(target).public()},
        "target_limits": {
            "concurrency": target.concurrency,
            "requests_per_minute": target.requests_per_minute,
            "max_retries": target.max_retries,
            "timeout_s": target.timeout_s,
        },
        "suite": {
            "id": str(suite.pk),
            "name": suite.name,
            "categories": suite.categories,
            "severities": suite.severities,
            "tags": suite.tags,
            "sources": suite.sources,
            "language": suite.language,
            "release": suite.release.version if suite.release_id else None,
            "max_prompts": suite.max_prompts,
            "random_seed": suite.random_seed,
            "mutators": suite.mutators,
            "include_original": suite.include_original,
            "generations": suite.generations,
            "baseline_prompts": suite.baseline_prompts,
            "llm_judge": str(suite.llm_judge) if suite.llm_judge_id else None,
        },
    }


def session_create(
    *,
    organization: Organization,
    actor: User | None,
    target: Target,
    suite: TestSuite,
    name: str = "",
    start: bool = True,
) -> TestSession:
    """Plan a session (one pending result per item) and queue it on the `testing` queue once the rows are committed."""
    if target.organization_id != organization.pk or suite.organization_id != organization.pk:
        raise ValidationError("The target and the suite must belong to this organization.")
    if not target.is_active:
        raise ValidationError({"target": "This target is switched off."})
    items = plan_items(suite, organization)
    if not any(item.kind == ResultKind.ATTACK for item in items):
        raise ValidationError({"suite": "The suite selects no attack prompts from the bank; widen its filters."})
    if len(items) > MAX_SESSION_ITEMS:
        raise ValidationError({"suite": f"The suite plans {len(items)} items; the limit is {MAX_SESSION_ITEMS}."})
    with transaction.atomic():
        session = TestSession.objects.create(
            organization=organization,
            name=name.strip() or f"{suite.name} → {target.name}",
            target=target,
            suite=suite,
            config=_session_config(target, suite),
            total_samples=len(items),
            created_by=actor,
            counts={Verdict.PENDING: len(items)},
        )
        TestResult.objects.bulk_create(
            [
                TestResult(
                    organization=organization,
                    session=session,
                    sequence=index,
                    item_key=item.item_key,
                    kind=item.kind,
                    prompt_id=item.prompt_id,
                    prompt_version=item.prompt_version,
                    original_text=item.original_text,
                    prompt_text=item.prompt_text,
                    category=item.category,
                    severity=item.severity,
                    mutator=item.mutator,
                    generation=item.generation,
                )
                for index, item in enumerate(items)
            ],
            batch_size=1000,
        )
        if start:
            _enqueue(session)
    return session


def _enqueue(session: TestSession) -> None:
    from testing import runner

    attempt = session.attempts + 1
    job_id = f"testing-session-{session.pk}-{attempt}"

    def remember(rq_id: str | None) -> None:
        if rq_id:
            TestSession.objects.filter(pk=session.pk).update(rq_job_id=rq_id)

    dispatch(runner.run_session, session_id=str(session.pk), queue="testing", job_id=job_id, on_enqueued=remember)


def session_cancel(*, session: TestSession, actor: User | None) -> TestSession:
    """Ask a running session to stop (the runner finishes the requests in flight); a queued one stops at once."""
    if session.is_finished:
        raise ValidationError(f"The session is already {session.status}.")
    with transaction.atomic():
        TestSession.objects.filter(pk=session.pk).update(cancel_requested=True)
        stopped = TestSession.objects.filter(pk=session.pk, status=SessionStatus.QUEUED).update(
            status=SessionStatus.CANCELLED, finished_at=timezone.now()
        )
    session.refresh_from_db()
    if stopped:  # it never ran, so the runner will not finalize it: a release regression records the cancellation
        from testing import regression

        regression.session_finished(session)
    from testing import runner

    runner.publish_progress(session, force=True)
    return session


def session_is_stale(session: TestSession, now: Any = None) -> bool:
    """A running session whose worker stopped sending heartbeats (it died or was killed)."""
    if session.status != SessionStatus.RUNNING:
        return False
    now = now or timezone.now()
    last = session.heartbeat_at or session.started_at or session.created_at
    return last < now - timedelta(seconds=settings.TESTING_STALE_AFTER_S)


def session_resume(*, session: TestSession, actor: User | None) -> TestSession:
    """Continue a failed, cancelled or stale session where it stopped: only its pending items run."""
    if session.status == SessionStatus.COMPLETED:
        raise ValidationError("The session is complete; start a new one to run it again.")
    if session.status == SessionStatus.QUEUED:
        raise ValidationError("The session is already queued.")
    if session.status == SessionStatus.RUNNING and not session_is_stale(session):
        raise ValidationError("The session is running; its worker is alive.")
    with transaction.atomic():
        updated = TestSession.objects.filter(pk=session.pk, status=session.status).update(
            status=SessionStatus.QUEUED, cancel_requested=False, finished_at=None, error="", worker=""
        )
        if not updated:
            raise ValidationError("The session changed meanwhile; reload and try again.")
        session.refresh_from_db()
        _enqueue(session)
    return session


def session_recover_if_stale(session: TestSession) -> TestSession:
    """Re-queue this session if its worker died (read by its page or the API); the row as it now stands."""
    if session_is_stale(session):
        try:
            session_resume(session=session, actor=None)
            logger.warning("re-queued stale test session %s on read", session.pk)
        except ValidationError:  # another reader or the watchdog was first
            pass
        session.refresh_from_db()
    return session


def sessions_recover_stale(*, organization: Organization | None = None) -> list[TestSession]:
    """Re-queue running sessions whose worker died (called by the watchdog job, the command and on read)."""
    cutoff = timezone.now() - timedelta(seconds=settings.TESTING_STALE_AFTER_S)
    qs = TestSession.objects.filter(status=SessionStatus.RUNNING, heartbeat_at__lt=cutoff)
    if organization is not None:
        qs = qs.filter(organization=organization)
    recovered = []
    for session in qs:
        try:
            recovered.append(session_resume(session=session, actor=None))
            logger.warning("re-queued stale test session %s (last heartbeat %s)", session.pk, session.heartbeat_at)
        except ValidationError:
            continue
    return recovered


# --- results ------------------------------------------------------------------------------------------------------


def result_override(*, result: TestResult, actor: User | None, verdict: str, reason: str) -> TestResult:
    """An analyst's verdict replaces the judges' (which stays in `judge_verdict`); audited; the summary is redone."""
    if verdict not in (Verdict.SUCCEEDED, Verdict.RESISTED, Verdict.BLOCKED, Verdict.UNSCORABLE):
        raise ValidationError({"verdict": "Use succeeded, resisted, blocked or unscorable."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the verdict changes."})
    if result.verdict == Verdict.PENDING:
        raise ValidationError("This item has not run yet.")
    from testing import stats

    with transaction.atomic():
        result = TestResult.objects.select_for_update().get(pk=result.pk)
        before = result.verdict
        if not result.judge_verdict:
            result.judge_verdict = before
        result.verdict = verdict
        result.override_reason = reason[:2000]
        result.overridden_by = actor
        result.overridden_at = timezone.now()
        result.save(update_fields=["verdict", "judge_verdict", "override_reason", "overridden_by", "overridden_at"])
        audit_log_write(
            organization=result.organization,
            action=AuditAction.VERDICT_OVERRIDDEN,
            actor=actor,
            target=result,
            data={"session": str(result.session_id), "from": before, "to": verdict, "reason": reason[:500]},
        )
        session = result.session
        if session.is_finished:
            session.summary = stats.session_summary(session)
            session.counts = selectors.session_counts(session)
            session.save(update_fields=["summary", "counts"])
    return result


def finding_submit(*, result: TestResult, actor: User | None = None) -> Any:
    """Offer a successful attack to the learning loop: a bank submission with `source="testing"`, accepted into the
    organization's bank at once when its learning policy accepts red-team findings (the firewall's similarity index
    then includes it as soon as the transaction commits; the classifier at its next retrain)."""
    from promptbank.learning import submission_accept_if_opted_in

    if result.kind != ResultKind.ATTACK or result.verdict != Verdict.SUCCEEDED:
        raise ValidationError("Only a successful attack becomes a finding.")
    if result.submission_id:
        return result.submission
    target_name = (result.session.config.get("target") or {}).get("name", "")
    with transaction.atomic():
        submission = submission_create(
            organization=result.organization,
            text=result.prompt_text,
            label=Label.ATTACK,
            category=result.category,
            severity=result.severity,
            tags=["red-team-finding"] + ([result.mutator] if result.mutator else []),
            source="testing",
            source_ref=f"testing:result:{result.pk}",
            notes=f"Succeeded against {target_name}: {result.reason}"[:2000],
            metadata={
                "session": str(result.session_id),
                "result": str(result.pk),
                "prompt": str(result.prompt_id) if result.prompt_id else None,
                "mutator": result.mutator,
            },
            submitter=actor,
        )
        TestResult.objects.filter(pk=result.pk).update(submission=submission)
        learning_event_record(
            organization=result.organization,
            event_type=LearningEventType.FINDING_RECORDED,
            source=result,
            action="A successful attack was offered to the bank",
            result={"submission": str(submission.pk), "session": str(result.session_id), "category": result.category},
            prompt=result.prompt,
        )
        submission_accept_if_opted_in(submission=submission, switch="auto_accept_findings")
    result.submission = submission
    return submission


def session_finalize(session: TestSession) -> None:
    """After the run: the summary, and for a completed session the bank's per-prompt statistics and the findings
    offered to the bank. A cancelled session adds no statistics (a resume that completes it adds them once)."""
    from django.db.models import Count, Q

    from promptbank.services import stats_record_many
    from testing import regression, stats

    with transaction.atomic():
        session.summary = stats.session_summary(session)
        session.counts = selectors.session_counts(session)
        session.save(update_fields=["summary", "counts"])
        per_prompt = (
            TestResult.objects.filter(session=session, kind=ResultKind.ATTACK, prompt__isnull=False)
            .exclude(verdict=Verdict.PENDING)
            .values("prompt")
            .annotate(runs=Count("id"), successes=Count("id", filter=Q(verdict=Verdict.SUCCEEDED)))
        )
        if session.status == SessionStatus.COMPLETED:
            stats_record_many(
                organization=session.organization,
                test_runs={row["prompt"]: (row["runs"], row["successes"]) for row in per_prompt},
            )
    # A release's firewall regression runs bank prompts: a miss is a figure on the release, not a new submission.
    if (
        settings.TESTING_SUBMIT_FINDINGS
        and session.status == SessionStatus.COMPLETED
        and not regression.is_release_regression(session)
    ):
        findings = TestResult.objects.filter(
            session=session, kind=ResultKind.ATTACK, verdict=Verdict.SUCCEEDED, submission__isnull=True
        ).select_related("session", "organization")
        for result in findings.iterator():
            try:
                finding_submit(result=result)
            except ValidationError as exc:  # e.g. text the bank refuses; the finding stays in the session
                logger.info("finding %s not submitted: %s", result.pk, exc)
    regression.session_finished(session)


__all__ = [
    "FINISHED_SESSION_STATUSES",
    "PlannedItem",
    "finding_submit",
    "plan_items",
    "result_override",
    "session_cancel",
    "session_create",
    "session_finalize",
    "session_resume",
    "sessions_recover_stale",
    "suite_create",
    "suite_update",
    "target_check",
    "target_create",
    "target_delete",
    "target_update",
]
