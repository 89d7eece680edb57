"""`manage.py analytics_rollup [--rebuild [--since ISO] [--until ISO]] [--schedule]`: roll up the firewall traffic
of the hours completed since the last run (what the periodic job does), or recompute a range (everything by default)
with --rebuild; with --schedule, also start the periodic job (RQ scheduler; idempotent). Prints a one-line JSON
summary."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from analytics import jobs, rollups


def _moment(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time; without an offset it is TIME_ZONE's."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be an ISO date or date-time (2025-03-01T12:00), got {value!r}") from None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Roll up firewall traffic into hourly and daily counts (or rebuild them), and optionally schedule the job."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="Recompute a range (everything by default)")
        parser.add_argument("--since", help="With --rebuild: start of the range (ISO; rounded down to the hour)")
        parser.add_argument("--until", help="With --rebuild: end of the range (ISO; rounded up to the hour)")
        parser.add_argument("--schedule", action="store_true", help="Start the periodic rollup job (needs Redis)")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = _moment(options["since"], "--since"), _moment(options["until"], "--until")
        if (since or until) and not options["rebuild"]:
            raise CommandError("--since and --until go with --rebuild")
        if since and until and since >= until:
            raise CommandError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
        if options["schedule"] and settings.JOBS_BACKEND != "rq":
            raise CommandError("--schedule needs Redis (REDIS_URL) and a worker started with --with-scheduler")
        try:
            summary = rollups.rebuild(since, until) if options["rebuild"] else rollups.rollup_recent()
        except ValueError as error:
            raise CommandError(str(error)) from None
        summary = {"mode": "rebuild" if options["rebuild"] else "recent", **summary}
        summary["scheduled"] = jobs.schedule_rollups() if options["schedule"] else None
        self.stdout.write(json.dumps(summary))
