"""The seed bank: the attack and benign prompts of the shared datasets that the project may redistribute, shipped in
`promptbank/data/bank_seed.jsonl` (sources and licences in `promptbank/data/README.md` and `NOTICE`), loaded into the
GLOBAL bank through the pipeline like any other import.

`seed_bank()` is idempotent: a second load finds every row already there (all duplicates, nothing written but the
run's record). `run(demo)` is this app's step of `manage.py seed_demo`; `manage.py promptbank_seed` calls the same.
Each row gets the licence of its source and a reference to where it came from (`repository@commit`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from evalence.errors import ApplicationError
from evalence.jobs import JobStatus, run_job_row
from promptbank.choices import IngestionFormat, IngestionSource
from promptbank.learning import learning_policy_update
from promptbank.models import BankRelease, IngestionRun
from promptbank.pipeline import ingest_records, read_records
from promptbank.services import release_create

if TYPE_CHECKING:
    from accounts.management.commands.seed_demo import DemoContext

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED_FILE = DATA_DIR / "bank_seed.jsonl"
SOURCES_FILE = DATA_DIR / "sources.json"
SEED_SOURCE_NAME = "seed"


@cache
def seed_sources() -> dict[str, dict[str, Any]]:
    """Per source of the seed: licence (SPDX), repository, commit, URL, licence files, note."""
    return json.loads(SOURCES_FILE.read_text(encoding="utf-8"))


def seed_records(fileobj: Any) -> Iterator[tuple[int, Any]]:
    """The seed file's records, each with its source's licence and origin filled in."""
    sources = seed_sources()
    for line, record in read_records(fileobj, IngestionFormat.JSONL):
        if isinstance(record, dict):
            origin = sources.get(str(record.get("source", "")))
            if origin is not None:
                record.setdefault("license", origin["license"])
                record.setdefault("source_ref", f"{origin['repository'].split(' ', 1)[0]}@{origin['commit']}")
        yield line, record


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fileobj:
        for chunk in iter(lambda: fileobj.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seed_bank(*, path: Path | None = None) -> IngestionRun:
    """Load the seed file (or another file of the same shape) into the global bank; returns the finished run."""
    path = Path(path or SEED_FILE)
    if not path.is_file():
        raise ApplicationError(f"The seed file {path} does not exist.")
    try:
        shown = str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        shown = str(path)
    run = IngestionRun.objects.create(
        organization=None,
        channel=IngestionSource.SEED,
        format=IngestionFormat.JSONL,
        source_name=SEED_SOURCE_NAME,
        filename=path.name,
        file_sha256=_sha256(path),
        options={"seed_file": shown},
        queue="pipeline",
    )

    def work(row: IngestionRun) -> None:
        with path.open("rb") as fileobj:
            ingest_records(seed_records(fileobj), organization=None, source_name=SEED_SOURCE_NAME, run=row)

    run = run_job_row(run, work)
    if run.status != JobStatus.SUCCEEDED:
        raise ApplicationError(f"Loading the seed bank failed: {run.error}")
    return run


def run(demo: DemoContext) -> None:
    """`seed_demo` step: the global bank holds the seed (a few seconds the first time, under a second after)."""
    seeded = seed_bank()
    counts = seeded.counts()
    demo.say(
        f"promptbank: global bank seeded from {SEED_FILE.name}: {counts['accepted']} new, "
        f"{counts['near_duplicates']} near duplicates, {counts['duplicates']} already there"
    )
    # The demo organization lets its red-team findings into its bank by itself, so the learning loop has something
    # to show from the first session on (organizations start with a curator reviewing them).
    learning_policy_update(
        organization=demo.organization,
        changes={"auto_accept_findings": True, "auto_accept_false_positives": True},
        actor=demo.admin,
    )
    # A first release of the global bank, so suites and exports have a version to pin from the start.
    if not BankRelease.objects.filter(organization__isnull=True).exists():
        release = release_create(organization=None, bump="major", notes="The shipped seed bank.", actor=None)
        demo.say(f"promptbank: global release {release.version} with {release.prompt_count} prompts")
