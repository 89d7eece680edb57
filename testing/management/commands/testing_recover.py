"""`manage.py testing_recover [--schedule]`: re-queue test sessions whose worker died, now; with --schedule, also
start the periodic watchdog (RQ scheduler; idempotent). Prints a one-line JSON summary."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from testing import jobs


class Command(BaseCommand):
    help = "Re-queue stale test sessions (a dead worker's), and optionally schedule the periodic watchdog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schedule", action="store_true", help="Start the periodic watchdog (needs Redis)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["schedule"] and settings.JOBS_BACKEND != "rq":
            raise CommandError("--schedule needs Redis (REDIS_URL) and a worker started with --with-scheduler")
        recovered = jobs.watchdog(reschedule=False)
        job_id = jobs.schedule_watchdog() if options["schedule"] else None
        self.stdout.write(json.dumps({"requeued": recovered, "scheduled": job_id}))
