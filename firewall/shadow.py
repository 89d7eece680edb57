"""Shadow mode: a candidate classifier version scored beside the active one on live traffic, its decision logged on
each evaluation and never enforced, so it can be judged on real inputs before it is promoted.

- One version at most is in shadow (status SHADOW, a database constraint). Every web and worker process loads it
  like the active one (`detectors.shadow_classifier`, re-checked every FIREWALL_REFRESH_S seconds); with none in
  shadow the evaluation path costs one cached attribute read more.
- `shadow_score` runs on stored live evaluations (`SHADOW_SOURCES`: the API, the batch API and the playground; not
  test sessions, not offline scans) when the organization's policy has the classifier on. It does not run a second
  pipeline: the shadow classifier scans the candidates the engine already built, and the shadow decision is the
  policy's `decide()` over the same findings with the active classifier's finding replaced by the shadow's (findings
  derived from the classifier, such as context and obfuscation, stay the active one's). Decisions are compared as
  the policy decided them (`policy_decision`), so monitor mode does not hide disagreements.
- Latency: `shadow_latency_ms` is the shadow classifier's scan plus the decision; the active classifier's own scan
  time is kept beside it (`context["shadow"]["active_classifier_ms"]`) so the page compares like with like.
  `latency_ms` stays the active pipeline's.
- Starting, stopping and promoting are platform operations (the classifier is shared by every organization): they
  are audited in the global audit chain. Promotion passes the same gate as "auto" training
  (`detectors.detector_gate`) unless forced with a reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Substr

from accounts.choices import AuditAction
from accounts.services import audit_log_write
from evalence.errors import Conflict, ValidationFailed
from firewall import detectors
from firewall.choices import Decision, DetectorStatus, EvaluationSource
from firewall.engine.classifier import DETECTOR as CLASSIFIER
from firewall.engine.policy import PolicyConfig, decide
from firewall.models import DetectorVersion, Evaluation

if TYPE_CHECKING:
    from accounts.models import Organization, User
    from firewall.engine.pipeline import EngineResult

SHADOW_SOURCES = frozenset({EvaluationSource.API, EvaluationSource.BATCH, EvaluationSource.PLAYGROUND})
# Audit actions of the global chain (the classifier is everyone's).
AUDIT_SHADOW_STARTED = AuditAction.SHADOW_STARTED
AUDIT_SHADOW_STOPPED = AuditAction.SHADOW_STOPPED
AUDIT_DETECTOR_PROMOTED = AuditAction.DETECTOR_PROMOTED
PREVIEW_CHARS = 140
LATENCY_SAMPLE = 50_000  # most recent rows of the range the latency percentiles are computed over


# --- the hot path -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    """What the shadow version would have done with one input."""

    version: str
    decision: str
    score: float
    latency_ms: float
    active_classifier_ms: float | None = None


def shadow_wanted(*, source: str, store: bool, config: PolicyConfig) -> bool:
    """Should this evaluation also be scored in shadow? Cheap: no query unless the refresh interval is due."""
    return (
        store
        and settings.FIREWALL_SHADOW_ENABLED
        and source in SHADOW_SOURCES
        and CLASSIFIER in config.detectors
        and detectors.shadow_classifier() is not None
    )


def shadow_score(*, result: EngineResult, config: PolicyConfig, text: str) -> ShadowOutcome | None:
    """Score the engine's candidates with the shadow classifier and decide as the policy would with its finding in
    place of the active classifier's. None when no version is in shadow."""
    classifier = detectors.shadow_classifier()
    if classifier is None:
        return None
    started = time.perf_counter()
    found = classifier.scan(result.candidates)
    findings = [f for f in result.findings if f.detector != CLASSIFIER] + found
    verdict = decide(
        findings, config, text=text, normalized_text=result.normalized.text, unavailable=result.unavailable
    )
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    active_ms = result.timings_ms.get(CLASSIFIER)
    return ShadowOutcome(
        version=str(classifier.version)[:32],
        decision=verdict.policy_decision,
        score=round(found[0].score, 4) if found else 0.0,
        latency_ms=latency_ms,
        active_classifier_ms=active_ms,
    )


# --- operations (platform operators) ------------------------------------------------------------------------------


def _by(actor: User | None) -> str:
    return f" by {actor.email}" if actor is not None else ""


def _audit(action: str, version: DetectorVersion, actor: User | None, ip: str | None, data: dict[str, Any]) -> None:
    audit_log_write(
        organization=None,
        action=action,
        actor=actor,
        target=version,
        target_label=f"classifier v{version.version}",
        ip=ip,
        data={"version": version.version, **data},
    )


@transaction.atomic
def shadow_start(*, version: DetectorVersion, actor: User | None = None, ip: str | None = None) -> DetectorVersion:
    """Put a candidate (or retired) version in shadow; a version already there goes back to candidate. Every process
    starts scoring it within FIREWALL_REFRESH_S seconds."""
    version = DetectorVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == DetectorStatus.SHADOW:
        return version
    if version.organization_id is not None:
        raise Conflict(
            f"Classifier v{version.version} is an organization's own; shadow runs compare shared versions only."
        )
    if version.status not in (DetectorStatus.CANDIDATE, DetectorStatus.RETIRED):
        raise Conflict(
            f"Classifier v{version.version} is {version.get_status_display().lower()}; only a candidate or a retired "
            "version can run in shadow."
        )
    detectors.load_version(version)  # an artifact that does not verify never reaches the hot path
    replaced = list(DetectorVersion.objects.select_for_update().filter(status=DetectorStatus.SHADOW))
    for previous in replaced:
        previous.status = DetectorStatus.CANDIDATE
        previous.save(update_fields=["status"])
        _audit(AUDIT_SHADOW_STOPPED, previous, actor, ip, {"replaced_by": version.version})
    version.status = DetectorStatus.SHADOW
    version.save(update_fields=["status"])
    _audit(AUDIT_SHADOW_STARTED, version, actor, ip, {"replaced": [v.version for v in replaced]})
    transaction.on_commit(detectors.classifiers_changed)
    return version


@transaction.atomic
def shadow_stop(*, actor: User | None = None, ip: str | None = None) -> DetectorVersion:
    """Take the version out of shadow (back to candidate); Conflict when none is in shadow."""
    version = DetectorVersion.objects.select_for_update().filter(status=DetectorStatus.SHADOW).first()
    if version is None:
        raise Conflict("No classifier version is in shadow.")
    version.status = DetectorStatus.CANDIDATE
    version.save(update_fields=["status"])
    _audit(AUDIT_SHADOW_STOPPED, version, actor, ip, {})
    transaction.on_commit(detectors.classifiers_changed)
    return version


def shadow_promote(
    *,
    actor: User | None = None,
    organization: Organization | None = None,
    force: bool = False,
    reason: str = "",
    ip: str | None = None,
) -> DetectorVersion:
    """Make the shadow version the active one, if it passes the gate of "auto" training on today's bank (held-out
    recall and FPR, benign-set false positives); `force` overrides a failed gate and needs a reason. Audited with
    the gate's verdict and the organization whose comparison page it was done from."""
    reason = (reason or "").strip()[:500]
    if force and not reason:
        raise ValidationFailed(
            "Say why the shadow version is promoted over the gate.", fields={"reason": ["A reason is required."]}
        )
    version = DetectorVersion.objects.filter(status=DetectorStatus.SHADOW).first()
    if version is None:
        raise Conflict("No classifier version is in shadow.")
    problem = detectors.detector_gate(version=version)  # scores the benign set: outside the transaction
    if problem and not force:
        raise Conflict(problem.replace("Not activated:", f"v{version.version} not promoted:", 1))
    with transaction.atomic():
        locked = DetectorVersion.objects.select_for_update().filter(pk=version.pk, status=DetectorStatus.SHADOW)
        if not locked.exists():
            raise Conflict(f"Classifier v{version.version} left shadow meanwhile; nothing was promoted.")
        if problem:
            why = f"Promoted from shadow{_by(actor)} over the gate: {reason} (the gate said: {problem})"
        else:
            why = f"Promoted from shadow{_by(actor)}: no worse than the active version on held-out recall and FPR, "
            why += "and on the benign set." + (f" {reason}" if reason else "")
        promoted = detectors.detector_activate(version=version, actor=actor, reason=why)
        _audit(
            AUDIT_DETECTOR_PROMOTED,
            promoted,
            actor,
            ip,
            {
                "forced": bool(problem),
                "reason": reason,
                "gate": problem,
                "organization": organization.slug if organization is not None else "",
            },
        )
    return promoted


# --- the comparison page ------------------------------------------------------------------------------------------


@dataclass
class ShadowComparison:
    """One organization's evaluations scored by one shadow version in a time range, compared."""

    version: str = ""
    versions: list[str] = field(default_factory=list)
    total: int = 0
    agreements: int = 0
    active_blocked_shadow_allowed: int = 0
    shadow_blocked_active_allowed: int = 0
    other_disagreements: int = 0
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    latency_rows: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def disagreements(self) -> int:
        return self.total - self.agreements

    @property
    def agreement_rate(self) -> float | None:
        return self.agreements / self.total if self.total else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return round(ordered[int(rank) - 1], 3)


_DISAGREEMENTS = {
    "active_blocked": Q(policy_decision=Decision.BLOCKED) & ~Q(shadow_decision=Decision.BLOCKED),
    "shadow_blocked": Q(shadow_decision=Decision.BLOCKED) & ~Q(policy_decision=Decision.BLOCKED),
}


def shadow_comparison(
    *,
    organization: Organization,
    since: datetime | None = None,
    until: datetime | None = None,
    version: str = "",
    examples: int | None = None,
) -> ShadowComparison:
    """Agreements, disagreements (with the latest examples of each kind), the agreement rate and latency percentiles
    of the organization's own evaluations that a shadow version scored. `version` picks among the versions seen in
    the range (default: the one in shadow now, else the latest seen)."""
    rows = Evaluation.objects.for_org(organization).exclude(shadow_version="")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    seen = list(rows.order_by().values_list("shadow_version", flat=True).distinct())
    comparison = ShadowComparison(versions=sorted(seen, key=_version_key, reverse=True))
    if not seen:
        return comparison
    current = DetectorVersion.objects.filter(status=DetectorStatus.SHADOW).values_list("version", flat=True).first()
    if version in seen:
        comparison.version = version
    elif current is not None and f"v{current}" in seen:
        comparison.version = f"v{current}"
    else:
        comparison.version = comparison.versions[0]
    rows = rows.filter(shadow_version=comparison.version)
    figures = rows.aggregate(
        total=Count("pk"),
        agreements=Count("pk", filter=Q(shadow_decision=F("policy_decision"))),
        active_blocked=Count("pk", filter=_DISAGREEMENTS["active_blocked"]),
        shadow_blocked=Count("pk", filter=_DISAGREEMENTS["shadow_blocked"]),
    )
    comparison.total = figures["total"]
    comparison.agreements = figures["agreements"]
    comparison.active_blocked_shadow_allowed = figures["active_blocked"]
    comparison.shadow_blocked_active_allowed = figures["shadow_blocked"]
    comparison.other_disagreements = comparison.disagreements - figures["active_blocked"] - figures["shadow_blocked"]

    recent = rows.order_by("-created_at")[:LATENCY_SAMPLE]
    timings = list(recent.values_list("latency_ms", "shadow_latency_ms", "context__shadow__active_classifier_ms"))
    comparison.latency_rows = len(timings)
    columns = {
        "evaluation": [float(t[0]) for t in timings if t[0] is not None],
        "active_classifier": [float(t[2]) for t in timings if isinstance(t[2], int | float)],
        "shadow_classifier": [float(t[1]) for t in timings if t[1] is not None],
    }
    comparison.latency = {
        name: {"p50": percentile(values, 50), "p95": percentile(values, 95)} for name, values in columns.items()
    }

    example_fields = (
        "pk",
        "created_at",
        "decision",
        "policy_decision",
        "shadow_decision",
        "confidence",
        "shadow_score",
        "threat_type",
        "text_length",
        "preview",
    )
    other = ~Q(shadow_decision=F("policy_decision")) & ~_DISAGREEMENTS["active_blocked"]
    kinds = {**_DISAGREEMENTS, "other": other & ~_DISAGREEMENTS["shadow_blocked"]}
    for kind, condition in kinds.items():
        picked = (
            rows.filter(condition)
            .annotate(preview=Substr("text", 1, PREVIEW_CHARS))
            .order_by("-created_at", "pk")
            .values(*example_fields)[: examples or settings.FIREWALL_SHADOW_EXAMPLES]
        )
        comparison.examples[kind] = list(picked)
    return comparison


def _version_key(label: str) -> tuple[int, str]:
    digits = label.lstrip("v")
    return (int(digits) if digits.isdigit() else -1, label)
