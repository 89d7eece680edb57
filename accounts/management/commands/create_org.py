"""`manage.py create_org --name "Acme" --slug acme [--plan free|team|enterprise]`"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts import services
from accounts.choices import Plan
from accounts.management.commands._helpers import service_errors


class Command(BaseCommand):
    help = "Create an organization (a tenant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme'.")
        parser.add_argument("--slug", required=True, help="URL name: lowercase letters, digits and hyphens.")
        parser.add_argument("--plan", choices=Plan.values, default=Plan.FREE, help="Plan (default: free).")

    def handle(self, *args: Any, name: str, slug: str, plan: str, **options: Any) -> None:
        with service_errors():
            organization = services.organization_create(name=name, slug=slug, plan=plan)
        self.stdout.write(
            f"Created organization {organization.name} (slug {organization.slug}, plan {organization.plan}, "
            f"id {organization.pk})"
        )
