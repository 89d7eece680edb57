"""Background jobs: the row is the truth, RQ is the transport (STYLE.md §4).

`dispatch()` is the one way to start a job. It enqueues after the surrounding transaction commits, so a worker
never looks for a row that is not there yet. With `REDIS_URL` set it goes to the django-rq queue; without Redis the
same function runs in-process on a background thread, so the embedded default works with no services.

`JobModel` is the abstract job row (status, timestamps, error, who) that long-running work (ingestion runs, test
sessions, audit verifications) inherits; `run_job_row()` moves it through its states around the real work.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, models, transaction
from django.utils import timezone

from evalence.logging import get_request_id, request_id_var
from evalence.tenancy import TenantModel

logger = logging.getLogger("evalence.jobs")


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobModel(TenantModel):
    """Abstract job row: what a page or the API shows while work runs in the background."""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queue = models.CharField(max_length=32, default="default")
    rq_job_id = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def run_job_row(row: JobModel, work: Callable[[JobModel], None]) -> JobModel:
    """Mark the row running, do the work, then mark it succeeded or failed (keeping the traceback).

    A row already finished (a duplicate delivery) is left alone. The work function saves its own results.
    """
    model = type(row)
    claimed = model.objects.filter(pk=row.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    row.refresh_from_db()
    if not claimed and row.status != JobStatus.RUNNING:
        logger.info("job row already %s, skipping", row.status, extra={"job": str(row.pk)})
        return row
    try:
        work(row)
    except Exception as exc:  # the row must say why, whatever went wrong
        logger.exception("job failed", extra={"job": str(row.pk), "model": model.__name__})
        model.objects.filter(pk=row.pk).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:2000],
            traceback=traceback.format_exc()[-20000:],
        )
        row.refresh_from_db()
        # Re-raise under RQ so the job also lands in RQ's failed registry, where operators look.
        if settings.JOBS_BACKEND == "rq":
            raise
        return row
    model.objects.filter(pk=row.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    row.refresh_from_db()
    return row


# --- dispatch -----------------------------------------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_pending: set[Future] = set()


def _thread_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.JOBS_THREAD_WORKERS, thread_name_prefix="evalence-job")
        return _executor


def _run_in_thread(func: Callable[..., Any], args: tuple, kwargs: dict, request_id: str) -> Any:
    token = request_id_var.set(request_id)
    close_old_connections()
    try:
        return func(*args, **kwargs)
    except Exception:
        logger.exception("in-process job %s failed", getattr(func, "__name__", func))
        raise
    finally:
        request_id_var.reset(token)
        connections.close_all()


def _enqueue_now(func: Callable[..., Any], args: tuple, kwargs: dict, queue: str, job_id: str | None) -> str | None:
    request_id = get_request_id()
    if settings.JOBS_BACKEND == "rq":
        import django_rq

        job = django_rq.get_queue(queue).enqueue(
            run_with_request_id,
            args=(func, request_id, *args),
            kwargs=kwargs,
            job_id=job_id,
            meta={"request_id": request_id},
        )
        return job.id
    if settings.JOBS_THREAD_EAGER:
        func(*args, **kwargs)
        return None
    future = _thread_executor().submit(_run_in_thread, func, args, kwargs, request_id)
    _pending.add(future)
    future.add_done_callback(_pending.discard)
    return None


def run_with_request_id(func: Callable[..., Any], request_id: str, *args: Any, **kwargs: Any) -> Any:
    """RQ entry point: carry the request id of the request that started the job into the worker's log lines."""
    token = request_id_var.set(request_id)
    try:
        return func(*args, **kwargs)
    finally:
        request_id_var.reset(token)


def dispatch(
    func: Callable[..., Any],
    *args: Any,
    queue: str = "default",
    job_id: str | None = None,
    on_enqueued: Callable[[str | None], None] | None = None,
    **kwargs: Any,
) -> None:
    """Run `func(*args, **kwargs)` in the background once the current transaction commits.

    Pass ids, never model instances: the job loads its rows (and re-scopes them to the organization) itself.
    """
    if queue not in settings.JOB_QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(settings.JOB_QUEUES)}")

    def enqueue() -> None:
        rq_id = _enqueue_now(func, args, kwargs, queue, job_id)
        if on_enqueued is not None:
            on_enqueued(rq_id)

    transaction.on_commit(enqueue)


def wait_for_thread_jobs(timeout: float = 30.0) -> None:
    """Block until in-process jobs finish (tests and `manage.py` commands that must not exit early)."""
    from concurrent.futures import wait

    pending = list(_pending)
    if pending:
        wait(pending, timeout=timeout)


def next_slot(now_s: float, interval_s: int) -> int:
    """The start (epoch seconds) of the next slot of `interval_s` after `now_s`."""
    return (math.floor(now_s / interval_s) + 1) * interval_s


def schedule_periodic(
    func: Callable[..., Any],
    *,
    prefix: str,
    interval_s: float,
    queue: str = "default",
    description: str = "",
    timeout: int | None = None,
) -> str | None:
    """Schedule `func` for the next slot of `interval_s` with RQ's scheduler (workers run with `--with-scheduler`);
    the job id, or None without RQ or with the interval switched off (0).

    A periodic job calls this again when it runs, so it chains itself. The job id is its time slot, scheduled with
    `unique=True`: two chains (two workers started the schedule) merge into one, and a schedule started again is a
    no-op."""
    interval = int(interval_s)
    if settings.JOBS_BACKEND != "rq" or interval <= 0:
        return None
    import django_rq
    from rq.exceptions import DuplicateJobError

    when = next_slot(time.time(), interval)
    rq_queue = django_rq.get_queue(queue)
    job_id = f"{prefix}-{when}"
    options: dict[str, Any] = {"timeout": timeout} if timeout else {}
    job = rq_queue.create_job(
        func, job_id=job_id, result_ttl=interval * 2, description=description or prefix, **options
    )
    try:
        rq_queue.schedule_job(job, datetime.fromtimestamp(when, tz=UTC), unique=True)
    except DuplicateJobError:
        logger.debug("%s already scheduled as %s", description or prefix, job_id)
    return job_id
