"""Admin base class: superusers curate everything; other staff see only rows of organizations they belong to."""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest
from django.urls import URLPattern


class SuperuserWritesMixin:
    """For global models (people, groups): only superusers add, change or delete them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


class TenantAdmin(admin.ModelAdmin):
    """Use for every TenantModel. Global rows (organization NULL) are read-only to non-superusers."""

    list_select_related = ("organization",)

    def get_list_filter(self, request: HttpRequest) -> Any:
        # The stock related filter lists every organization; offer only those present in the scoped rows.
        return [
            ("organization", admin.RelatedOnlyFieldListFilter) if entry == "organization" else entry
            for entry in super().get_list_filter(request)
        ]

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


def _superuser_only(view: Any) -> Any:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not (request.user.is_authenticated and request.user.is_superuser):
            raise PermissionDenied("The job queues span every organization: superusers only.")
        return view(request, *args, **kwargs)

    return wrapper


def restrict_rq_dashboard_to_superusers() -> None:
    """django-rq's admin dashboard shows every tenant's jobs; staff curators of one organization must not see it."""
    from django_rq.admin import QueueAdmin
    from django_rq.models import Dashboard

    class SuperuserQueueAdmin(QueueAdmin):
        def has_module_permission(self, request: HttpRequest) -> bool:
            return request.user.is_superuser

        def get_urls(self) -> list[URLPattern]:
            return [
                URLPattern(p.pattern, _superuser_only(p.callback), p.default_args, p.name) for p in super().get_urls()
            ]

    if admin.site.is_registered(Dashboard):
        admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, SuperuserQueueAdmin)
