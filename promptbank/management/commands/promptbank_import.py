"""`manage.py promptbank_import`: import prompts into the bank, or drive the scheduled sources.

    promptbank_import --file PATH (--org SLUG | --global) [--source NAME] [--license ID] [--format json|jsonl|csv]
    promptbank_import --resume RUN_ID        finish an import that stopped half-way (after its last committed line)
    promptbank_import --poll                 import the drop folder and the feeds once, now
    promptbank_import --schedule             start polling them every PROMPTBANK_POLL_INTERVAL_S (RQ scheduler)

An import runs here, in this process (a run with channel "command"), through the same pipeline as uploads. It prints
the first 20 rejected lines, then ONE JSON object on its last line: `{"received", "accepted", "duplicates",
"near_duplicates", "rejected"}` (`--poll` prints its summary instead). Rejected lines do not fail the command; bad
arguments, an unknown organization, a missing file or an import that could not run do (one line, exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import organization_by_slug, service_errors
from promptbank import imports, jobs
from promptbank.choices import IngestionFormat, IngestionSource
from promptbank.models import IngestionRun

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Import a JSON, JSONL or CSV file of prompts into an organization's bank or the global bank."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, help="The file to import (.json array, .jsonl or .csv with a header).")
        parser.add_argument("--org", metavar="SLUG", help="Import into this organization's bank.")
        parser.add_argument("--global", dest="global_bank", action="store_true", help="Import into the global bank.")
        parser.add_argument("--source", help="Source name for rows that do not carry one (default: the file's name).")
        parser.add_argument("--license", default="", help="Licence identifier for rows that do not carry one.")
        parser.add_argument("--format", choices=IngestionFormat.values, default="", help="Default: from the file.")
        parser.add_argument("--resume", metavar="RUN_ID", help="Finish an interrupted import.")
        parser.add_argument("--poll", action="store_true", help="Import the drop folder and the feeds once.")
        parser.add_argument("--schedule", action="store_true", help="Start the scheduled polling (needs Redis).")

    def handle(self, *args: Any, **options: Any) -> None:
        actions = [name for name in ("file", "resume", "poll", "schedule") if options.get(name)]
        if len(actions) != 1:
            raise CommandError("Give exactly one of --file PATH, --resume RUN_ID, --poll or --schedule.")
        if options["poll"]:
            summary = imports.sources_poll(min_age_s=0)
            for problem in summary.problems:
                self.stdout.write(problem)
            self.stdout.write(json.dumps(summary.as_dict()))
            return
        if options["schedule"]:
            job_id = jobs.schedule_poll()
            if job_id is None:
                raise CommandError(
                    "Scheduling needs Redis (REDIS_URL) and a worker started with --with-scheduler; "
                    "without them, run `manage.py promptbank_import --poll` from cron."
                )
            self.stdout.write(f"Scheduled {job_id} on the pipeline queue; it re-schedules itself.")
            return
        if options["resume"]:
            with service_errors():
                try:
                    run = imports.ingestion_run_resume(run_id=options["resume"], start=False)
                except IngestionRun.DoesNotExist:  # pragma: no cover - the service raises NotFound
                    raise CommandError(f"No import with id {options['resume']}.") from None
                except (ValueError, TypeError) as exc:
                    raise CommandError(f"Not an import id: {options['resume']}.") from exc
            self._finish(imports.import_run_now(run))
            return
        self._import_file(options)

    def _import_file(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        if bool(options["org"]) == bool(options["global_bank"]):
            raise CommandError("Give --org SLUG or --global (exactly one): which bank to import into.")
        organization = organization_by_slug(options["org"]) if options["org"] else None
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        source = options["source"] or path.name.split(".", 1)[0] or "import"
        with service_errors(), path.open("rb") as fileobj:
            run = imports.import_create(
                organization=organization,
                channel=IngestionSource.COMMAND,
                source_name=source[:64] if not options["source"] else source,
                fileobj=fileobj,
                filename=path.name,
                format=options["format"],
                license=options["license"],
                max_bytes=None,
            )
        self._finish(imports.import_run_now(run))

    def _finish(self, run: IngestionRun) -> None:
        for error in run.errors[:SHOWN_ERRORS]:
            self.stdout.write(error["reason"])
        if run.errors_total > SHOWN_ERRORS:
            self.stdout.write(f"... and {run.errors_total - SHOWN_ERRORS} more rejected lines (import {run.pk})")
        self.stdout.write(json.dumps(run.counts()))
        if run.status != "succeeded":
            raise CommandError(f"Import {run.pk} {run.status}: {run.error or 'see the run for details'}")
