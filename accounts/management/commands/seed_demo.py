"""`manage.py seed_demo [--password ...]`: a demo organization, two people and an API key; safe to run again.

Every run leaves the same rows (no duplicates) and resets what it prints — the password and the API key's
secret — so the credentials in the closing block always work.

Other apps add their demo data with a module `<app>/seed.py` that defines `run(demo: DemoContext) -> None`. The
steps run in INSTALLED_APPS order (accounts first, then promptbank, firewall, testing, analytics, which is the
dependency order), inside one transaction, and must be idempotent themselves: look rows up before creating them.
A step may add lines to the closing block with `demo.notes.append(...)`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import services
from accounts.choices import Plan, Role, Scope
from accounts.management.commands._helpers import service_errors
from accounts.models import ApiKey, Membership, Organization, User
from evalence.jobs import wait_for_thread_jobs

DEMO_ORG_NAME = "Demo Security Team"
DEMO_ORG_SLUG = "demo"
DEMO_ADMIN_EMAIL = "demo@evalence.local"
DEMO_ANALYST_EMAIL = "analyst@evalence.local"
DEMO_KEY_NAME = "demo"
DEFAULT_PASSWORD = "evalence-demo-2026"  # noqa: S105 - public on purpose: it is the documented demo login
PASSWORD_ENV = "DEMO_PASSWORD"  # noqa: S105 - a variable name, not a password


@dataclass
class DemoContext:
    """What the accounts step made, handed to every app's seed step."""

    organization: Organization
    admin: User
    analyst: User
    password: str
    api_key: ApiKey
    api_key_secret: str
    say: Callable[[str], None]
    notes: list[str] = field(default_factory=list)


def app_seed_steps() -> list[tuple[str, Callable[[DemoContext], None]]]:
    """`run` of every project app's `seed` module, in INSTALLED_APPS order (third-party apps are not searched)."""
    steps = []
    base_dir = Path(settings.BASE_DIR).resolve()
    for config in apps.get_app_configs():
        if Path(config.path).resolve().parent != base_dir:
            continue
        module_name = f"{config.name}.seed"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        run = getattr(module, "run", None)
        if not callable(run):
            raise CommandError(f"{module_name} has no run(demo) function")
        steps.append((config.label, run))
    return steps


def _ensure_user(*, email: str, full_name: str, password: str, superuser: bool) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        return services.user_create(
            email=email, password=password, full_name=full_name, is_staff=superuser, is_superuser=superuser
        )
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise CommandError(f"The demo password is too weak: {' '.join(exc.messages)}") from None
    user.set_password(password)
    user.is_active = True
    user.is_staff = user.is_superuser = superuser
    user.save(update_fields=["password", "is_active", "is_staff", "is_superuser"])
    return user


def _ensure_member(*, organization: Organization, user: User, role: str) -> None:
    membership = Membership.objects.for_org(organization).filter(user=user).first()
    if membership is None:
        services.membership_add(organization=organization, user=user, role=role)
    elif membership.role != role:
        services.membership_change_role(membership=membership, role=role, actor=None)


def _reset_key_secret(key: ApiKey) -> str:
    """Give the existing demo key a new secret (same row), so re-runs do not pile up revoked keys."""
    if key.expires_at is not None:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=None)
    return services.api_key_reset_secret(
        api_key=key, actor=None, scopes=list(Scope.values), reason="seed_demo issued a new secret"
    )[1]


def _ensure_api_key(organization: Organization, actor: User) -> tuple[ApiKey, str]:
    key = (
        ApiKey.objects.for_org(organization)
        .filter(name=DEMO_KEY_NAME, revoked_at__isnull=True)
        .order_by("created_at")
        .first()
    )
    if key is None:
        return services.api_key_create(
            organization=organization, name=DEMO_KEY_NAME, scopes=list(Scope.values), actor=actor
        )
    return key, _reset_key_secret(key)


def seed_accounts(*, password: str, say: Callable[[str], None]) -> DemoContext:
    organization = Organization.objects.filter(slug=DEMO_ORG_SLUG).first()
    if organization is None:
        organization = services.organization_create(name=DEMO_ORG_NAME, slug=DEMO_ORG_SLUG, plan=Plan.TEAM)
    admin = _ensure_user(email=DEMO_ADMIN_EMAIL, full_name="Demo Admin", password=password, superuser=True)
    analyst = _ensure_user(email=DEMO_ANALYST_EMAIL, full_name="Demo Analyst", password=password, superuser=False)
    _ensure_member(organization=organization, user=admin, role=Role.ADMIN)
    _ensure_member(organization=organization, user=analyst, role=Role.ANALYST)
    key, secret = _ensure_api_key(organization, admin)
    say(f"accounts: organization '{organization.slug}', 2 members, API key {key.prefix}…")
    return DemoContext(
        organization=organization,
        admin=admin,
        analyst=analyst,
        password=password,
        api_key=key,
        api_key_secret=secret,
        say=say,
    )


class Command(BaseCommand):
    help = "Create (or refresh) the demo organization, its users and API key, and every app's demo data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help=f"Password of the demo users (default: ${PASSWORD_ENV}, else '{DEFAULT_PASSWORD}').",
        )
        parser.add_argument(
            "--accounts-only",
            action="store_true",
            help="Only the organization, its people and its API key (new password and key secret); no sample data.",
        )

    def handle(self, *args: Any, password: str | None = None, **options: Any) -> None:
        password = password or os.environ.get(PASSWORD_ENV) or DEFAULT_PASSWORD
        if password == DEFAULT_PASSWORD and not settings.DEBUG and not getattr(settings, "TESTING", False):
            raise CommandError(
                f"The default demo password is public; with DEBUG=false pass --password or set {PASSWORD_ENV}."
            )

        with service_errors(), transaction.atomic():
            demo = seed_accounts(password=password, say=self.stdout.write)
            for label, run in app_seed_steps():
                if label == "accounts" or options.get("accounts_only"):
                    continue
                run(demo)
                self.stdout.write(f"{label}: seeded")
        # Steps may have started background jobs; let in-process ones finish before the process exits.
        wait_for_thread_jobs()
        self._print_summary(demo)

    def _print_summary(self, demo: DemoContext) -> None:
        url = settings.SITE_URL
        rule = "=" * 78
        lines = [
            "",
            rule,
            "  Evalence demo is ready",
            "",
            f"  URL        {url}",
            f"  Sign in    {demo.admin.email} / {demo.password}   (admin of '{demo.organization.name}')",
            f"             {demo.analyst.email} / {demo.password}   (analyst)",
            f"  API key    {demo.api_key_secret}",
            "",
            "  Try the API:",
            f'    curl -H "Authorization: Bearer {demo.api_key_secret}" {url}/api/v1/accounts/organization/',
            f"  API docs   {url}/api/docs/",
        ]
        if demo.notes:
            lines += ["", *(f"  {note}" for note in demo.notes)]
        lines += [rule, ""]
        self.stdout.write("\n".join(lines))
