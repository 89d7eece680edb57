"""Firewall jobs (RQ): the periodic harvest of blocked inputs into the prompt bank (`firewall.learning`).

`harvest()` runs one pass for every organization, then schedules its next run one `LEARNING_HARVEST_INTERVAL_S`
later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled job's id is its time slot, scheduled
with `unique=True`, so two chains (two workers started the schedule) merge into one. Start the chain with
`python manage.py firewall_harvest --schedule` (the worker entry point does); run one pass with `firewall_harvest`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from evalence.jobs import schedule_periodic
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
    return schedule_periodic(
        harvest,
        prefix=HARVEST_JOB_PREFIX,
        interval_s=max(1, settings.LEARNING_HARVEST_INTERVAL_S),
        description="firewall harvest",
    )
