"""`manage.py create_api_key --org acme --name ci --scopes firewall:evaluate,read [--expires-in-days N]`

The secret is printed alone on the last line of stdout, so a script can take it with `| tail -n 1`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import services
from accounts.choices import Scope
from accounts.management.commands._helpers import organization_by_slug, scopes_argument, service_errors


class Command(BaseCommand):
    help = "Create an API key for an organization; prints the secret (shown once) on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--name", required=True, help="What uses the key, e.g. 'ci'.")
        parser.add_argument(
            "--scopes",
            required=True,
            type=scopes_argument,
            help=f"Comma-separated scopes: {', '.join(Scope.values)}.",
        )
        parser.add_argument("--expires-in-days", type=int, default=None, help="Expire after N days (default: never).")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_slug(options["org"])
        days = options["expires_in_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=days) if days else None

        with service_errors():
            key, secret = services.api_key_create(
                organization=organization, name=options["name"], scopes=options["scopes"], expires_at=expires_at
            )

        self.stdout.write(f"Created API key '{key.name}' for {organization.slug}")
        self.stdout.write(f"  prefix:  {key.prefix}")
        self.stdout.write(f"  scopes:  {', '.join(key.scopes)}")
        self.stdout.write(f"  expires: {key.expires_at.isoformat(timespec='seconds') if key.expires_at else 'never'}")
        self.stdout.write("The secret is shown once and only its hash is stored; it is on the next line:")
        self.stdout.write(secret)
