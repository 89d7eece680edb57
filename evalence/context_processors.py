from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def tenancy(request: HttpRequest) -> dict[str, Any]:
    """The active organization and the user's other organizations, for the header and the switcher."""
    membership = getattr(request, "membership", None)
    user = getattr(request, "user", None)

    def memberships() -> list[Any]:
        if user is None or not user.is_authenticated:
            return []
        return list(user.memberships.select_related("organization").order_by("organization__name"))

    return {
        "active_membership": membership,
        "active_organization": getattr(request, "organization", None),
        # Lazy: a page that never shows the switcher (or an error page while the database is down) never queries.
        "user_memberships": SimpleLazyObject(memberships),
        "is_org_admin": bool(membership and membership.is_admin),
    }
