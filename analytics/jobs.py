"""Analytics jobs (RQ): keep the hourly and daily rollups up to date.

`rollup()` rolls up the hours that ended since the last run (`analytics.rollups.rollup_recent`), then schedules its
next run ANALYTICS_ROLLUP_INTERVAL_S later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled
job's id is its time slot, scheduled with `unique=True`, so two chains merge into one. Start the chain with
`python manage.py analytics_rollup --schedule` (the worker entry point does). Without Redis nothing is scheduled:
the pages read raw rows beyond the cursor, so they stay exact, only slower on long ranges; run the command by hand
(or from cron) to roll up.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from analytics import rollups
from evalence.jobs import schedule_periodic

logger = logging.getLogger("analytics.jobs")

ROLLUP_JOB_PREFIX = "analytics-rollup"


def rollup(*, reschedule: bool = True) -> dict[str, Any]:
    """Roll up the hours completed since the last run; return the summary."""
    try:
        return rollups.rollup_recent()
    finally:
        if reschedule:
            schedule_rollups()


def schedule_rollups() -> str | None:
    """Schedule `rollup` for the next slot of ANALYTICS_ROLLUP_INTERVAL_S; the job id, or None without RQ."""
    return schedule_periodic(
        rollup,
        prefix=ROLLUP_JOB_PREFIX,
        interval_s=max(1, settings.ANALYTICS_ROLLUP_INTERVAL_S),
        description="analytics rollups",
    )
