"""`manage.py analytics_generate --org SLUG --evaluations N --results N [--days 30] [--seed 1] [--targets 3]`.

Writes realistic synthetic history for one organization (see `analytics.generate`) and rebuilds the rollups; prints
a one-line JSON summary. For demos and benchmarks: the rows are marked as generated, but they are real rows of the
organization, so do not run it against an organization whose figures matter.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.management.commands._helpers import organization_by_slug, service_errors
from analytics.generate import history_generate


class Command(BaseCommand):
    help = "Generate synthetic firewall traffic and red-team sessions for one organization (demo and benchmarks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Slug of the organization.")
        parser.add_argument("--evaluations", type=int, required=True, help="Evaluations to write.")
        parser.add_argument("--results", type=int, required=True, help="Test results to write (over sessions).")
        parser.add_argument("--days", type=int, default=30, help="Spread over this many past days (default 30).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (same seed, same history).")
        parser.add_argument("--targets", type=int, default=3, help="Demo targets the sessions run against.")
        parser.add_argument("--no-rollups", action="store_true", help="Do not rebuild the rollups afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_slug(options["org"])
        with service_errors():
            summary = history_generate(
                organization=organization,
                evaluations=options["evaluations"],
                results=options["results"],
                days=options["days"],
                seed=options["seed"],
                targets=options["targets"],
                rebuild_rollups=not options["no_rollups"],
                progress=self._progress if options["verbosity"] > 1 else None,
            )
        self.stdout.write(json.dumps(summary.as_dict()))

    def _progress(self, message: str) -> None:
        self.stderr.write(message)
