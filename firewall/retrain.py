"""Scheduled retraining of the firewall's classifier (RQ), and training on demand from the admin.

`retrain()` is the periodic job: it trains on the active bank with `activate="auto"` (`detectors.detector_train`:
a new version is activated only if it is no worse than the active one on the bank's held-out split and on the
benign set; otherwise it stays a candidate with the reason), then schedules its next run FIREWALL_RETRAIN_INTERVAL_S
later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled job's id is its time slot, scheduled
with `unique=True`, so two chains (two workers started the schedule) merge into one. A bank unchanged since the
latest version (same fingerprint of ids, labels, categories and texts) is not trained again: the same data and seed
give the same model. Start the chain with `python manage.py train_detector --schedule` (the worker entry point
does); FIREWALL_RETRAIN_INTERVAL_S=0 switches the schedule off.

After the shared classifier, every organization with prompts of its own (its accepted findings and reports) gets its
own version (`retrain_organization`, one job each with Redis): the shared bank plus those prompts, gated the same way
against what serves that organization now. An organization whose own prompts are all gone is served by the shared
classifier again. FIREWALL_RETRAIN_ORGANIZATIONS=false trains the shared one only.

`retrain_enqueue()` is the admin's "train now": with Redis the job goes to a worker; without, it runs here and now.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings

from evalence.errors import ApplicationError
from evalence.jobs import dispatch, schedule_periodic
from firewall import detectors
from firewall.models import DetectorVersion

if TYPE_CHECKING:
    from accounts.models import Organization, User

logger = logging.getLogger("evalence.firewall")

RETRAIN_JOB_PREFIX = "firewall-retrain"


def _summary(version: DetectorVersion) -> dict[str, Any]:
    return {"version": version.version, "status": version.status, "reason": version.reason}


def _unchanged_since(organization: Organization | None, rows: list[detectors.BankRow]) -> int | None:
    """The latest version of the scope when it was trained on exactly `rows` (same fingerprint), else None."""
    fingerprint = detectors.bank_fingerprint(rows)
    scope = DetectorVersion.objects.filter(organization=organization)
    latest = scope.order_by("-version").values_list("version", "training").first()
    if latest is not None and (latest[1] or {}).get("data_sha256") == fingerprint:
        return latest[0]
    return None


def _train(
    actor_id: Any, seed: int, organization: Organization | None, bank: tuple[list[detectors.BankRow], str]
) -> dict[str, Any]:
    from accounts.models import User

    actor = User.objects.filter(pk=actor_id).first() if actor_id is not None else None
    try:
        version = detectors.detector_train(
            actor=actor, activate="auto", seed=seed, organization=organization, bank=bank
        )
    except ApplicationError as exc:
        logger.warning("retrain failed: %s", exc.message)
        return {"error": exc.message}
    logger.info("retrain: %s %s. %s", detectors.version_name(version), version.status, version.reason)
    return _summary(version)


def retrain_now(
    *, actor_id: Any = None, skip_unchanged: bool = False, seed: int = 0, organizations: bool = False
) -> dict[str, Any]:
    """Train the shared classifier once with `activate="auto"`; a summary of the new version, or why nothing was
    trained. A bank too small to train on is reported (and logged), not raised: the schedule goes on and says why
    next time too. With `organizations`, the organizations' own versions follow (`retrain_organizations`)."""
    bank = detectors.bank_rows()  # read once: to see whether it changed, and to train on
    unchanged = _unchanged_since(None, bank[0]) if skip_unchanged else None
    if unchanged is not None:
        logger.info("retrain skipped: the bank is unchanged since v%s", unchanged)
        summary: dict[str, Any] = {"skipped": f"The bank is unchanged since v{unchanged}."}
    else:
        summary = _train(actor_id, seed, None, bank)
    if organizations and "error" not in summary:
        summary["organizations"] = retrain_organizations(actor_id=actor_id, skip_unchanged=skip_unchanged, seed=seed)
    return summary


def retrain_organization(
    *, organization_id: Any, actor_id: Any = None, skip_unchanged: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Train one organization's own classifier (the shared bank plus its own prompts), or retire it when the
    organization has no prompts of its own any more. A job: takes ids."""
    from accounts.models import Organization

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return {"skipped": "The organization no longer exists."}
    if not detectors.own_prompts(organization).exists():
        retired = detectors.organization_classifier_retire(
            organization=organization, reason="Retired: the organization has no prompts of its own any more."
        )
        return {"organization": organization.slug, "retired": retired.version if retired else None}
    bank = detectors.bank_rows(organization=organization)
    unchanged = _unchanged_since(organization, bank[0]) if skip_unchanged else None
    if unchanged is not None:
        return {"organization": organization.slug, "skipped": f"Its bank is unchanged since v{unchanged}."}
    return {"organization": organization.slug, **_train(actor_id, seed, organization, bank)}


def retrain_organizations(
    *, actor_id: Any = None, skip_unchanged: bool = True, seed: int = 0
) -> list[dict[str, Any]] | dict[str, int]:
    """Each organization's own classifier after the shared one: one job per organization on a worker with Redis
    (`{"queued": n}`), else one after the other here (their summaries)."""
    if not settings.FIREWALL_RETRAIN_ORGANIZATIONS:
        return []
    ids = detectors.organizations_with_own_prompts()
    if settings.JOBS_BACKEND == "rq":
        for organization_id in ids:
            dispatch(
                retrain_organization,
                organization_id=str(organization_id),
                actor_id=actor_id,
                skip_unchanged=skip_unchanged,
                seed=seed,
                queue="default",
            )
        return {"queued": len(ids)}
    return [
        retrain_organization(organization_id=i, actor_id=actor_id, skip_unchanged=skip_unchanged, seed=seed)
        for i in ids
    ]


def retrain(*, reschedule: bool = True) -> dict[str, Any]:
    """The periodic job: train if the bank changed since the latest version, then schedule the next run."""
    try:
        return retrain_now(skip_unchanged=True, organizations=True)
    finally:
        if reschedule:
            schedule_retrain()


def schedule_retrain() -> str | None:
    """Schedule `retrain` for the next slot of FIREWALL_RETRAIN_INTERVAL_S; the job id, or None without RQ (or with
    the schedule switched off)."""
    return schedule_periodic(
        retrain,
        prefix=RETRAIN_JOB_PREFIX,
        interval_s=settings.FIREWALL_RETRAIN_INTERVAL_S,
        description="firewall classifier retrain",
        timeout=settings.FIREWALL_RETRAIN_TIMEOUT_S,
    )


def retrain_enqueue(*, actor: User | None = None) -> dict[str, Any] | None:
    """Train now, on demand: queued for a worker with Redis (None: the result shows in the versions list when it is
    done), else run in this process and its summary returned."""
    actor_id = actor.pk if actor is not None else None
    if settings.JOBS_BACKEND == "rq":
        dispatch(retrain_now, actor_id=actor_id, organizations=True, queue="default")
        return None
    return retrain_now(actor_id=actor_id, organizations=True)
