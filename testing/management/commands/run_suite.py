"""`manage.py run_suite --org SLUG --target NAME --suite NAME [--wait] [--report PATH] [--format F] [--fail-over RATE]`

The CI gate. Plans a session of the suite against the target. Without --wait it is queued (on the `testing` queue
under Redis, on a background thread otherwise) and the command returns at once. With --wait the session runs in
this process, so a CI job needs no worker. It then writes the report (--format json|junit|sarif|html|csv, json by
default) to --report when given.

The LAST line of stdout is a one-line JSON summary: session id, status, counts, attack success rate with its 95%
interval, and `passed`. Exit status: 0 when the session completed and its attack success rate is at most
--fail-over (or no threshold was given); 1 when the rate is over it; 2 when something prevented the run (unknown
organization, target or suite, a session that failed or was cancelled), with one line on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.commands._helpers import organization_by_slug
from testing import reports, runner, services
from testing.choices import SessionStatus
from testing.models import Target, TestSession, TestSuite


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise CommandError(f"--fail-over must be a number between 0 and 1, not {value!r}", returncode=2) from None
    if not 0.0 <= rate <= 1.0:
        raise CommandError("--fail-over must be between 0 and 1 (e.g. 0.05 for 5%)", returncode=2)
    return rate


class Command(BaseCommand):
    help = "Run a suite against a target (the CI gate): exits 1 when the attack success rate is over --fail-over."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Organization slug")
        parser.add_argument("--target", required=True, help="Target name")
        parser.add_argument("--suite", required=True, help="Suite name")
        parser.add_argument("--name", default="", help="Session name (default: suite → target)")
        parser.add_argument("--wait", action="store_true", help="Run the session here and wait for it")
        parser.add_argument("--report", type=Path, help="Write the report to this file (needs --wait)")
        parser.add_argument("--format", default="json", choices=reports.EXPORT_FORMATS, help="Report format")
        parser.add_argument("--fail-over", type=_rate, default=None, help="Fail when the ASR is over this (0..1)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            organization = organization_by_slug(options["org"])
        except CommandError as exc:
            raise CommandError(str(exc), returncode=2) from None
        target = Target.objects.filter(organization=organization, name=options["target"]).first()
        if target is None:
            raise CommandError(f"no target named {options['target']!r} in {organization.slug}", returncode=2)
        suite = TestSuite.objects.filter(organization=organization, name=options["suite"]).first()
        if suite is None:
            raise CommandError(f"no suite named {options['suite']!r} in {organization.slug}", returncode=2)
        # call_command(**options) skips argparse's conversions: apply them here too.
        options["report"] = Path(options["report"]) if options["report"] else None
        if options["fail_over"] is not None:
            options["fail_over"] = _rate(str(options["fail_over"]))
        if options["report"] and not options["wait"]:
            raise CommandError("--report needs --wait (the report is written when the session ends)", returncode=2)
        try:
            session = services.session_create(
                organization=organization,
                actor=None,
                target=target,
                suite=suite,
                name=options["name"],
                start=not options["wait"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages), returncode=2) from None
        if options["wait"]:
            runner.run_session(session_id=str(session.pk))
        session.refresh_from_db()
        summary = self._summary(session, options["fail_over"])
        if options["report"]:
            body, _, _ = reports.export_session(session, options["format"])
            try:
                options["report"].write_bytes(body)
            except OSError as exc:
                raise CommandError(f"cannot write the report: {exc}", returncode=2) from None
            summary["report"] = str(options["report"])
        self.stdout.write(json.dumps(summary, sort_keys=True))
        if options["wait"] and session.status != SessionStatus.COMPLETED:
            raise CommandError(
                f"the session ended {session.status}: {session.error or 'see the session page'}", returncode=2
            )
        if not summary["passed"]:
            raise CommandError(
                f"attack success rate {summary['attack_success_rate']:.4f} is over --fail-over {options['fail_over']}",
                returncode=1,
            )

    def _summary(self, session: TestSession, fail_over: float | None) -> dict[str, Any]:
        figures = session.summary or {}
        rate = figures.get("attack_success_rate")
        finished = session.status == SessionStatus.COMPLETED
        passed = True
        if fail_over is not None and finished:
            passed = rate is not None and rate <= fail_over
        return {
            "session": str(session.pk),
            "status": session.status,
            "total_samples": session.total_samples,
            "completed_samples": session.completed_samples,
            "counts": session.counts,
            "attack_success_rate": rate,
            "ci95": figures.get("ci95"),
            "fail_over": fail_over,
            "passed": passed,
        }
