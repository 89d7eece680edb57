"""`manage.py analytics_report`: an organization's report for a period, as HTML or CSV, to a file or stdout; or,
with --send-due, e-mail the scheduled reports that are due now; with --schedule, start the periodic job (RQ
scheduler; idempotent).

    analytics_report --org acme [--since ISO [--until ISO] | --period 7d|weekly|monthly] [--format html|csv]
                     [--output FILE]
    analytics_report --send-due [--schedule]
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Organization
from analytics import report_jobs, reports


def _moment(value: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        example = "e.g. 2025-03-01 or 2025-03-01T08:00"
        raise CommandError(f"--{name} {value!r} is not an ISO 8601 date or time ({example})") from None


class Command(BaseCommand):
    help = "Write an organization's report (HTML or CSV), send the scheduled reports that are due, or schedule that."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Organization slug (for a report)")
        parser.add_argument("--since", help="Start of a custom range, ISO 8601 (local time when no offset)")
        parser.add_argument("--until", help="End of a custom range, excluded (default: now)")
        parser.add_argument("--period", choices=reports.PRESETS, help="A preset period instead (default: 7d)")
        parser.add_argument("--format", choices=("html", "csv"), default="html", help="Default: html")
        parser.add_argument("--output", help="File to write (default: stdout)")
        parser.add_argument("--send-due", action="store_true", help="E-mail the scheduled reports that are due")
        parser.add_argument("--schedule", action="store_true", help="Start the periodic sending job (needs Redis)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["org"] and (options["since"] or options["until"] or options["period"] or options["output"]):
            raise CommandError("--since, --until, --period and --output describe a report: give --org SLUG too")
        if not (options["org"] or options["send_due"] or options["schedule"]):
            raise CommandError("Nothing to do: give --org SLUG (a report), --send-due or --schedule")
        if options["schedule"] and settings.JOBS_BACKEND != "rq":
            raise CommandError("--schedule needs Redis (REDIS_URL) and a worker started with --with-scheduler")
        if options["org"]:
            self._report(options)
        summary: dict[str, Any] = {}
        if options["send_due"]:
            summary.update(reports.send_due_reports().as_dict())
        if options["schedule"]:
            summary["scheduled"] = report_jobs.schedule_reports()
        if summary:
            self.stdout.write(json.dumps(summary))

    def _report(self, options: dict[str, Any]) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {options['org']!r}")
        if options["until"] and not options["since"]:
            raise CommandError("--until needs --since (a custom range)")
        if options["since"] and options["period"]:
            raise CommandError("Give either --period or --since/--until, not both")
        since = _moment(options["since"], "since") if options["since"] else None
        until = _moment(options["until"], "until") if options["until"] else None
        try:
            period = reports.report_period(preset=options["period"], since=since, until=until)
        except reports.ReportInputError as exc:
            raise CommandError(exc.message) from exc
        report = reports.build_report(organization, period)
        body = reports.render_html(report) if options["format"] == "html" else reports.render_csv(report)
        if not options["output"]:
            self.stdout.write(body, ending="")
            return
        path = Path(options["output"])
        try:
            path.write_text(body, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}") from exc
        self.stderr.write(f"Wrote the {options['format'].upper()} report of {organization.slug} to {path}")
