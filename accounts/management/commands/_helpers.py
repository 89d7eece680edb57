"""Shared pieces of the accounts commands: turning service errors into one-line command errors, and lookups.

Django does not list modules whose name starts with an underscore as commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from accounts.models import Organization
from evalence.errors import ApplicationError


@contextmanager
def service_errors() -> Iterator[None]:
    """Show an application error as one readable line and a non-zero exit, not a traceback."""
    try:
        yield
    except ApplicationError as exc:
        raise CommandError(exc.message) from exc


def organization_by_slug(slug: str) -> Organization:
    organization = Organization.objects.filter(slug=slug.strip()).first()
    if organization is None:
        known = ", ".join(Organization.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none yet"
        raise CommandError(f"No organization with slug '{slug}' (known: {known}); create it with create_org.")
    return organization


def scopes_argument(value: str) -> list[str]:
    """`--scopes a,b,c` as a list; validation of each scope is the service's job."""
    return [part.strip() for part in value.split(",") if part.strip()]
