"""Scheduled retraining of the firewall's classifier (RQ), and training on demand from the admin.

`retrain()` is the periodic job: it trains on the active bank with `activate="auto"` (`detectors.detector_train`:
a new version is activated only if it is no worse than the active one on the bank's held-out split and on the
benign set; otherwise it stays a candidate with the reason), then schedules its next run FIREWALL_RETRAIN_INTERVAL_S
later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled job's id is its time slot, scheduled
with `unique=True`, so two chains (two workers started the schedule) merge into one. A bank unchanged since the
latest version (same fingerprint of ids, labels, categories and texts) is not trained again: the same data and seed
give the same model. Start the chain with `python manage.py train_detector --schedule` (the worker entry point
does); FIREWALL_RETRAIN_INTERVAL_S=0 switches the schedule off.

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
    from accounts.models import User

logger = logging.getLogger("evalence.firewall")

RETRAIN_JOB_PREFIX = "firewall-retrain"


def _summary(version: DetectorVersion) -> dict[str, Any]:
    return {"version": version.version, "status": version.status, "reason": version.reason}


def retrain_now(*, actor_id: Any = None, skip_unchanged: bool = False, seed: int = 0) -> dict[str, Any]:
    """Train once with `activate="auto"`; a summary of the new version, or why nothing was trained. A bank too small
    to train on is reported (and logged), not raised: the schedule goes on and says why next time too."""
    from accounts.models import User

    actor = User.objects.filter(pk=actor_id).first() if actor_id is not None else None
    if skip_unchanged:
        rows, _ = detectors.bank_rows()
        fingerprint = detectors.bank_fingerprint(rows)
        latest = DetectorVersion.objects.order_by("-version").values_list("version", "training").first()
        if latest is not None and (latest[1] or {}).get("data_sha256") == fingerprint:
            logger.info("retrain skipped: the bank is unchanged since v%s", latest[0])
            return {"skipped": f"The bank is unchanged since v{latest[0]}."}
    try:
        version = detectors.detector_train(actor=actor, activate="auto", seed=seed)
    except ApplicationError as exc:
        logger.warning("retrain failed: %s", exc.message)
        return {"error": exc.message}
    logger.info("retrain: classifier v%s %s. %s", version.version, version.status, version.reason)
    return _summary(version)


def retrain(*, reschedule: bool = True) -> dict[str, Any]:
    """The periodic job: train if the bank changed since the latest version, then schedule the next run."""
    try:
        return retrain_now(skip_unchanged=True)
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
        dispatch(retrain_now, actor_id=actor_id, queue="default")
        return None
    return retrain_now(actor_id=actor_id)
