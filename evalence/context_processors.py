from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def tenancy(request: HttpRequest) -> dict[str, Any]:
    """The active organization and the user's other organizations, for the header and the switcher."""
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)
    memberships = []
    if user is not None and user.is_authenticated:
        memberships = list(user.memberships.select_related("organization").order_by("organization__name"))
    return {
        "active_membership": membership,
        "active_organization": getattr(request, "organization", None),
        "user_memberships": memberships,
        "is_org_admin": bool(membership and membership.is_admin),
    }
