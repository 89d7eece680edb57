"""Firewall jobs (RQ): the periodic harvest of blocked inputs into the prompt bank (`firewall.learning`).

`harvest()` runs one pass for every organization, then schedules its next run one `LEARNING_HARVEST_INTERVAL_S`
later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled job's id is its time slot, scheduled
with `unique=True`, so two chains (two workers started the schedule) merge into one. Start the chain with
`python manage.py firewall_harvest --schedule` (the worker entry point does); run one pass with `firewall_harvest`.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from firewall import learning

logger = logging.getLogger("evalence.firewall")

HARVEST_JOB_PREFIX = "firewall-harvest"


def harvest(*, reschedule: bool = True) -> list[dict[str, Any]]:
    """One harvest pass over every organization; the per-organization summaries."""
    try:
        return [summary.as_dict() for summary in learning.harvest_all()]
    finally:
        if reschedule:
            schedule_harvest()


def schedule_harvest() -> str | None:
    """Schedule `harvest` for the next slot; the job id, or None without RQ."""
    if settings.JOBS_BACKEND != "rq":
        return None
    import django_rq
    from rq.exceptions import DuplicateJobError

    interval = max(1, int(settings.LEARNING_HARVEST_INTERVAL_S))
    when = math.floor(time.time() / interval + 1) * interval
    queue = django_rq.get_queue("default")
    job_id = f"{HARVEST_JOB_PREFIX}-{int(when)}"
    job = queue.create_job(harvest, job_id=job_id, result_ttl=interval * 2, description="firewall harvest")
    try:
        queue.schedule_job(job, datetime.fromtimestamp(when, tz=UTC), unique=True)
    except DuplicateJobError:
        logger.debug("harvest already scheduled as %s", job_id)
    return job_id
