"""`manage.py firewall_harvest [--org SLUG] [--schedule]`: one harvest pass now — high-confidence blocked inputs into
the prompt bank as clustered candidates (see `firewall.learning`) — for one organization or all; with --schedule,
also start the periodic harvest job (RQ scheduler; idempotent). Prints a one-line JSON summary."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import organization_by_slug, service_errors
from firewall import jobs, learning


class Command(BaseCommand):
    help = "Harvest high-confidence blocked inputs into the prompt bank as candidates; optionally schedule the job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Only this organization (default: every organization)")
        parser.add_argument("--schedule", action="store_true", help="Start the periodic harvest job (needs Redis)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["schedule"] and settings.JOBS_BACKEND != "rq":
            raise CommandError("--schedule needs Redis (REDIS_URL) and a worker started with --with-scheduler")
        organization = organization_by_slug(options["org"]) if options.get("org") else None
        with service_errors():
            summaries = learning.harvest_all(organization=organization)
        job_id = jobs.schedule_harvest() if options["schedule"] else None
        self.stdout.write(json.dumps({"organizations": [s.as_dict() for s in summaries], "scheduled": job_id}))
