"""Tenancy, applied once: the tenant-owned base model and its scoped queryset, and the active organization.

Every tenant-owned row inherits `TenantModel`. Reads go through `Model.objects.for_org(org)`, and the base classes
that serve rows (the API base viewset, the page-view mixin, the admin mixin, websocket consumers) call it for you, so
no single view can forget it. Global rows (the shared bank, global patterns) have `organization = NULL` and are
visible to every tenant read-only through `for_org(org, include_global=True)`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.db import models
from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import Membership, Organization, User

SESSION_ORG_KEY = "evalence_active_org"


class TenantQuerySet(models.QuerySet):
    """A queryset that knows how to scope itself to one organization."""

    def for_org(self, organization: Organization | None, *, include_global: bool = False) -> TenantQuerySet:
        if organization is None:
            return self.none()
        if include_global:
            return self.filter(models.Q(organization=organization) | models.Q(organization__isnull=True))
        return self.filter(organization=organization)

    def for_user(self, user: User) -> TenantQuerySet:
        """Rows of every organization the user belongs to (the admin's view of a staff member)."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(organization__memberships__user=user).distinct()

    def global_rows(self) -> TenantQuerySet:
        return self.filter(organization__isnull=True)


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):  # type: ignore[misc]
    pass


class TenantModel(models.Model):
    """Abstract base for every tenant-owned row: a UUID key for URLs and the owning organization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TenantManager()

    # Global rows (organization NULL) are allowed only where a subclass makes the field nullable.
    allows_global_rows = False

    class Meta:
        abstract = True


def active_membership(user: Any, wanted_organization_id: Any = None) -> Membership | None:
    """The user's active membership: the organization chosen in the switcher, else their first."""
    if user is None or not user.is_authenticated:
        return None
    from accounts.models import Membership

    memberships = Membership.objects.filter(user=user).select_related("organization").order_by("created_at")
    if wanted_organization_id:
        chosen = memberships.filter(organization_id=wanted_organization_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def resolve_session_membership(request: HttpRequest) -> Membership | None:
    session = getattr(request, "session", None)
    return active_membership(getattr(request, "user", None), session.get(SESSION_ORG_KEY) if session else None)


def activate_organization(request: HttpRequest, organization: Organization) -> None:
    request.session[SESSION_ORG_KEY] = str(organization.pk)


def tenant_models() -> list[type[models.Model]]:
    """Every concrete tenant-owned model of the project (used by the cross-tenant tests and the admin)."""
    from django.apps import apps

    return [m for m in apps.get_models() if issubclass(m, TenantModel)]


def group_name(organization_id: Any, *parts: str) -> str:
    """Channel-layer group names carry the tenant, so a consumer can only join its own organization's groups."""
    suffix = ".".join(parts)
    return f"org-{organization_id}" + (f".{suffix}" if suffix else "")
