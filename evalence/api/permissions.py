"""Who may do what through the API: API keys by scope, browser sessions by role, always inside one organization."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.choices import Role, Scope


def required_scope(view: Any, request: Request) -> str | None:
    """The API-key scope an action needs. Safe methods read; writes need the view's `write_scope` (None: keys can't)."""
    per_action = getattr(view, "action_scopes", {}) or {}
    action = getattr(view, "action", None)
    if action in per_action:
        return per_action[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_scope", Scope.READ)
    return getattr(view, "write_scope", None)


def required_role(view: Any, request: Request) -> str | None:
    """The least role a browser user needs. Safe methods need `read_role`; writes `write_role` (None: refused)."""
    per_action = getattr(view, "action_roles", {}) or {}
    action = getattr(view, "action", None)
    if action in per_action:
        return per_action[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_role", Role.VIEWER)
    return getattr(view, "write_role", Role.ANALYST)


class TenantPermission(BasePermission):
    """Authenticated, inside an organization, and allowed by scope (keys) or role (users)."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        from accounts.models import ApiKey

        if isinstance(request.auth, ApiKey):
            scope = required_scope(view, request)
            if scope is None:
                self.message = "API keys cannot perform this action; use a signed-in administrator."
                return False
            if not request.auth.has_scope(scope):
                self.message = f"This API key lacks the '{scope}' scope."
                return False
            return True
        user = request.user
        if not user or not user.is_authenticated:
            return False
        membership = getattr(request, "membership", None)
        if membership is None:
            self.message = "You are not a member of any organization."
            return False
        role = required_role(view, request)
        if role is None:
            self.message = "This action is not available."
            return False
        if not membership.has_role(role):
            self.message = f"This action needs the {role} role."
            return False
        return True
