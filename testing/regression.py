"""Firewall regression on every bank release (issue 7, point 4): how did a release move detection and false positives?

`promptbank` sends `release_created` after a release commits (it may not import this app); `on_release_created`
listens (connected in `TestingConfig.ready`) and, unless TESTING_RELEASE_REGRESSION is off:

- for an organization's release, runs an ordinary test session against that organization's firewall target (found, or
  created as "Evalence firewall"), with a suite pinned to the release that holds every attack prompt (no sampling, no
  mutators) and the release's benign prompts as the baseline. The session is queued like any other (RQ, or a thread
  without Redis); when it ends, `session_finalize` calls `session_finished`, which records the figures on the release.
- for a global release (organization NULL) there is no organization, so no target, policy or session (a session is
  tenant-owned). It runs as a `testing` job through the global engine instead: the global signatures, the active
  classifier and the global bank's similarity index under the default policy, which is what every organization
  starts from. The figures have the same shape, with `engine: "global"` and no session.

Figures go to `release.metrics["firewall_regression"]` through `promptbank.services.release_metrics_record` (which
also writes the `regression.recorded` learning event): detection rate (blocked / scored attacks) and false-positive
rate (blocked benign / scored benign), overall and per category, the session, the classifier version and when.
Errors (a prompt the firewall refused) are left out of both denominators: they say nothing about detection. Note
that the firewall's similarity index already holds the bank's attacks, so this measures the firewall against the
bank it has learned, release after release; the classifier's held-out figures live on its detector version.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Organization, User
from evalence.jobs import dispatch
from promptbank.choices import Label
from promptbank.models import BankRelease, ReleaseEntry
from promptbank.selectors import FIREWALL_REGRESSION_KEY
from promptbank.services import release_metrics_record
from testing import seed, services
from testing.choices import ResultKind, SessionStatus, TargetKind, Verdict
from testing.models import Target, TestResult, TestSession, TestSuite

logger = logging.getLogger("testing.regression")

CONFIG_KEY = "release_regression"  # in TestSession.config: marks a regression session and names its release
FIREWALL_TARGET = next(spec for spec in seed.TARGETS if spec["kind"] == TargetKind.FIREWALL)
# The suite's limits (`TestSuite.max_prompts`, `TestSuite.baseline_prompts`): a larger release is sampled, and says so.
MAX_ATTACKS = 100_000
MAX_BENIGN = 1_000
ROUND = 4


# --- starting -----------------------------------------------------------------------------------------------------


def on_release_created(sender: Any, release: BankRelease, **kwargs: Any) -> None:
    """`promptbank.signals.release_created` receiver. Runs after the release committed: it never raises, it records
    the failure on the release instead (the release itself is fine)."""
    if not settings.TESTING_RELEASE_REGRESSION:
        return
    try:
        regression_start(release=release)
    except Exception as exc:  # a regression that cannot start must not look like a failed release
        logger.exception("firewall regression of release %s could not start", release.pk)
        _record(release, {"status": "failed", "error": _message(exc)})


def regression_start(*, release: BankRelease) -> TestSession | None:
    """Queue the firewall regression of `release`: a session for an organization's release (returned), a global
    engine job for a global one (None). A release without attack prompts is recorded as skipped."""
    if release.attack_count == 0:
        _record(release, {"status": "skipped", "error": "The release holds no attack prompts."})
        return None
    if release.organization_id is None:
        with transaction.atomic():
            _record(release, {"status": "queued", "engine": "global", "detector_version": _detector_version()})
            dispatch(run_global_regression, release_id=str(release.pk), queue="testing")
        return None
    organization = release.organization
    actor = release.created_by
    with transaction.atomic():
        target = firewall_target_for(organization, actor=actor)
        suite = _suite_for(release, actor=actor)
        # The session is queued when this block commits, after the marker below is in its config.
        session = services.session_create(
            organization=organization,
            actor=actor,
            target=target,
            suite=suite,
            name=f"Firewall regression · bank v{release.version}",
        )
        session.config = {**session.config, CONFIG_KEY: {"release": str(release.pk), "version": release.version}}
        TestSession.objects.filter(pk=session.pk).update(config=session.config)
        _record(
            release,
            {
                "status": "queued",
                "engine": "organization",
                "session_id": str(session.pk),
                "detector_version": _detector_version(release.organization),
                "benign_sampled": release.benign_count > MAX_BENIGN,
                "attacks_sampled": release.attack_count > MAX_ATTACKS,
            },
        )
    return session


def firewall_target_for(organization: Organization, *, actor: User | None = None) -> Target:
    """The organization's firewall target: the active one named "Evalence firewall", else its oldest active firewall
    target, else a new "Evalence firewall" (under another name if a target of another kind holds that one)."""
    firewalls = Target.objects.for_org(organization).filter(kind=TargetKind.FIREWALL, is_active=True)
    target = firewalls.filter(name=FIREWALL_TARGET["name"]).first() or firewalls.order_by("created_at").first()
    if target is not None:
        return target
    name = FIREWALL_TARGET["name"]
    if Target.objects.for_org(organization).filter(name=name).exists():
        name = f"{name} (regression)"
    return services.target_create(organization=organization, actor=actor, **{**FIREWALL_TARGET, "name": name})


def _suite_for(release: BankRelease, *, actor: User | None) -> TestSuite:
    """A suite pinned to the release: every attack prompt once, unmutated, and its benign prompts as the baseline
    (capped by the suite's limits, which a bank that large outgrows; the figures then say it was sampled)."""
    name = f"Bank v{release.version} regression"
    existing = TestSuite.objects.for_org(release.organization).filter(name=name, release=release).first()
    if existing is not None:
        return existing
    return services.suite_create(
        organization=release.organization,
        actor=actor,
        name=name,
        description=f"The firewall regression of bank release v{release.version}: all its attack and benign prompts.",
        release=release,
        max_prompts=max(1, min(release.attack_count, MAX_ATTACKS)),
        baseline_prompts=min(release.benign_count, MAX_BENIGN),
        mutators=[],
        include_original=True,
        generations=1,
        random_seed=0,
    )


# --- recording ----------------------------------------------------------------------------------------------------


def is_release_regression(session: TestSession) -> bool:
    return isinstance((session.config or {}).get(CONFIG_KEY), dict)


def session_finished(session: TestSession) -> None:
    """Called by `session_finalize` for every finished session: a regression session records its figures on its
    release (a resumed session that completes later records again, replacing a failed or cancelled record)."""
    if not is_release_regression(session):
        return
    try:
        _record_session(session)
    except Exception:  # the session's own outcome stands; only the release's figures are missing
        logger.exception("regression session %s: its figures could not be recorded", session.pk)


def _record_session(session: TestSession) -> None:
    release_id = session.config[CONFIG_KEY].get("release")
    release = BankRelease.objects.filter(pk=release_id, organization_id=session.organization_id).first()
    if release is None:
        logger.warning("regression session %s: its release %s is gone", session.pk, release_id)
        return
    previous = (release.metrics or {}).get(FIREWALL_REGRESSION_KEY) or {}
    status = "completed" if session.status == SessionStatus.COMPLETED else str(session.status)
    rows = TestResult.objects.filter(session=session).values_list("kind", "category", "verdict")
    figures = regression_figures(rows.annotate(n=Count("id")).order_by())
    figures.update(
        status=status,
        engine="organization",
        session_id=str(session.pk),
        detector_version=_detector_version(session.organization),
        detector_version_at_start=previous.get("detector_version"),
        benign_sampled=bool(previous.get("benign_sampled")),
        attacks_sampled=bool(previous.get("attacks_sampled")),
    )
    if session.error:
        figures["error"] = session.error[:500]
    _record(release, figures)


def regression_figures(rows: Iterable[tuple[str, str, str, int]]) -> dict[str, Any]:
    """Detection and false-positive figures from `(kind, category, verdict, count)` rows of a firewall run: attacks
    are detected when blocked (succeeded means the firewall let them through), benign prompts are false positives
    when blocked. Only scored rows (blocked, succeeded, resisted) count in a rate."""
    attacks: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("total", "scored", "blocked", "errors"), 0))
    benign = dict.fromkeys(("total", "scored", "blocked", "errors"), 0)
    for kind, category, verdict, count in rows:
        block = benign if kind == ResultKind.BASELINE else attacks[category]
        block["total"] += count
        if verdict in (Verdict.BLOCKED, Verdict.SUCCEEDED, Verdict.RESISTED):
            block["scored"] += count
            block["blocked"] += count if verdict == Verdict.BLOCKED else 0
        elif verdict != Verdict.PENDING:
            block["errors"] += count
    overall = {key: sum(block[key] for block in attacks.values()) for key in ("total", "scored", "blocked", "errors")}
    return {
        "recorded_at": timezone.now().isoformat(),
        "attacks": overall,
        "benign": benign,
        "detection_rate": _rate(overall["blocked"], overall["scored"]),
        "false_positive_rate": _rate(benign["blocked"], benign["scored"]),
        "by_category": {
            category: {**block, "detection_rate": _rate(block["blocked"], block["scored"])}
            for category, block in sorted(attacks.items())
        },
    }


def _rate(part: int, whole: int) -> float | None:
    """None when nothing was scored: no result must never read as 0%."""
    return round(part / whole, ROUND) if whole else None


def _record(release: BankRelease, figures: dict[str, Any]) -> None:
    release_metrics_record(release=release, key=FIREWALL_REGRESSION_KEY, figures=figures)


def _detector_version(organization: Organization | None = None) -> int | None:
    """The classifier version that serves the organization now (its own, else the shared one; without an
    organization, the shared one). None: the firewall runs without a trained classifier."""
    from firewall.detectors import active_version

    version = active_version(organization)
    return version.version if version is not None else None


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


# --- the global engine --------------------------------------------------------------------------------------------


def run_global_regression(*, release_id: str) -> None:
    """Job (`testing` queue): evaluate a global release's prompts with the global engine and record the figures."""
    release = BankRelease.objects.filter(pk=release_id, organization__isnull=True).first()
    if release is None:
        logger.warning("global regression: release %s is gone", release_id)
        return
    queued = (release.metrics or {}).get(FIREWALL_REGRESSION_KEY) or {}
    try:
        figures = regression_figures(_global_verdicts(release))
    except Exception as exc:
        logger.exception("global regression of release %s failed", release_id)
        _record(release, {"status": "failed", "engine": "global", "error": _message(exc)})
        if settings.JOBS_BACKEND == "rq":
            raise
        return
    figures.update(
        status="completed",
        engine="global",
        session_id=None,
        detector_version=_detector_version(),
        detector_version_at_start=queued.get("detector_version"),
    )
    _record(release, figures)


def _global_verdicts(release: BankRelease) -> list[tuple[str, str, str, int]]:
    """`(kind, category, verdict, 1)` per prompt of the release, as the global engine under the default policy
    decides: blocked or sanitized is a detection, as for a firewall target."""
    from firewall import detectors, runtime
    from firewall.choices import Decision
    from firewall.engine.pipeline import Engine, EngineInput
    from firewall.engine.policy import decide
    from firewall.models import TenantPolicy

    config = runtime.policy_config_from(TenantPolicy())  # the defaults every organization starts from
    on = config.detectors - {"models", "context"}  # no tenant's remote models; one prompt at a time
    engine = Engine(
        signatures=runtime.signature_set(None),
        classifier=detectors.active_classifier() if "classifier" in on else None,
        similarity=detectors.similarity_index(None) if "similarity" in on else None,
    )
    entries = ReleaseEntry.objects.filter(release=release).values_list(
        "prompt__label", "prompt__category", "prompt_version__text"
    )
    rows: list[tuple[str, str, str, int]] = []
    for label, category, text in entries.iterator(chunk_size=1000):
        kind = ResultKind.ATTACK if label == Label.ATTACK else ResultKind.BASELINE
        if len(text) > config.max_input_chars:
            rows.append((kind, category, Verdict.ERROR, 1))
            continue
        result = engine.scan(EngineInput(text=text, direction="input", detectors=on))
        verdict = decide(
            result.findings, config, text=text, normalized_text=result.normalized.text, unavailable=result.unavailable
        )
        if verdict.decision in (Decision.BLOCKED, Decision.SANITIZED):
            rows.append((kind, category, Verdict.BLOCKED, 1))
        else:
            rows.append((kind, category, Verdict.SUCCEEDED if kind == ResultKind.ATTACK else Verdict.RESISTED, 1))
    return rows
