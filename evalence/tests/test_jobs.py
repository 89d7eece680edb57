"""Background jobs: the row is the truth, RQ (or an in-process thread without Redis) is the transport."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from accounts.choices import AuditAction
from accounts.models import AuditVerification
from accounts.services import audit_log_write, audit_verification_start
from evalence import jobs
from evalence.jobs import JobStatus, dispatch, run_job_row


def record_marker(*, organization_id: str, name: str) -> None:
    """A job body for these tests: leaves a trace in the database (an audit verification row named by `problem`)."""
    AuditVerification.objects.create(organization_id=organization_id, problem=name, status=JobStatus.SUCCEEDED)


def explode(*, verification_id: str) -> None:
    row = AuditVerification.objects.get(pk=verification_id)

    def work(_: Any) -> None:
        raise ValueError("the disk is on fire")

    run_job_row(row, work)


@pytest.mark.django_db
def test_nothing_is_enqueued_before_the_transaction_commits(org_a: Any, settings: Any) -> None:
    settings.JOBS_THREAD_EAGER = True
    settings.JOBS_BACKEND = "thread"
    with transaction.atomic():
        dispatch(record_marker, organization_id=str(org_a.pk), name="early")
        assert not AuditVerification.objects.filter(problem="early").exists()


@pytest.mark.django_db
def test_an_unknown_queue_is_refused(org_a: Any) -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        dispatch(record_marker, queue="nope", organization_id=str(org_a.pk), name="x")


@pytest.mark.django_db(transaction=True)
def test_without_redis_jobs_run_on_a_background_thread(org_a: Any, settings: Any) -> None:
    settings.JOBS_BACKEND = "thread"
    settings.JOBS_THREAD_EAGER = False
    dispatch(record_marker, organization_id=str(org_a.pk), name="threaded")
    jobs.wait_for_thread_jobs(timeout=20)
    assert AuditVerification.objects.filter(problem="threaded").count() == 1


@pytest.mark.django_db
def test_a_failing_job_marks_its_row_failed_with_the_reason(org_a: Any, settings: Any) -> None:
    settings.JOBS_BACKEND = "thread"
    row = AuditVerification.objects.create(organization=org_a)
    explode(verification_id=str(row.pk))
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED
    assert row.error == "ValueError: the disk is on fire"
    assert "Traceback" in row.traceback
    assert row.finished_at is not None


@pytest.mark.django_db
def test_a_finished_row_is_not_run_twice(org_a: Any) -> None:
    row = AuditVerification.objects.create(organization=org_a, status=JobStatus.SUCCEEDED)
    calls: list[Any] = []
    run_job_row(row, calls.append)
    assert calls == []


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_a_real_rq_worker_runs_the_job(
    org_a: Any, alice: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import django_rq

    for _ in range(3):
        audit_log_write(organization=org_a, action=AuditAction.ORG_UPDATED, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        verification = audit_verification_start(organization=org_a, actor=alice)
    assert django_rq.get_queue("default").count == 1
    verification.refresh_from_db()
    assert verification.status == JobStatus.QUEUED  # nothing ran yet: the worker has not picked it up
    assert run_jobs() == 1
    verification.refresh_from_db()
    assert verification.status == JobStatus.SUCCEEDED
    assert verification.is_intact is True
    assert verification.entries_checked == 3


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_a_failed_job_is_kept_in_rqs_failed_registry(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import django_rq

    row = AuditVerification.objects.create(organization=org_a)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch(explode, verification_id=str(row.pk))
    run_jobs()
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED
    assert django_rq.get_queue("default").failed_job_registry.count == 1


@pytest.mark.redis
@pytest.mark.django_db
def test_with_redis_the_request_id_travels_with_the_job(org_a: Any, django_capture_on_commit_callbacks: Any) -> None:
    import django_rq

    from evalence.logging import request_id_var

    token = request_id_var.set("req-from-the-api")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            dispatch(record_marker, organization_id=str(org_a.pk), name="traced")
    finally:
        request_id_var.reset(token)
    job = django_rq.get_queue("default").jobs[0]
    assert job.meta["request_id"] == "req-from-the-api"
