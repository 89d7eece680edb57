"""Testing jobs (RQ). The session itself runs in `testing.runner.run_session` (the `testing` queue).

`watchdog()` re-queues sessions whose worker died (no heartbeat for TESTING_STALE_AFTER_S), then schedules its next
run one watchdog interval later with RQ's scheduler (workers run with `--with-scheduler`). Each scheduled job's id is
its time slot, scheduled with `unique=True`, so two chains merge into one. Start the chain with
`python manage.py testing_recover --schedule` (the worker entry point does); run one pass with `testing_recover`.
Without Redis there is no separate worker to die: in-process sessions are recovered when their page or API is read.
"""

from __future__ import annotations

import logging

from django.conf import settings

from evalence.jobs import schedule_periodic
from testing import services

logger = logging.getLogger("testing.jobs")

WATCHDOG_JOB_PREFIX = "testing-watchdog"


def watchdog(*, reschedule: bool = True) -> list[str]:
    """Re-queue stale sessions; return their ids."""
    try:
        return [str(session.pk) for session in services.sessions_recover_stale()]
    finally:
        if reschedule:
            schedule_watchdog()


def schedule_watchdog() -> str | None:
    """Schedule `watchdog` for the next slot (half the stale time); the job id, or None without RQ."""
    return schedule_periodic(
        watchdog,
        prefix=WATCHDOG_JOB_PREFIX,
        interval_s=max(1, int(settings.TESTING_STALE_AFTER_S / 2)),
        queue="testing",
        description="testing watchdog",
    )
