"""Imports into the bank: uploads and JSON records from the API and the upload page, files from the command line,
the drop folder and HTTP feeds. Every one becomes an `IngestionRun` (the row is the truth; a job does the work) and
goes through the same pipeline (`promptbank.pipeline`).

- `import_start` stores the upload (streamed to `PROMPTBANK_UPLOAD_DIR`, hashed while copying, size-limited),
  creates the run and queues `promptbank.jobs.ingestion_run_execute` on the `pipeline` queue.
- `ingestion_run_process` is the job's work: it streams the stored file through `ingest_records(run=...)` and pushes
  `ingestion.progress` events after each batch (organization runs only: the global bank has no tenant group).
- `ingestion_run_resume` re-queues a run whose worker died; it continues after `lines_done`.
- `sources_poll` (run by the scheduled `promptbank.jobs.poll_sources`) imports the drop folder's files and the
  configured feeds, and resumes runs left behind by dead RQ workers.

Drop folder (`PROMPTBANK_DROP_DIR`): a file at its top level goes into the global bank, a file in a sub-folder named
after an organization's slug into that organization's bank. Hidden files, `*.part`/`*.tmp` files and files changed
in the last few seconds (still being copied) wait for the next poll; symbolic links are never followed. A file is
claimed by renaming it (so two workers never import it twice), imported, then moved to `processed/` beside it, or to
`failed/` with `<name>.error.txt`.

Feeds (`PROMPTBANK_FEED_URLS`, entries `URL` or `URL|org-slug`): the body is a JSON array of records or
`{"prompts": [...]}`; a body whose SHA-256 equals the last import of the same feed is not imported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, User
from evalence.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from evalence.events import send_org_event
from evalence.jobs import JobStatus, dispatch
from promptbank.choices import IngestionFormat, IngestionSource
from promptbank.models import IngestionRun
from promptbank.pipeline import IngestResult, detect_format, ingest_records, read_records

logger = logging.getLogger("promptbank.imports")

CHUNK = 1 << 20
_EXTENSION = {IngestionFormat.JSON: ".json", IngestionFormat.JSONL: ".jsonl", IngestionFormat.CSV: ".csv"}
_UNSET: Any = object()


# --- starting an import -------------------------------------------------------------------------------------------


def _clean_source_name(source_name: str) -> str:
    source_name = (source_name or "").strip()
    if not source_name:
        raise ValidationFailed("A source name is required.", fields={"source_name": ["This field is required."]})
    if len(source_name) > 64:
        raise ValidationFailed(
            "The source name is longer than 64 characters.", fields={"source_name": ["At most 64 characters."]}
        )
    return source_name


def _upload_dir() -> Path:
    path = Path(settings.PROMPTBANK_UPLOAD_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class _Stored:
    path: Path
    sha256: str
    size: int
    head: bytes


def _store_stream(chunks: Iterable[bytes], *, max_bytes: int | None) -> _Stored:
    """Copy chunks to a new file in the upload folder, hashing as it goes; never more than `max_bytes`."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    final = _upload_dir() / uuid.uuid4().hex
    partial = final.with_suffix(".part")
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes:,} bytes.")
                if len(head) < 65536:
                    head += chunk[: 65536 - len(head)]
                digest.update(chunk)
                out.write(chunk)
        partial.rename(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return _Stored(final, digest.hexdigest(), size, head)


def _read_chunks(fileobj: IO[bytes]) -> Iterable[bytes]:
    while True:
        chunk = fileobj.read(CHUNK)
        if not chunk:
            return
        if isinstance(chunk, str):  # a text-mode file: store it as UTF-8
            chunk = chunk.encode("utf-8", "surrogateescape")
        yield chunk


def _record_chunks(records: Iterable[Any]) -> Iterable[bytes]:
    lines: list[str] = []
    for record in records:
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
        if len(lines) >= 1000:
            yield ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def import_create(
    *,
    organization: Organization | None,
    channel: str,
    source_name: str,
    fileobj: IO[bytes] | None = None,
    filename: str = "",
    records: list[Any] | None = None,
    format: str = "",
    license: str = "",
    actor: User | None = None,
    options: dict[str, Any] | None = None,
    max_bytes: int | None = _UNSET,
) -> IngestionRun:
    """Store the input and create its queued `IngestionRun`, without starting it (see `import_start`).

    `records` (JSON objects, e.g. from the API) are stored as JSON lines. `max_bytes` defaults to
    `PROMPTBANK_MAX_UPLOAD_BYTES`; None means no limit (a local file named on the command line).
    """
    if channel not in IngestionSource.values:
        raise ValidationFailed(f"Unknown channel {channel!r}.")
    source_name = _clean_source_name(source_name)
    license = (license or "").strip()
    if len(license) > 64:
        raise ValidationFailed(
            "The licence identifier is longer than 64 characters.", fields={"license": ["Too long."]}
        )
    format = (format or "").strip().lower()
    if format and format not in IngestionFormat.values:
        raise ValidationFailed(
            f"Unknown format {format!r}: expected one of {', '.join(IngestionFormat.values)}.",
            fields={"format": [f"Expected one of {', '.join(IngestionFormat.values)}."]},
        )
    if (fileobj is None) == (records is None):
        raise ValidationFailed("Give either a file or a list of records to import.")
    if max_bytes is _UNSET:
        max_bytes = settings.PROMPTBANK_MAX_UPLOAD_BYTES
    filename = os.path.basename(filename or "")[:255]

    if records is not None:
        if not isinstance(records, list | tuple):
            raise ValidationFailed("`records` must be a list of prompt objects.", fields={"records": ["Not a list."]})
        if not records:
            raise ValidationFailed("There are no records to import.", fields={"records": ["Empty list."]})
        stored = _store_stream(_record_chunks(records), max_bytes=max_bytes)
        format = IngestionFormat.JSONL
    else:
        assert fileobj is not None
        stored = _store_stream(_read_chunks(fileobj), max_bytes=max_bytes)
        try:
            if stored.size == 0:
                raise ValidationFailed("The file is empty.", fields={"file": ["The file is empty."]})
            format = format or detect_format(filename, stored.head)
            if not format:
                raise ValidationFailed(
                    "Could not tell the file's format from its name or content; name it .json, .jsonl or .csv, "
                    "or give the format.",
                    fields={"format": ["Unknown format."]},
                )
        except BaseException:
            stored.path.unlink(missing_ok=True)
            raise

    path = stored.path.rename(stored.path.with_suffix(_EXTENSION[format]))
    try:
        return IngestionRun.objects.create(
            organization=organization,
            channel=channel,
            format=format,
            source_name=source_name,
            license=license,
            filename=filename,
            file_path=str(path),
            file_sha256=stored.sha256,
            options=options or {},
            created_by=actor,
            queue="pipeline",
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _remember_rq_id(run_id: uuid.UUID):
    def remember(rq_id: str | None) -> None:
        if rq_id:
            IngestionRun.objects.filter(pk=run_id).update(rq_job_id=rq_id)

    return remember


def _dispatch(run: IngestionRun) -> None:
    from promptbank.jobs import ingestion_run_execute

    dispatch(ingestion_run_execute, run_id=str(run.pk), queue="pipeline", on_enqueued=_remember_rq_id(run.pk))


@transaction.atomic
def import_start(
    *,
    organization: Organization | None,
    channel: str,
    source_name: str,
    fileobj: IO[bytes] | None = None,
    filename: str = "",
    records: list[Any] | None = None,
    format: str = "",
    license: str = "",
    actor: User | None = None,
    options: dict[str, Any] | None = None,
) -> IngestionRun:
    """Store the upload (or the records), create the queued run and start it on the `pipeline` queue after commit.

    Raises ValidationFailed (no input, unknown format, empty file, bad source name), PayloadTooLarge.
    """
    run = import_create(
        organization=organization,
        channel=channel,
        source_name=source_name,
        fileobj=fileobj,
        filename=filename,
        records=records,
        format=format,
        license=license,
        actor=actor,
        options=options,
    )
    _dispatch(run)
    return run


# --- running an import (the job's work) ---------------------------------------------------------------------------


def progress_payload(run: IngestionRun, result: IngestResult | None = None) -> dict[str, Any]:
    counts = result.counts() if result is not None else run.counts()
    return {
        "run_id": str(run.pk),
        "status": run.status,
        **counts,
        "errors_total": result.errors_total if result is not None else run.errors_total,
        "lines_done": result.lines_done if result is not None else run.lines_done,
    }


def _send_progress(run: IngestionRun, payload: dict[str, Any]) -> None:
    if run.organization_id is not None:
        send_org_event(run.organization_id, "ingestion.progress", payload, "ingestion", str(run.pk))


def ingestion_run_process(run: IngestionRun) -> None:
    """Stream the run's stored file through the pipeline (called by `run_job_row`, which records the outcome)."""
    path = Path(run.file_path) if run.file_path else None
    if path is None or not path.is_file():
        raise FileNotFoundError("the stored file of this import is missing; start a new import")

    def on_batch(result: IngestResult) -> None:
        _send_progress(run, progress_payload(run, result))

    with path.open("rb") as fileobj:
        ingest_records(
            read_records(fileobj, run.format),
            organization=run.organization,
            source_name=run.source_name,
            license=run.license,
            author=run.created_by,
            run=run,
            on_batch=on_batch,
        )


def ingestion_run_finished(run: IngestionRun) -> None:
    """After the job: the final live event, and the stored file removed once it is fully imported."""
    if not run.is_finished:
        return
    payload = progress_payload(run)
    if run.error:
        payload["error"] = run.error
    _send_progress(run, payload)
    if run.status == JobStatus.SUCCEEDED and run.file_path:
        Path(run.file_path).unlink(missing_ok=True)
        IngestionRun.objects.filter(pk=run.pk).update(file_path="")
        run.file_path = ""


def _worker_alive(run: IngestionRun) -> bool:
    """Whether an RQ worker is still executing this run (False without RQ: a thread job cannot be observed)."""
    if settings.JOBS_BACKEND != "rq" or not run.rq_job_id:
        return False
    import django_rq
    from rq import Worker

    queue = django_rq.get_queue(run.queue or "pipeline")
    return any(worker.get_current_job_id() == run.rq_job_id for worker in Worker.all(queue=queue))


def ingestion_run_resume(
    *, run_id: Any, actor: User | None = None, organization: Any = _UNSET, start: bool = True
) -> IngestionRun:
    """Re-queue a run that stopped half-way (its worker died, or it failed): it continues after `lines_done`, so
    nothing is lost or imported twice. Pass `organization` to scope the lookup to a tenant (API, pages); with
    `start=False` the run is only reset to queued (the command then runs it in its own process)."""
    with transaction.atomic():
        runs = IngestionRun.objects.select_for_update()
        if organization is not _UNSET:
            runs = runs.filter(organization=organization)
        run = runs.filter(pk=run_id).first()
        if run is None:
            raise NotFound("No such import.")
        if run.status not in (JobStatus.RUNNING, JobStatus.FAILED):
            raise Conflict(f"Only a stalled or failed import can be resumed; this one is {run.status}.")
        if run.status == JobStatus.RUNNING and _worker_alive(run):
            raise Conflict("This import is still running on a worker.")
        if not run.file_path or not Path(run.file_path).is_file():
            raise Conflict("The stored file of this import is gone; start a new import.")
        run.status = JobStatus.QUEUED
        run.error = run.traceback = ""
        run.finished_at = None
        run.save(update_fields=["status", "error", "traceback", "finished_at"])
        if start:
            _dispatch(run)
    logger.info(
        "ingestion run %s resumed after line %s", run.pk, run.lines_done, extra={"actor": getattr(actor, "pk", None)}
    )
    return run


def stale_ingestion_runs() -> list[IngestionRun]:
    """Runs marked running whose RQ job is no longer executed by any worker (a killed worker). Without RQ there is
    no way to tell a slow run from a dead one here; resume those by hand (`promptbank_import --resume ID`)."""
    if settings.JOBS_BACKEND != "rq":
        return []
    import django_rq
    from rq import Worker

    running = list(IngestionRun.objects.filter(status=JobStatus.RUNNING).exclude(rq_job_id=""))
    if not running:
        return []
    busy = {worker.get_current_job_id() for worker in Worker.all(queue=django_rq.get_queue("pipeline"))}
    return [run for run in running if run.rq_job_id not in busy]


def import_run_now(run: IngestionRun) -> IngestionRun:
    """Execute a created run in this process (commands, the drop folder, feeds) and return it refreshed."""
    from promptbank.jobs import ingestion_run_execute

    try:
        ingestion_run_execute(run_id=str(run.pk))
    except Exception:  # under RQ the job re-raises after recording the failure on the row
        logger.info("ingestion run %s failed", run.pk, exc_info=True)
    run.refresh_from_db()
    return run


# --- sources: drop folder and feeds -------------------------------------------------------------------------------

RESERVED_FOLDERS = frozenset({"processed", "failed"})
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", "~", ".error.txt")


@dataclass
class PollSummary:
    """What one poll did: run ids per source, and one line per problem."""

    drop_folder: list[str] = field(default_factory=list)
    feeds: list[str] = field(default_factory=list)
    unchanged_feeds: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "drop_folder": self.drop_folder,
            "feeds": self.feeds,
            "unchanged_feeds": self.unchanged_feeds,
            "resumed": self.resumed,
            "problems": self.problems,
        }


def _source_name_for(name: str) -> str:
    stem = name.split(".", 1)[0] if not name.startswith(".") else name
    return (stem.strip() or "drop_folder")[:64]


def _move_beside(path: Path, folder: str, name: str) -> Path:
    """Move `path` into `folder/` of its directory under `name`, never overwriting an earlier file."""
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / name
    if target.exists():
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{stamp}-{uuid.uuid4().hex[:6]}-{name}"
    shutil.move(str(path), str(target))
    return target


def _fail_file(path: Path, name: str, reason: str) -> None:
    target = _move_beside(path, "failed", name)
    target.with_name(target.name + ".error.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")


def _ready(path: Path, min_age_s: float) -> bool:
    if path.name.startswith(".") or path.name.endswith(_IGNORED_SUFFIXES) or path.is_symlink() or not path.is_file():
        return False
    try:
        return time.time() - path.stat().st_mtime >= min_age_s
    except FileNotFoundError:
        return False


def _import_dropped(path: Path, organization: Organization | None, summary: PollSummary) -> None:
    name = path.name
    claimed = path.with_name(f".{name}.importing")
    try:
        path.rename(claimed)  # atomic: a second worker polling the same folder finds nothing to take
    except FileNotFoundError:
        return
    try:
        with claimed.open("rb") as fileobj:
            run = import_create(
                organization=organization,
                channel=IngestionSource.DROP_FOLDER,
                source_name=_source_name_for(name),
                fileobj=fileobj,
                filename=name,
                options={"drop_path": str(path)},
                max_bytes=None,
            )
    except Exception as exc:
        reason = exc.message if hasattr(exc, "message") else f"{type(exc).__name__}: {exc}"
        _fail_file(claimed, name, reason)
        summary.problems.append(f"{path}: {reason}")
        return
    run = import_run_now(run)
    summary.drop_folder.append(str(run.pk))
    if run.status == JobStatus.SUCCEEDED:
        _move_beside(claimed, "processed", name)
    else:
        _fail_file(claimed, name, f"import {run.pk} {run.status}: {run.error}")
        summary.problems.append(f"{path}: import {run.pk} {run.status}: {run.error}")


def drop_folder_scan(
    *, root: str | Path | None = None, min_age_s: float = 5.0, summary: PollSummary | None = None
) -> PollSummary:
    """Import every ready file of the drop folder (see the module docstring)."""
    summary = summary or PollSummary()
    root = Path(root if root is not None else settings.PROMPTBANK_DROP_DIR or "")
    if not str(root) or str(root) == "." or not root.is_dir():
        return summary
    for entry in sorted(root.iterdir()):
        if entry.name in RESERVED_FOLDERS or entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_file():
            if _ready(entry, min_age_s):
                _import_dropped(entry, None, summary)
            continue
        if not entry.is_dir():
            continue
        files = [f for f in sorted(entry.iterdir()) if _ready(f, min_age_s)]
        if not files:
            continue
        organization = Organization.objects.filter(slug=entry.name).first()
        for path in files:
            if organization is None:
                reason = f"No organization with slug '{entry.name}': files in {entry.name}/ have no bank to go to."
                _fail_file(path, path.name, reason)
                summary.problems.append(f"{path}: {reason}")
            else:
                _import_dropped(path, organization, summary)
    return summary


def feed_entries(values: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """`(url, org slug or "")` of the configured feeds (`URL` or `URL|org-slug`)."""
    entries = []
    for value in settings.PROMPTBANK_FEED_URLS if values is None else values:
        url, _, slug = str(value).strip().partition("|")
        if url.strip():
            entries.append((url.strip(), slug.strip()))
    return entries


class FeedError(Exception):
    pass


def _download(url: str, *, timeout: float, max_bytes: int) -> Path:
    """The feed's body in a temporary file (streamed, size-limited)."""
    handle = tempfile.NamedTemporaryFile(prefix="feed-", suffix=".json", delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle, httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FeedError(f"{url} answered HTTP {response.status_code}")
            size = 0
            for chunk in response.iter_bytes(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"{url} sent more than {max_bytes:,} bytes")
                handle.write(chunk)
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise FeedError(f"{url}: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fileobj:
        for chunk in iter(lambda: fileobj.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def feed_poll(*, url: str, organization: Organization | None, timeout: float | None = None) -> IngestionRun | None:
    """Fetch one feed and import it, unless its body is the same as the last import's (then None)."""
    path = _download(
        url,
        timeout=settings.PROMPTBANK_FEED_TIMEOUT_S if timeout is None else timeout,
        max_bytes=settings.PROMPTBANK_MAX_UPLOAD_BYTES,
    )
    try:
        sha256 = _sha256_file(path)
        last = (
            IngestionRun.objects.filter(channel=IngestionSource.FEED, organization=organization, options__feed_url=url)
            .exclude(status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
            .order_by("-created_at")
            .first()
        )
        if last is not None and last.file_sha256 == sha256:
            return None
        with path.open("rb") as fileobj:
            run = import_create(
                organization=organization,
                channel=IngestionSource.FEED,
                source_name=(urlsplit(url).hostname or "feed")[:64],
                fileobj=fileobj,
                filename=(urlsplit(url).path.rsplit("/", 1)[-1] or "feed.json")[:255],
                format=IngestionFormat.JSON,
                options={"feed_url": url},
            )
    finally:
        path.unlink(missing_ok=True)
    return import_run_now(run)


def sources_poll(*, min_age_s: float = 5.0) -> PollSummary:
    """One poll of every source: the drop folder, the feeds, and runs whose RQ worker died."""
    summary = PollSummary()
    try:
        drop_folder_scan(min_age_s=min_age_s, summary=summary)
    except OSError as exc:
        summary.problems.append(f"drop folder {settings.PROMPTBANK_DROP_DIR}: {exc}")
    for url, slug in feed_entries():
        organization = None
        if slug:
            organization = Organization.objects.filter(slug=slug).first()
            if organization is None:
                summary.problems.append(f"{url}: no organization with slug '{slug}'")
                continue
        try:
            run = feed_poll(url=url, organization=organization)
        except (FeedError, ValidationFailed, PayloadTooLarge) as exc:
            summary.problems.append(str(getattr(exc, "message", exc)))
            continue
        if run is None:
            summary.unchanged_feeds.append(url)
        else:
            summary.feeds.append(str(run.pk))
            if run.status != JobStatus.SUCCEEDED:
                summary.problems.append(f"{url}: import {run.pk} {run.status}: {run.error}")
    for run in stale_ingestion_runs():
        try:
            ingestion_run_resume(run_id=run.pk)
        except (Conflict, NotFound) as exc:
            summary.problems.append(f"import {run.pk}: {exc.message}")
        else:
            summary.resumed.append(str(run.pk))
    for problem in summary.problems:
        logger.warning("prompt bank sources: %s", problem)
    return summary


def next_poll_time(now: float, interval_s: int) -> float:
    """The next slot on the poll grid (multiples of the interval), so every scheduler agrees on the job's id."""
    return math.floor(now / interval_s + 1) * interval_s
