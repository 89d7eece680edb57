"""`seed_demo` step for analytics: 30 days of generated history for the demo organization, so the dashboard looks
like a month of real use (DEMO_HISTORY_EVALUATIONS evaluations, 20,000 by default, and 12 red-team sessions over
three demo targets).

It runs after the firewall and testing steps, whose real evaluations and sessions stay as they are: the generated
rows sit beside them (marked as generated), and the rollups are rebuilt over both. Running again adds nothing once
the generated sessions are there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from analytics.generate import history_generate, history_present, rollups_rebuild

if TYPE_CHECKING:
    from accounts.management.commands.seed_demo import DemoContext

DEMO_DAYS = 30
DEMO_TARGETS = 3
DEMO_SEED = 7


def run(demo: DemoContext) -> None:
    if history_present(demo.organization):
        demo.say("analytics: demo history already there")
        return
    summary = history_generate(
        organization=demo.organization,
        evaluations=settings.DEMO_HISTORY_EVALUATIONS,
        results=settings.DEMO_HISTORY_RESULTS,  # 12 sessions (3 targets, one session a week)
        days=DEMO_DAYS,
        seed=DEMO_SEED,
        targets=DEMO_TARGETS,
        rebuild_rollups=False,
    )
    # Rebuilt separately so the firewall step's real evaluations (made just before) are rolled up too.
    rollups = rollups_rebuild()
    demo.say(
        f"analytics: {summary.evaluations:,} evaluations and {summary.sessions} sessions "
        f"({summary.results:,} results) over {DEMO_DAYS} days; rollups {rollups}"
    )
