"""Imports as jobs: the stored upload, the run row, the job (in-process, or a real RQ worker), live progress events,
resuming a run whose worker died, and the refusals."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from evalence.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from evalence.jobs import JobStatus
from evalence.tenancy import group_name
from promptbank import imports, jobs
from promptbank.choices import IngestionSource
from promptbank.models import IngestionRun, Prompt
from promptbank.pipeline import store

pytestmark = pytest.mark.django_db

TOPICS = [
    "the water cycle in simple words",
    "how to fold a paper crane step by step",
    "why the sky looks blue at noon and red at dusk",
    "the rules of cricket for an American reader",
    "how compound interest grows a small savings account",
    "what a sourdough starter needs to stay alive",
    "how to plan a three-day hike in the Alps",
    "the difference between weather and climate",
]


def records(n: int = 8) -> list[dict[str, Any]]:
    return [{"text": f"Explain {TOPICS[i]}.", "label": "benign"} for i in range(n)]


def upload(data: bytes, name: str = "prompts.jsonl") -> io.BytesIO:
    fileobj = io.BytesIO(data)
    fileobj.name = name
    return fileobj


def as_jsonl(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


@pytest.fixture(autouse=True)
def upload_dir(settings: Any, tmp_path: Path) -> Path:
    settings.PROMPTBANK_UPLOAD_DIR = tmp_path / "uploads"
    return settings.PROMPTBANK_UPLOAD_DIR


def test_an_uploaded_file_is_stored_run_and_then_removed(
    org_a: Any, alice: Any, upload_dir: Path, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = as_jsonl([*records(3), {"text": "", "label": 1}, records(1)[0]])
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(
            organization=org_a,
            channel=IngestionSource.API,
            source_name="upload",
            fileobj=upload(data),
            filename="../../etc/prompts.jsonl",
            actor=alice,
        )
    run_jobs()
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert (run.format, run.filename, run.queue, run.created_by) == ("jsonl", "prompts.jsonl", "pipeline", alice)
    assert run.counts() == {"received": 5, "accepted": 3, "duplicates": 1, "near_duplicates": 0, "rejected": 1}
    assert run.errors == [{"line": 4, "reason": "line 4: text is missing or empty"}]
    assert (run.lines_done, run.errors_total) == (5, 1)
    assert len(run.file_sha256) == 64
    assert run.file_path == "" and list(upload_dir.iterdir()) == []  # the stored upload is gone once imported
    assert set(Prompt.objects.filter(organization=org_a).values_list("source", "author")) == {("upload", alice.pk)}


def test_json_records_are_stored_as_json_lines(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(
            organization=org_a, channel=IngestionSource.API, source_name="api", records=[*records(2), "not an object"]
        )
    run_jobs()
    run.refresh_from_db()
    assert run.format == "jsonl"
    assert run.counts()["accepted"] == 2
    assert run.errors == [{"line": 3, "reason": "line 3: expected a JSON object, got a string"}]


def test_the_format_is_detected_from_the_content_when_the_name_does_not_say(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = json.dumps(records(2)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(
            organization=org_a, channel=IngestionSource.PAGE, source_name="page", fileobj=upload(data, "blob")
        )
    run_jobs()
    run.refresh_from_db()
    assert (run.format, run.status, run.accepted) == ("json", JobStatus.SUCCEEDED, 2)


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(org_a: Any, settings: Any, upload_dir: Path) -> None:
    settings.PROMPTBANK_MAX_UPLOAD_BYTES = 100
    with pytest.raises(PayloadTooLarge, match="limit of 100 bytes"):
        imports.import_start(
            organization=org_a, channel=IngestionSource.API, source_name="big", fileobj=upload(as_jsonl(records()))
        )
    assert not IngestionRun.objects.exists()
    assert list(upload_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fileobj": upload(b"just some words", "notes.txt")}, "Could not tell the file's format"),
        ({"fileobj": upload(b"", "empty.jsonl")}, "The file is empty."),
        ({"fileobj": upload(b"[]", "x.json"), "format": "xml"}, "Unknown format 'xml'"),
        ({}, "Give either a file or a list of records"),
        ({"records": []}, "There are no records to import."),
        ({"records": records(1), "source_name": " "}, "A source name is required."),
    ],
)
def test_bad_imports_are_refused_before_a_run_exists(
    org_a: Any, upload_dir: Path, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = {"source_name": "x", **kwargs}
    with pytest.raises(ValidationFailed, match=message):
        imports.import_start(organization=org_a, channel=IngestionSource.API, **kwargs)
    assert not IngestionRun.objects.exists()
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


def test_a_broken_json_array_fails_the_run_with_the_reason(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(
            organization=org_a,
            channel=IngestionSource.API,
            source_name="x",
            fileobj=upload(b'[{"text": "fine", "label": 0}, {"text": "cut', "cut.json"),
        )
    run_jobs()
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert run.error == "FileFormatError: the JSON array is not closed (a string never ends)"
    assert Path(run.file_path).is_file()  # kept, so the import can be looked at (and resumed once fixed)


def test_progress_events_go_to_the_runs_group_after_each_batch(
    org_a: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PROMPTBANK_BATCH_SIZE = 3
    layer = get_channel_layer()
    channel = f"test-progress-{uuid.uuid4().hex}"  # a plain channel: receivable from any event loop
    run = imports.import_create(
        organization=org_a, channel=IngestionSource.PAGE, source_name="page", fileobj=upload(as_jsonl(records(7)))
    )
    async_to_sync(layer.group_add)(group_name(org_a.pk, "ingestion", str(run.pk)), channel)
    with django_capture_on_commit_callbacks(execute=True):
        jobs.ingestion_run_execute(run_id=str(run.pk))

    async def receive(count: int) -> list[dict[str, Any]]:
        return [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in range(count)]

    events = async_to_sync(receive)(4)
    assert [e["event"] for e in events] == ["ingestion.progress"] * 4
    assert [(e["data"]["status"], e["data"]["lines_done"], e["data"]["accepted"]) for e in events] == [
        ("running", 3, 3),
        ("running", 6, 6),
        ("running", 7, 7),
        ("succeeded", 7, 7),
    ]
    assert events[-1]["data"]["run_id"] == str(run.pk)


class WorkerKilled(BaseException):
    """What the job sees when its worker process dies: nothing catches it, the row stays `running`."""


def test_a_run_whose_worker_died_resumes_after_its_last_committed_line(
    org_a: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.PROMPTBANK_BATCH_SIZE = 3
    run = imports.import_create(
        organization=org_a, channel=IngestionSource.API, source_name="api", fileobj=upload(as_jsonl(records(8)))
    )
    real_save = store.save_batch
    calls = {"n": 0}

    def dies_in_the_third_batch(prompts: list[Prompt], **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise WorkerKilled
        return real_save(prompts, **kwargs)

    monkeypatch.setattr(store, "save_batch", dies_in_the_third_batch)
    with pytest.raises(WorkerKilled):
        jobs.ingestion_run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    assert (run.status, run.lines_done, run.accepted) == (JobStatus.RUNNING, 6, 6)
    assert Prompt.objects.filter(organization=org_a).count() == 6

    monkeypatch.setattr(store, "save_batch", real_save)
    with django_capture_on_commit_callbacks(execute=True):
        imports.ingestion_run_resume(run_id=run.pk)
    run_jobs()
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert run.counts() == {"received": 8, "accepted": 8, "duplicates": 0, "near_duplicates": 0, "rejected": 0}
    assert Prompt.objects.filter(organization=org_a).count() == 8


def test_resume_refuses_finished_runs_and_other_tenants(org_a: Any, org_b: Any) -> None:
    run = imports.import_create(
        organization=org_a, channel=IngestionSource.API, source_name="api", fileobj=upload(as_jsonl(records(1)))
    )
    IngestionRun.objects.filter(pk=run.pk).update(status=JobStatus.SUCCEEDED)
    with pytest.raises(Conflict, match="this one is succeeded"):
        imports.ingestion_run_resume(run_id=run.pk)
    IngestionRun.objects.filter(pk=run.pk).update(status=JobStatus.FAILED)
    with pytest.raises(NotFound):
        imports.ingestion_run_resume(run_id=run.pk, organization=org_b)
    Path(run.file_path).unlink()
    with pytest.raises(Conflict, match="stored file of this import is gone"):
        imports.ingestion_run_resume(run_id=run.pk, organization=org_a)


@pytest.mark.redis
def test_with_redis_the_import_runs_on_a_real_rq_worker(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import django_rq

    with django_capture_on_commit_callbacks(execute=True):
        run = imports.import_start(
            organization=org_a, channel=IngestionSource.API, source_name="api", fileobj=upload(as_jsonl(records(4)))
        )
    assert django_rq.get_queue("pipeline").count == 1
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and run.rq_job_id
    assert run_jobs() == 1
    run.refresh_from_db()
    assert (run.status, run.accepted) == (JobStatus.SUCCEEDED, 4)


@pytest.mark.redis
def test_with_redis_a_run_left_running_by_a_dead_worker_is_found_and_resumed(
    org_a: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run = imports.import_create(
        organization=org_a, channel=IngestionSource.API, source_name="api", fileobj=upload(as_jsonl(records(3)))
    )
    IngestionRun.objects.filter(pk=run.pk).update(status=JobStatus.RUNNING, rq_job_id="a-job-no-worker-runs")
    assert [r.pk for r in imports.stale_ingestion_runs()] == [run.pk]
    with django_capture_on_commit_callbacks(execute=True):
        summary = imports.sources_poll()
    assert summary.resumed == [str(run.pk)]
    run_jobs()
    run.refresh_from_db()
    assert (run.status, run.accepted) == (JobStatus.SUCCEEDED, 3)
    assert imports.stale_ingestion_runs() == []
