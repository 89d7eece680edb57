"""`manage.py verify_audit_log [--org SLUG]`: walk the hash-chained audit log and report the first broken link.

One line per chain (every organization's, then the global chain of entries without an organization); exits 1 when
any chain is broken, so a cron job or CI step can alert on it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management.commands._helpers import organization_by_slug
from accounts.models import Organization


class Command(BaseCommand):
    help = "Verify the audit-log hash chains; exit 1 and name the first broken entry when one does not hold."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Only this organization's chain (default: every chain, and the global one).")

    def handle(self, *args: Any, org: str | None = None, **options: Any) -> None:
        if org:
            chains: list[Organization | None] = [organization_by_slug(org)]
        else:
            chains = [*Organization.objects.order_by("slug"), None]

        broken = []
        for organization in chains:
            report = services.audit_log_verify(organization=organization)
            if report.is_intact:
                noun = "entry" if report.entries_checked == 1 else "entries"
                self.stdout.write(f"{report.chain_label}: ok, {report.entries_checked} {noun}")
            else:
                broken.append(report)
                self.stdout.write(
                    f"{report.chain_label}: BROKEN at entry #{report.first_broken_sequence}: {report.problem}"
                )

        if broken:
            first = broken[0]
            raise CommandError(
                f"{len(broken)} of {len(chains)} audit chain(s) broken; first: {first.chain_label} "
                f"at entry #{first.first_broken_sequence}",
                returncode=1,
            )
