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
from typing import Any

from django.conf import settings

from analytics import reports
from evalence.jobs import schedule_periodic

logger = logging.getLogger("analytics.report_jobs")

REPORT_JOB_PREFIX = "analytics-reports"


def send_reports(*, reschedule: bool = True) -> dict[str, Any]:
    """Send the due reports; `{"sent": [slugs], "failed": [slugs]}`. Reschedules itself even when sending failed."""
    try:
        return reports.send_due_reports().as_dict()
    finally:
        if reschedule:
            schedule_reports()


def schedule_reports() -> str | None:
    """Schedule `send_reports` for the next slot; the job id, or None without RQ."""
    return schedule_periodic(
        send_reports,
        prefix=REPORT_JOB_PREFIX,
        interval_s=max(1, settings.ANALYTICS_REPORT_INTERVAL_S),
        description="analytics reports",
    )
