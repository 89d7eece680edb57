"""Admin base class: superusers curate everything; other staff see only rows of organizations they belong to."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest


class TenantAdmin(admin.ModelAdmin):
    """Use for every TenantModel. Global rows (organization NULL) are read-only to non-superusers."""

    list_select_related = ("organization",)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.for_user(request.user)

    def _is_global(self, obj: Any) -> bool:
        return obj is not None and getattr(obj, "organization_id", None) is None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._is_global(obj) and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._is_global(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A staff member can only file rows under organizations they belong to.
        if db_field.name == "organization" and not request.user.is_superuser:
            from accounts.models import Organization

            kwargs["queryset"] = Organization.objects.filter(memberships__user=request.user).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
