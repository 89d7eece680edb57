"""Firewall workflows: evaluate inputs and outputs under a tenant's policy, store what happened, learn from feedback,
and change policies with an audit trail. Views, serializers, jobs and commands call these with plain arguments."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import F
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.services import audit_log_write
from evalence.errors import Conflict, PayloadTooLarge, ValidationFailed
from evalence.inserts import PreparedInsert
from firewall import metrics, runtime, shadow, state
from firewall.choices import DETECTORS, Action, Decision, EvaluationSource, FailMode, Feedback
from firewall.engine.normalize import normalize
from firewall.engine.pipeline import ATTACK_TYPES, EngineInput, EngineResult, text_hash
from firewall.engine.policy import PolicyConfig, Verdict, decide, decided_by, throttled_verdict
from firewall.engine.signatures import SignatureRule, SignatureSet
from firewall.engine.types import Severity, ThreatType
from firewall.models import Evaluation, TenantPolicy, ThreatPattern, ThreatPatternSighting
from firewall.selectors import policy_for
from firewall.shadow import ShadowOutcome
from firewall.webhooks import validate_webhook_url, webhook_enqueue
from promptbank.nearest import text_signature

if TYPE_CHECKING:
    from accounts.models import ApiKey, Organization, User

logger = logging.getLogger(__name__)

# Blocked inputs of these threat types are counted in the cross-organization threat patterns.
PATTERN_TYPES = ATTACK_TYPES | {ThreatType.ENCODING_OBFUSCATION}
# Every evaluation is one INSERT on the request's path, and a new threat pattern two more: their statements are built
# once (evalence.inserts).
EVALUATION_INSERT = PreparedInsert(Evaluation)
PATTERN_INSERT = PreparedInsert(ThreatPattern)
SIGHTING_INSERT = PreparedInsert(ThreatPatternSighting)
MAX_METADATA_CHARS = 4_000


@dataclass(slots=True)
class EvaluationRequest:
    """One input or output to evaluate, as the API, the playground, the batch endpoint and the scan command give it."""

    text: str
    direction: str = "input"
    session_id: str = ""
    user_id: str = ""
    system_prompt: str = ""
    canary: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # Earlier turns the caller sent along (an OpenAI-style `messages` list), oldest first; scanned like session turns.
    context: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EvaluationOutcome:
    verdict: Verdict
    detectors: list[dict[str, Any]]
    latency_ms: float
    evaluation: Evaluation | None = None
    evaluation_id: str | None = None
    retry_after_s: int = 0
    text_hash: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    detector_version: str = ""
    context_turns: int = 0
    shadow: ShadowOutcome | None = None  # what the version in shadow would have decided (stored, never enforced)

    @property
    def throttled(self) -> bool:
        return self.verdict.decision == Decision.THROTTLED

    def as_dict(self) -> dict[str, Any]:
        """The response body of `POST /api/v1/firewall/evaluate` (ARCHITECTURE.md)."""
        v = self.verdict
        return {
            "evaluation_id": self.evaluation_id,
            "decision": v.decision,
            "confidence": v.confidence,
            "threat_type": v.threat_type,
            "severity": v.severity,
            "sanitized_text": v.sanitized_text,
            "latency_ms": self.latency_ms,
            "detectors": self.detectors,
            "policy_decision": v.policy_decision,
            "reason": v.reason,
        }


def check_input_size(text: str, config: PolicyConfig) -> None:
    if len(text) > config.max_input_chars:
        raise PayloadTooLarge(
            f"text has {len(text):,} characters; this organization's policy allows at most {config.max_input_chars:,}.",
            code="input_too_large",
        )


def evaluate(
    *,
    organization: Organization,
    request: EvaluationRequest,
    api_key: ApiKey | None = None,
    actor: User | None = None,
    ip: str | None = None,
    request_id: str = "",
    source: str = EvaluationSource.API,
    store: bool = True,
    timings: bool = False,
) -> EvaluationOutcome:
    """Evaluate one text under the organization's policy; store it (unless `store` is false) and return the outcome.

    Raises PayloadTooLarge when the text exceeds the policy's maximum; a rate-limited call is not an error here: it
    comes back as a `throttled` outcome with `retry_after_s`, stored like any other."""
    started = time.perf_counter()
    config = runtime.policy_config(organization)
    check_input_size(request.text, config)
    limited = _rate_limit(organization, api_key, config)
    if limited is not None:
        outcome = EvaluationOutcome(throttled_verdict(), [], _ms_since(started), retry_after_s=limited)
        if store:
            _store(organization, request, outcome, None, api_key, actor, ip, request_id, source)
        _record_metrics(organization, outcome)
        return outcome
    in_shadow = shadow.shadow_wanted(source=source, store=store, config=config)
    # With a shadow version the engine times its detectors, so the active classifier's time is kept to compare.
    outcome, result = _run(organization, request, config, started, timings=timings or in_shadow)
    if in_shadow:
        outcome.shadow = shadow.shadow_score(result=result, config=config, text=request.text)
    if store:
        _store(organization, request, outcome, result, api_key, actor, ip, request_id, source, config=config)
    _record_metrics(organization, outcome)
    return outcome


def evaluate_batch(
    *,
    organization: Organization,
    requests: list[EvaluationRequest],
    api_key: ApiKey | None = None,
    actor: User | None = None,
    ip: str | None = None,
    request_id: str = "",
) -> list[EvaluationOutcome]:
    """Evaluate up to FIREWALL_BATCH_MAX texts in order, one outcome each; stored in one transaction at the end.

    Every item counts against the key's rate limit; an item over the limit is `throttled`. An item over the size
    limit fails the whole batch before anything is evaluated or stored (ValidationFailed naming the item)."""
    if len(requests) > settings.FIREWALL_BATCH_MAX:
        raise ValidationFailed(
            f"A batch holds at most {settings.FIREWALL_BATCH_MAX} items; this one has {len(requests)}.",
            fields={"items": [f"At most {settings.FIREWALL_BATCH_MAX} items."]},
        )
    config = runtime.policy_config(organization)
    for index, item in enumerate(requests):
        try:
            check_input_size(item.text, config)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(f"items[{index}]: {exc.message}", code="input_too_large") from None
    pending: list[tuple[EvaluationRequest, EvaluationOutcome, EngineResult | None]] = []
    for item in requests:
        started = time.perf_counter()
        limited = _rate_limit(organization, api_key, config)
        if limited is not None:
            pending.append(
                (item, EvaluationOutcome(throttled_verdict(), [], _ms_since(started), retry_after_s=limited), None)
            )
            continue
        in_shadow = shadow.shadow_wanted(source=EvaluationSource.BATCH, store=True, config=config)
        outcome, result = _run(organization, item, config, started, timings=in_shadow)
        if in_shadow:
            outcome.shadow = shadow.shadow_score(result=result, config=config, text=item.text)
        pending.append((item, outcome, result))
    with transaction.atomic():
        for item, outcome, result in pending:
            _store(
                organization,
                item,
                outcome,
                result,
                api_key,
                actor,
                ip,
                request_id,
                EvaluationSource.BATCH,
                config=config,
            )
    for _, outcome, _ in pending:
        _record_metrics(organization, outcome)
    return [outcome for _, outcome, _ in pending]


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _rate_limit(organization: Organization, api_key: ApiKey | None, config: PolicyConfig) -> int | None:
    """None when the call may go on; otherwise the seconds to wait."""
    if api_key is None or config.rate_limit_per_minute <= 0:
        return None
    result = state.rate_limit_hit(f"{organization.pk}:{api_key.pk}", config.rate_limit_per_minute)
    return None if result.allowed else result.retry_after_s


def _run(
    organization: Organization,
    request: EvaluationRequest,
    config: PolicyConfig,
    started: float,
    *,
    timings: bool = False,
) -> tuple[EvaluationOutcome, EngineResult]:
    engine = runtime.engine_for(organization, config)
    context_on = "context" in config.detectors and request.direction == "input" and config.context_turns > 0
    use_context = context_on and bool(request.session_id)
    context = state.session_turns(organization.pk, request.session_id, config.context_turns) if use_context else []
    if context_on and request.context:
        context = [*context, *request.context[-config.context_turns :]]
    result = engine.scan(
        EngineInput(
            text=request.text,
            direction=request.direction,
            system_prompt=request.system_prompt,
            canary=request.canary,
            context=context,
            detectors=config.detectors,
        ),
        timings=timings,
    )
    verdict = decide(
        result.findings,
        config,
        text=request.text,
        normalized_text=result.normalized.text,
        unavailable=result.unavailable,
    )
    if use_context and verdict.decision != Decision.BLOCKED:  # a blocked turn never reached the model
        state.remember_turn(
            organization.pk,
            request.session_id,
            verdict.sanitized_text if verdict.sanitized_text is not None else request.text,
            keep=config.context_turns,
            ttl_s=settings.FIREWALL_CONTEXT_TTL_S,
        )
    detectors = result.detector_report()
    if result.unavailable:
        detectors.append(
            {
                "name": "models",
                "score": 0.0,
                "threat_type": "none",
                "severity": "none",
                "evidence": [f"unavailable: {result.unavailable_reason}"],
                "rule_id": "",
                "view": "",
                "spans": [],
            }
        )
    outcome = EvaluationOutcome(
        verdict, detectors, _ms_since(started), text_hash=result.text_hash, timings_ms=result.timings_ms
    )
    outcome.context_turns = len(context)
    if engine.classifier is not None:
        outcome.detector_version = str(getattr(engine.classifier, "version", "") or "")[:32]
    return outcome, result


def _metadata(request: EvaluationRequest) -> dict[str, Any]:
    metadata = request.metadata if isinstance(request.metadata, dict) else {}
    if len(repr(metadata)) > MAX_METADATA_CHARS:
        raise ValidationFailed(
            f"metadata is larger than {MAX_METADATA_CHARS} characters.",
            fields={"metadata": [f"At most {MAX_METADATA_CHARS} characters."]},
        )
    return metadata


def _store(
    organization: Organization,
    request: EvaluationRequest,
    outcome: EvaluationOutcome,
    result: EngineResult | None,
    api_key: ApiKey | None,
    actor: User | None,
    ip: str | None,
    request_id: str,
    source: str,
    *,
    config: PolicyConfig | None = None,
) -> Evaluation:
    verdict = outcome.verdict
    metadata = _metadata(request)
    context: dict[str, Any] = {"metadata": metadata, "reason": verdict.reason}
    if outcome.context_turns:
        context["context_turns"] = outcome.context_turns
    if request.system_prompt:
        context["system_prompt_chars"] = len(request.system_prompt)
    if request.canary:
        context["canary_checked"] = True
    if result is not None and result.normalized.obfuscated:
        context["normalization"] = {
            "removed": result.normalized.removed,
            "homoglyphs_folded": result.normalized.homoglyphs_folded,
        }
    if result is not None and len(result.candidates) > 1:
        context["decoded_views"] = [c.view for c in result.candidates[1:]]
    if outcome.shadow is not None:
        context["shadow"] = {"active_classifier_ms": outcome.shadow.active_classifier_ms}
    evaluation = Evaluation(
        organization=organization,
        direction=request.direction,
        source=source,
        text=request.text,
        text_length=len(request.text),
        text_hash=outcome.text_hash or (result.text_hash if result else ""),
        decision=verdict.decision,
        policy_decision=verdict.policy_decision,
        confidence=verdict.confidence,
        threat_type=verdict.threat_type,
        severity=verdict.severity,
        sanitized_text=verdict.sanitized_text,
        latency_ms=outcome.latency_ms,
        decided_by=decided_by(verdict, outcome.detectors),
        detectors=outcome.detectors,
        context=context,
        session_id=request.session_id[:200],
        end_user_id=request.user_id[:200],
        application=str(metadata.get("application", ""))[:200],
        api_key=api_key,
        actor=actor,
        ip=ip,
        request_id=request_id[:64],
        detector_version=outcome.detector_version,
    )
    if outcome.shadow is not None:
        evaluation.shadow_version = outcome.shadow.version
        evaluation.shadow_decision = outcome.shadow.decision
        evaluation.shadow_score = outcome.shadow.score
        evaluation.shadow_latency_ms = outcome.shadow.latency_ms
    if not evaluation.text_hash:
        evaluation.text_hash = text_hash(normalize(request.text).text)
    if verdict.policy_decision == Decision.BLOCKED and verdict.threat_type in PATTERN_TYPES:
        with transaction.atomic():  # the evaluation and its pattern's count, or neither
            EVALUATION_INSERT.insert(evaluation)
            _threat_pattern_sighted(organization=organization, evaluation=evaluation)
    else:  # one INSERT is atomic on its own: no BEGIN/COMMIT round trips on the common path
        EVALUATION_INSERT.insert(evaluation)
    outcome.evaluation = evaluation
    outcome.evaluation_id = str(evaluation.pk)
    if verdict.policy_decision == Decision.BLOCKED and config is not None and config.webhook:
        # The cached policy says a webhook is set; its URL and secret are read fresh from the row.
        policy = TenantPolicy.objects.filter(organization=organization).first()
        if policy is not None and policy.webhook_url:
            webhook_enqueue(evaluation, policy)
    return evaluation


def _record_metrics(organization: Organization, outcome: EvaluationOutcome) -> None:
    metrics.record_tenant_request(str(organization.pk))
    metrics.record_evaluation(
        str(organization.pk), "local", outcome.verdict.decision, outcome.latency_ms / 1000, outcome.verdict.confidence
    )


# --- threat patterns ----------------------------------------------------------------------------------------------


def threat_pattern_record(*, organization: Organization, evaluation: Evaluation) -> ThreatPattern:
    """Count a blocked attack in the cross-organization pattern of its normalized text's hash (no text stored; the
    MinHash signature stored with a new pattern lets `promptbank.nearest` find it by similarity)."""
    pattern_id = _threat_pattern_count(organization=organization, evaluation=evaluation)
    if pattern_id is not None:
        return ThreatPattern.objects.get(pk=pattern_id)
    return _threat_pattern_create(organization=organization, evaluation=evaluation)


def _threat_pattern_sighted(*, organization: Organization, evaluation: Evaluation) -> None:
    """`threat_pattern_record` for the hot path: the same counts, without reading the pattern back."""
    if _threat_pattern_count(organization=organization, evaluation=evaluation) is None:
        _threat_pattern_create(organization=organization, evaluation=evaluation)


@functools.cache
def _count_statements(vendor: str) -> tuple[str, str]:
    """The two UPDATEs of `_threat_pattern_count` for a database backend, built once per process: identifiers come
    from the models' metadata, quoted by the backend; every value is a parameter."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name

    def columns(model: Any, *names: str) -> dict[str, str]:
        return {name: quote(model._meta.get_field(name).column) for name in names}

    p = columns(ThreatPattern, "id", "pattern_hash", "detection_count", "last_seen", "signature")
    s = columns(ThreatPatternSighting, "organization", "pattern", "count", "last_seen", "last_evaluation")
    count_pattern = (
        f"UPDATE {quote(ThreatPattern._meta.db_table)} SET {p['detection_count']} = {p['detection_count']} + 1, "  # noqa: S608
        f"{p['last_seen']} = %s WHERE {p['pattern_hash']} = %s RETURNING {p['id']}, length({p['signature']})"
    )
    count_sighting = (
        f"UPDATE {quote(ThreatPatternSighting._meta.db_table)} SET {s['count']} = {s['count']} + 1, "  # noqa: S608
        f"{s['last_seen']} = %s, {s['last_evaluation']} = %s WHERE {s['organization']} = %s AND {s['pattern']} = %s"
    )
    return count_pattern, count_sighting


def _first_sighting(organization: Organization, pattern_id: Any, evaluation: Evaluation, now: Any) -> None:
    """The organization's first sighting of a pattern, counted once."""
    SIGHTING_INSERT.insert(
        ThreatPatternSighting(
            organization=organization,
            pattern_id=pattern_id,
            count=1,
            first_seen=now,
            last_seen=now,
            last_evaluation=evaluation,
        )
    )


def _threat_pattern_count(*, organization: Organization, evaluation: Evaluation) -> Any:
    """Count a sighting of a known pattern; the pattern's id, or None when the pattern is new.

    The firewall's hot path: every blocked attack comes here, and almost always for a known pattern. Two plain SQL
    statements, no savepoint, no read-back (the ORM's three statements cost a quarter of a blocked evaluation's CPU,
    compiling them more than running them). Every path locks the pattern row before the sighting row (here by
    updating it), so concurrent recorders cannot deadlock, and while this transaction holds that lock nobody else
    can create this organization's sighting of it."""
    now = evaluation.created_at or timezone.now()
    connection = transaction.get_connection()
    count_pattern, count_sighting = _count_statements(connection.vendor)
    last_seen = ThreatPattern._meta.get_field("last_seen").get_db_prep_value(now, connection)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:  # UPDATE ... RETURNING: PostgreSQL, SQLite >= 3.35
            cursor.execute(count_pattern, [last_seen, evaluation.text_hash])
            row = cursor.fetchone()
        else:  # an older SQLite: the update, then read the row back
            known = ThreatPattern.objects.filter(pattern_hash=evaluation.text_hash)
            updated = known.update(detection_count=F("detection_count") + 1, last_seen=now)
            row = known.values_list("pk", "signature").first() if updated else None
        if row is None:
            return None
        pattern_id = ThreatPattern._meta.pk.to_python(row[0])
        if not row[1]:  # a pattern recorded before signatures existed: fill it in once
            ThreatPattern.objects.filter(pk=pattern_id).update(signature=text_signature(evaluation.text))
        sighting = ThreatPatternSighting._meta
        cursor.execute(
            count_sighting,
            [
                last_seen,
                sighting.get_field("last_evaluation").get_db_prep_value(evaluation.pk, connection),
                sighting.get_field("organization").get_db_prep_value(organization.pk, connection),
                sighting.get_field("pattern").get_db_prep_value(pattern_id, connection),
            ],
        )
        if not cursor.rowcount:
            _first_sighting(organization, pattern_id, evaluation, now)
            ThreatPattern.objects.filter(pk=pattern_id).update(organizations_affected=F("organizations_affected") + 1)
    return pattern_id


def _threat_pattern_create(*, organization: Organization, evaluation: Evaluation) -> ThreatPattern:
    """The first sighting of a pattern anywhere: the pattern and this organization's sighting inserted with their
    counts at one (two INSERTs in a savepoint; a varied attack is a new pattern every time, so this path is common
    too). Another process creating the same pattern first makes the INSERT fail on the unique hash once that process
    commits: then this sighting is counted on its row instead."""
    now = evaluation.created_at or timezone.now()
    # The MinHash signature of its text (not the text) lets the bank's nearest-attack search find the pattern.
    signature = text_signature(evaluation.text)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                pattern = ThreatPattern(
                    pattern_hash=evaluation.text_hash,
                    threat_type=evaluation.threat_type,
                    severity=evaluation.severity,
                    detection_count=1,
                    organizations_affected=1,
                    first_seen=now,
                    last_seen=now,
                    signature=signature,
                )
                PATTERN_INSERT.insert(pattern)
                # Nobody else can see the new pattern before this transaction commits: no sighting of it can exist.
                _first_sighting(organization, pattern.pk, evaluation, now)
                return pattern
        except IntegrityError:
            pattern_id = _threat_pattern_count(organization=organization, evaluation=evaluation)
            if pattern_id is not None:
                return ThreatPattern.objects.get(pk=pattern_id)
    raise RuntimeError("could not record the threat pattern after 3 attempts")


PROMOTED_SOURCE = "threat_intel"
PROMOTED_AUDIT_ACTION = AuditAction.PATTERN_PROMOTED


def _redacted(text: str) -> str:
    from firewall.engine.sensitive import find_pii, find_secrets, redact

    return redact(text, [*find_secrets(text), *find_pii(text)])


def threat_pattern_sample(*, pattern: ThreatPattern) -> str:
    """The latest blocked text behind a pattern, with secrets and personal data redacted, for a curator deciding
    whether to promote it ("" when no evaluation with its hash is left). Reads across organizations: staff only."""
    text = (
        Evaluation.objects.filter(text_hash=pattern.pattern_hash)
        .order_by("-created_at")
        .values_list("text", flat=True)
        .first()
    )
    return _redacted(text) if text else ""


@transaction.atomic
def threat_pattern_promote(
    *, pattern: ThreatPattern, text: str, category: str, severity: str, actor: User | None
) -> ThreatPattern:
    """Make a pattern a global bank prompt (`source="threat_intel"`) through the bank's pipeline, from the text a
    curator reviewed. The text is redacted once more here, so no secret or personal data of the tenant that sent it
    reaches the shared bank even if it was pasted back. Audited on the global chain; a learning event records it."""
    from promptbank import services as bank
    from promptbank.choices import LearningEventType

    pattern = ThreatPattern.objects.select_for_update().get(pk=pattern.pk)
    if pattern.promoted_prompt_id is not None:
        raise Conflict("This pattern was already promoted into the global bank.")
    created = bank.prompt_create(
        organization=None,
        text=_redacted(text or ""),
        label="attack",
        category=category,
        severity=severity,
        tags=["threat-intel"],
        source=PROMOTED_SOURCE,
        source_ref=f"threat_pattern:{pattern.pattern_hash}",
        author=actor,
    )
    prompt = created.prompt
    pattern.promoted_prompt = prompt
    pattern.save(update_fields=["promoted_prompt"])
    audit_log_write(
        organization=None,
        action=PROMOTED_AUDIT_ACTION,
        actor=actor,
        target=pattern,
        target_label=f"threat pattern {pattern.pattern_hash[:16]}",
        data={"prompt": str(prompt.pk), "status": created.status, "category": prompt.category},
    )
    bank.learning_event_record(
        organization=None,
        event_type=LearningEventType.PROMPT_CREATED,
        source=pattern,
        action="threat pattern promoted into the global bank",
        result={
            "prompt_id": str(prompt.pk),
            "status": created.status,
            "detection_count": pattern.detection_count,
            "organizations_affected": pattern.organizations_affected,
        },
        prompt=prompt,
    )
    return pattern


# --- feedback -----------------------------------------------------------------------------------------------------


def feedback_record(
    *,
    evaluation: Evaluation,
    kind: str,
    note: str = "",
    actor: User | None = None,
    api_key: ApiKey | None = None,
) -> Evaluation:
    """Record an analyst's or integration's verdict on an evaluation, and send the text to the prompt bank as a
    `source="firewall"` submission (`firewall.learning.feedback_to_bank`): a false negative (or a confirmed block) is
    clustered with the organization's pending attack candidates, a text already in the bank is only counted; a false
    positive (or a confirmed allow) becomes a benign submission, accepted at once when the organization's learning
    policy says so."""
    from firewall.learning import feedback_to_bank
    from promptbank import services as bank
    from promptbank.choices import LearningEventType

    if kind not in Feedback.values:
        raise ValidationFailed(
            f"feedback must be one of {', '.join(Feedback.values)}.", fields={"feedback": ["Unknown feedback kind."]}
        )
    note = (note or "").strip()
    if len(note) > 2_000:
        raise ValidationFailed("note is longer than 2,000 characters.", fields={"note": ["At most 2,000 characters."]})
    if evaluation.decision == Decision.THROTTLED:
        raise ValidationFailed(
            "A throttled call was not evaluated, so there is no decision to give feedback on.",
            fields={"feedback": ["Throttled evaluations take no feedback."]},
        )
    with transaction.atomic():
        outcome = feedback_to_bank(evaluation=evaluation, kind=kind, note=note, actor=actor, api_key=api_key)
        submission = outcome.submission
        evaluation.feedback = kind
        evaluation.feedback_note = note
        evaluation.feedback_at = timezone.now()
        evaluation.feedback_by = actor
        # The bank submission it went to (a pending one with the same text counts it again), for links and the API;
        # none when the text is already in the bank.
        evaluation.context = {
            **(evaluation.context or {}),
            "feedback_submission_id": str(submission.pk) if submission is not None else None,
        }
        evaluation.save(update_fields=["feedback", "feedback_note", "feedback_at", "feedback_by", "context"])
        bank.learning_event_record(
            organization=evaluation.organization,
            event_type=LearningEventType.FEEDBACK_RECORDED,
            source=evaluation,
            action=f"{kind} feedback → bank submission" if submission is not None else f"{kind} feedback (in bank)",
            result={
                "submission_id": str(submission.pk) if submission is not None else None,
                "label": outcome.label,
                "auto_accepted": outcome.accepted,
                **outcome.counts,
            },
        )
    return evaluation


# --- policy -------------------------------------------------------------------------------------------------------

POLICY_FIELDS = (
    "block_threshold",
    "flag_threshold",
    "actions",
    "detectors",
    "max_input_chars",
    "rate_limit_per_minute",
    "fail_mode",
    "monitor_mode",
    "webhook_url",
    "webhook_secret",
    "context_turns",
)
SECRET_FIELDS = {"webhook_secret"}
MAX_INPUT_CHARS_CEILING = 1_000_000


def _webhook_url_problem(url: Any) -> str:
    """Why a new webhook URL cannot be called ("" when it can): checked with DNS, outside the policy's row lock.
    Our own network is refused (SSRF) unless FIREWALL_WEBHOOK_ALLOW_PRIVATE; every delivery checks again."""
    if not isinstance(url, str) or not url or len(url) > 500:
        return ""  # the shape is `_policy_errors`' to judge
    try:
        validate_webhook_url(url, resolve=True)
    except ValueError as exc:
        return str(exc)
    return ""


def _policy_errors(values: dict[str, Any], url_problem: str = "") -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def bad(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name in ("block_threshold", "flag_threshold"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            bad(name, "A number from 0 to 1.")
    if not errors and values["flag_threshold"] > values["block_threshold"]:
        bad("flag_threshold", "Must not be above the block threshold.")
    actions = values["actions"]
    if not isinstance(actions, dict):
        bad("actions", "An object of threat type → action.")
    else:
        known = {t.value for t in ThreatType if t != ThreatType.NONE}
        for threat, action in actions.items():
            if threat not in known:
                bad("actions", f"Unknown threat type {threat!r}.")
            elif action not in Action.values:
                bad("actions", f"{threat}: action must be one of {', '.join(Action.values)}.")
    detectors = values["detectors"]
    if not isinstance(detectors, dict) or not all(isinstance(v, bool) for v in detectors.values()):
        bad("detectors", "An object of detector name → true/false.")
    else:
        for name in detectors:
            if name not in DETECTORS:
                bad("detectors", f"Unknown detector {name!r}; known: {', '.join(DETECTORS)}.")
    for name, low, high in (
        ("max_input_chars", 1, MAX_INPUT_CHARS_CEILING),
        ("rate_limit_per_minute", 0, 1_000_000),
        ("context_turns", 0, 50),
    ):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bad(name, f"A whole number from {low:,} to {high:,}.")
    if values["fail_mode"] not in FailMode.values:
        bad("fail_mode", f"One of {', '.join(FailMode.values)}.")
    if not isinstance(values["monitor_mode"], bool):
        bad("monitor_mode", "true or false.")
    url = values["webhook_url"]
    if not isinstance(url, str) or len(url) > 500:
        bad("webhook_url", "An http(s) URL of at most 500 characters, or empty.")
    elif url_problem:
        bad("webhook_url", url_problem)
    elif url:
        try:
            validate_webhook_url(url)
        except ValueError as exc:
            bad("webhook_url", str(exc))
    if not isinstance(values["webhook_secret"], str) or len(values["webhook_secret"]) > 200:
        bad("webhook_secret", "Text of at most 200 characters.")
    if isinstance(url, str) and url and not values["webhook_secret"]:
        bad("webhook_secret", "A webhook needs a secret to sign its deliveries.")
    return errors


def _forget_policy(organization: Organization) -> None:
    """Drop the cached policy now and again at commit (a reader between the two may have cached the old rows)."""
    runtime.forget_policy(organization.pk)
    transaction.on_commit(lambda: runtime.forget_policy(organization.pk))


@transaction.atomic
def policy_update(
    *, organization: Organization, changes: dict[str, Any], actor: User | None, ip: str | None = None
) -> TenantPolicy:
    """Apply a partial update to the organization's policy: validated as a whole, versioned and audited (secrets are
    audited as "changed", never by value). Unknown fields are refused."""
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationFailed(
            f"Unknown policy field(s): {', '.join(unknown)}.", fields={name: ["Unknown field."] for name in unknown}
        )
    url_problem = _webhook_url_problem(changes["webhook_url"]) if "webhook_url" in changes else ""
    policy = TenantPolicy.objects.select_for_update().get(pk=policy_for(organization).pk)
    values = {name: getattr(policy, name) for name in POLICY_FIELDS}
    if "actions" in changes and isinstance(changes["actions"], dict):
        changes = {**changes, "actions": {**(policy.actions or {}), **changes["actions"]}}
    if "detectors" in changes and isinstance(changes["detectors"], dict):
        changes = {**changes, "detectors": {**(policy.detectors or {}), **changes["detectors"]}}
    values.update(changes)
    if isinstance(values["block_threshold"], int) and not isinstance(values["block_threshold"], bool):
        values["block_threshold"] = float(values["block_threshold"])
    if isinstance(values["flag_threshold"], int) and not isinstance(values["flag_threshold"], bool):
        values["flag_threshold"] = float(values["flag_threshold"])
    errors = _policy_errors(values, url_problem)
    if errors:
        raise ValidationFailed(
            "The policy was not changed: " + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors
        )
    diff: dict[str, Any] = {}
    for name in POLICY_FIELDS:
        old, new = getattr(policy, name), values[name]
        if old != new:
            diff[name] = "changed" if name in SECRET_FIELDS else {"from": old, "to": new}
            setattr(policy, name, new)
    if not diff:
        return policy
    policy.version += 1
    policy.updated_by = actor
    policy.save()
    audit_log_write(
        organization=organization,
        action=AuditAction.POLICY_CHANGED,
        actor=actor,
        target=policy,
        target_label=f"firewall policy v{policy.version}",
        ip=ip,
        data={"changes": diff, "version": policy.version},
    )
    _forget_policy(organization)
    return policy


@transaction.atomic
def emergency_stop_set(
    *, organization: Organization, active: bool, actor: User | None, reason: str = "", ip: str | None = None
) -> TenantPolicy:
    """Switch the emergency stop: while on, every evaluation of the organization is blocked. Audited; takes effect on
    every web process at its next request (the policy cache entry is dropped on commit)."""
    reason = (reason or "").strip()[:500]
    if active and not reason:
        raise ValidationFailed("Say why the firewall is being stopped.", fields={"reason": ["A reason is required."]})
    policy = TenantPolicy.objects.select_for_update().get(pk=policy_for(organization).pk)
    if policy.emergency_stop == active:
        return policy
    policy.emergency_stop = active
    policy.emergency_stop_reason = reason if active else ""
    policy.emergency_stop_at = timezone.now() if active else None
    policy.version += 1
    policy.updated_by = actor
    policy.save()
    audit_log_write(
        organization=organization,
        action=AuditAction.EMERGENCY_STOP,
        actor=actor,
        target=policy,
        target_label="firewall emergency stop " + ("on" if active else "off"),
        ip=ip,
        data={"active": active, "reason": reason, "version": policy.version},
    )
    _forget_policy(organization)
    return policy


# --- signatures ---------------------------------------------------------------------------------------------------


def signature_validate(*, rule_id: str, pattern: str, threat_type: str, severity: str, weight: float) -> SignatureRule:
    """The rule as the engine would compile it; ValidationFailed with the field at fault otherwise."""
    try:
        rule = SignatureRule(rule_id, pattern, ThreatType(threat_type), Severity(severity), weight)
        SignatureSet([rule])
    except ValueError as exc:
        message = str(exc)
        field_name = "pattern" if "pattern" in message else "weight" if "weight" in message else "threat_type"
        raise ValidationFailed(message, fields={field_name: [message]}) from None
    if ThreatType(threat_type) == ThreatType.NONE:
        raise ValidationFailed("A rule must name a threat type.", fields={"threat_type": ["Pick a threat type."]})
    return rule


def builtin_signatures_sync() -> int:
    """Make sure every shipped rule has its global `Signature` row, and that a row still holding a pattern an earlier
    release shipped (`SUPERSEDED_PATTERNS`: never edited by a curator) gets the current rule; curators' edits are
    kept. Returns how many rows were created or brought up to date."""
    from firewall.engine.signatures import BUILTIN_RULES, SUPERSEDED_PATTERNS, pattern_hash
    from firewall.models import Signature

    rows = {row.rule_id: row for row in Signature.objects.filter(organization__isnull=True)}
    missing = []
    stale = []
    for rule in BUILTIN_RULES:
        row = rows.get(rule.rule_id)
        if row is None:
            missing.append(Signature(organization=None, rule_id=rule.rule_id, source="builtin"))
            row = missing[-1]
        elif pattern_hash(row.pattern) in SUPERSEDED_PATTERNS.get(rule.rule_id, ()):
            row.updated_at = timezone.now()
            stale.append(row)
        else:
            continue
        row.pattern = rule.pattern
        row.threat_type = rule.threat_type.value
        row.severity = rule.severity.value
        row.weight = rule.weight
        row.description = rule.description
    if missing or stale:
        with transaction.atomic():
            Signature.objects.bulk_create(missing, ignore_conflicts=True)
            Signature.objects.bulk_update(
                stale, ["pattern", "threat_type", "severity", "weight", "description", "updated_at"]
            )
            transaction.on_commit(runtime.signatures_changed)
    return len(missing) + len(stale)


@dataclass(slots=True)
class RuleTestReport:
    """What a rule matches in the bank: counts over attack and benign prompts, and examples of each."""

    attack_total: int
    benign_total: int
    attack_matches: int = 0
    benign_matches: int = 0
    attack_examples: list[tuple[str, str]] = field(default_factory=list)  # (prompt id, matched excerpt)
    benign_examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.attack_matches / self.attack_total if self.attack_total else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.benign_matches / self.benign_total if self.benign_total else 0.0


def signature_test_against_bank(
    *, pattern: str, organization: Organization | None = None, examples: int = 10
) -> RuleTestReport:
    """Run a rule over the bank's active prompts visible to the organization (the global bank plus its own), through the
    same normalization the engine applies, before anyone switches it on."""
    from promptbank.models import Prompt

    rule = signature_validate(
        rule_id="TEST", pattern=pattern, threat_type="prompt_injection", severity="medium", weight=1.0
    )
    regex = SignatureSet([rule])._compiled[0].regex
    prompts = Prompt.objects.filter(is_active=True)
    prompts = prompts.for_org(organization, include_global=True) if organization is not None else prompts.global_rows()
    report = RuleTestReport(attack_total=0, benign_total=0)
    for pk, text, label in prompts.values_list("pk", "text", "label").iterator(chunk_size=2000):
        attack = label == "attack"
        if attack:
            report.attack_total += 1
        else:
            report.benign_total += 1
        match = regex.search(normalize(text).text)
        if match is None:
            continue
        excerpt = match.group(0)[:160]
        if attack:
            report.attack_matches += 1
            if len(report.attack_examples) < examples:
                report.attack_examples.append((str(pk), excerpt))
        else:
            report.benign_matches += 1
            if len(report.benign_examples) < examples:
                report.benign_examples.append((str(pk), excerpt))
    return report
