"""Prompt-bank jobs (RQ, `pipeline` queue). Thin: load by id, call one service.

- `ingestion_run_execute(run_id=...)`: one import, queued by `imports.import_start` and `imports.ingestion_run_resume`.
- `poll_sources()`: the drop folder, the feeds and stalled runs (`imports.sources_poll`), then it schedules its next
  run `PROMPTBANK_POLL_INTERVAL_S` later with RQ's own scheduler (`Queue.schedule_job`; the workers run with
  `--with-scheduler`, see `deploy/entrypoint.sh` and `make worker`). Start the chain once with
  `python manage.py promptbank_import --schedule`; run one poll by hand with `--poll`. Each scheduled job's id is the
  time slot it runs in, scheduled with `unique=True`, so two chains (the command run twice, two workers) merge into
  one instead of polling twice as often.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from evalence.jobs import run_job_row
from promptbank import imports
from promptbank.models import IngestionRun

logger = logging.getLogger("promptbank.jobs")

POLL_JOB_PREFIX = "promptbank-poll-sources"


def ingestion_run_execute(*, run_id: str) -> None:
    """Run one import through the pipeline; the run row records progress, counts and the outcome."""
    run = IngestionRun.objects.select_related("organization", "created_by").filter(pk=run_id).first()
    if run is None:
        logger.warning("ingestion run %s no longer exists", run_id)
        return
    try:
        run_job_row(run, imports.ingestion_run_process)
    finally:
        run.refresh_from_db()
        imports.ingestion_run_finished(run)


def poll_sources(*, reschedule: bool = True) -> dict[str, Any]:
    """Import what the drop folder and the feeds hold; then schedule the next poll (with RQ)."""
    try:
        summary = imports.sources_poll()
    finally:
        if reschedule:
            schedule_poll()
    return summary.as_dict()


def schedule_poll(*, interval_s: int | None = None) -> str | None:
    """Schedule `poll_sources` for the next slot of the poll interval; returns the job id (None without RQ)."""
    if settings.JOBS_BACKEND != "rq":
        return None
    import django_rq
    from rq.exceptions import DuplicateJobError

    interval = max(1, interval_s or settings.PROMPTBANK_POLL_INTERVAL_S)
    when = imports.next_poll_time(time.time(), interval)
    queue = django_rq.get_queue("pipeline")
    job_id = f"{POLL_JOB_PREFIX}-{int(when)}"
    job = queue.create_job(
        poll_sources, job_id=job_id, result_ttl=interval * 2, failure_ttl=7 * 24 * 3600, description="poll sources"
    )
    try:
        queue.schedule_job(job, datetime.fromtimestamp(when, tz=UTC), unique=True)
    except DuplicateJobError:
        logger.debug("poll already scheduled as %s", job_id)
    return job_id
