"""The organization report's periodic job (RQ, the `default` queue).

`send_reports()` sends every report that is due (`analytics.reports.send_due_reports`), then schedules its next run
ANALYTICS_REPORT_INTERVAL_S later with RQ's scheduler (workers run with `--with-scheduler`). As in
`testing.jobs`, each scheduled job's id is its time slot and it is scheduled with `unique=True`, so two chains (two
workers started, the command run twice) merge into one. Start the chain with `python manage.py analytics_report
--schedule` (the worker entry point does); send due reports once with `analytics_report --send-due`. Without Redis
there is no scheduler: run `--send-due` from cron.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from analytics import reports

logger = logging.getLogger("analytics.report_jobs")

REPORT_JOB_PREFIX = "analytics-reports"


def send_reports(*, reschedule: bool = True) -> dict[str, Any]:
    """Send the due reports; `{"sent": [slugs], "failed": [slugs]}`. Reschedules itself even when sending failed."""
    try:
        return reports.send_due_reports().as_dict()
    finally:
        if reschedule:
            schedule_reports()


def next_slot(now_s: float, interval_s: int) -> int:
    """The next multiple of the interval after now: every scheduler computes the same slot, so ids collide."""
    return math.floor(now_s / interval_s + 1) * interval_s


def schedule_reports() -> str | None:
    """Schedule `send_reports` for the next slot; the job id, or None without RQ."""
    if settings.JOBS_BACKEND != "rq":
        return None
    import django_rq
    from rq.exceptions import DuplicateJobError

    interval = max(1, int(settings.ANALYTICS_REPORT_INTERVAL_S))
    when = next_slot(time.time(), interval)
    queue = django_rq.get_queue("default")
    job_id = f"{REPORT_JOB_PREFIX}-{when}"
    job = queue.create_job(send_reports, job_id=job_id, result_ttl=interval * 2, description="analytics reports")
    try:
        queue.schedule_job(job, datetime.fromtimestamp(when, tz=UTC), unique=True)
    except DuplicateJobError:
        logger.debug("report job already scheduled as %s", job_id)
    return job_id
