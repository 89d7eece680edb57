"""`manage.py create_user --email ana@example.com --org acme --role admin [--password '...'] [--name ...]`

Creates the user and their membership, or adds an existing user to the organization. The password comes from
`--password`, else from the environment variable EVALENCE_USER_PASSWORD (keeps it out of the shell history and
the process list); with neither, the account gets an unusable password until one is set.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import services
from accounts.choices import Role
from accounts.management.commands._helpers import organization_by_slug, service_errors
from accounts.models import Membership, User

PASSWORD_ENV = "EVALENCE_USER_PASSWORD"  # noqa: S105 - a variable name, not a password


class Command(BaseCommand):
    help = "Create a user and add them to an organization with a role (or add an existing user)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="Sign-in address.")
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--role", required=True, choices=Role.values, help="Role in the organization.")
        parser.add_argument("--password", help=f"Password (default: ${PASSWORD_ENV}, else none until set).")
        parser.add_argument("--name", default="", help="Full name.")
        parser.add_argument("--staff", action="store_true", help="May sign in to the Django admin (curators).")
        parser.add_argument("--superuser", action="store_true", help="Every permission in the Django admin.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_by_slug(options["org"])
        email = options["email"].strip()
        password = options["password"] or os.environ.get(PASSWORD_ENV) or None
        role = options["role"]

        with service_errors(), transaction.atomic():
            user = User.objects.filter(email__iexact=email).first()
            created = user is None
            if user is None:
                user = services.user_create(
                    email=email,
                    password=password,
                    full_name=options["name"],
                    is_staff=options["staff"] or options["superuser"],
                    is_superuser=options["superuser"],
                )
            elif Membership.objects.filter(organization=organization, user=user).exists():
                raise CommandError(f"{user.email} is already a member of {organization.slug}.")
            services.membership_add(organization=organization, user=user, role=role)

        if created:
            self.stdout.write(f"Created user {user.email} ({role} of {organization.slug})")
            if not user.has_usable_password():
                self.stdout.write(
                    f"No password was given (--password or ${PASSWORD_ENV}), so {user.email} cannot sign in yet: "
                    f"set one with `python manage.py changepassword {user.email}`."
                )
        else:
            self.stdout.write(f"Added existing user {user.email} to {organization.slug} as {role}")
            ignored = [flag for flag in ("password", "name", "staff", "superuser") if options[flag]]
            if options["password"] is None and os.environ.get(PASSWORD_ENV):
                ignored.append(PASSWORD_ENV)
            if ignored:
                self.stdout.write(f"The existing account was left unchanged (ignored: {', '.join(ignored)}).")
