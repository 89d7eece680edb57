"""The API base classes. Tenancy is applied here, once: every row a viewset serves comes from `for_org()`."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.views import APIView

from evalence.tenancy import TenantModel


def bind_organization(request: Request) -> None:
    """Set `request.organization` / `request.membership` from the API key, or keep the session's."""
    from accounts.models import ApiKey

    django_request = request._request
    if isinstance(request.auth, ApiKey):
        organization, membership = request.auth.organization, None
    else:
        organization = getattr(django_request, "organization", None)
        membership = getattr(django_request, "membership", None)
    for target in (request, django_request):
        target.organization = organization
        target.membership = membership


class TenantAPIView(APIView):
    """A workflow endpoint inside one organization (no model of its own): use `request.organization`."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticate, check permissions, throttle
        if request.organization is None:
            raise PermissionDenied("No active organization.")

    def perform_authentication(self, request: Request) -> None:
        super().perform_authentication(request)
        bind_organization(request)


class TenantViewSetMixin:
    """Scopes `queryset` to the request's organization. A subclass cannot serve an unscoped row by accident:
    `get_queryset` always ends in `for_org`, and a model that is not tenant-owned is refused outright."""

    queryset: models.QuerySet
    include_global_rows = False
    lookup_field = "pk"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if request.organization is None:
            raise PermissionDenied("No active organization.")

    def perform_authentication(self, request: Request) -> None:
        super().perform_authentication(request)  # type: ignore[misc]
        bind_organization(request)

    def get_base_queryset(self) -> models.QuerySet:
        """Subclasses narrow or annotate here; scoping is added after, in `get_queryset`."""
        return self.queryset.all()

    def get_queryset(self) -> models.QuerySet:
        model = self.queryset.model
        if not issubclass(model, TenantModel):
            raise TypeError(f"{type(self).__name__} serves {model.__name__}, which is not a TenantModel")
        qs = self.get_base_queryset()
        return qs.for_org(self.request.organization, include_global=self.include_global_rows)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()  # type: ignore[misc]
        context["organization"] = getattr(self.request, "organization", None)
        return context


class TenantReadOnlyViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    """Plain curated CRUD. Writes go through services: override perform_create/update/destroy to call them."""


class TenantGenericViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    pass


__all__ = [
    "TenantAPIView",
    "TenantGenericViewSet",
    "TenantModelViewSet",
    "TenantReadOnlyViewSet",
    "TenantViewSetMixin",
    "bind_organization",
]
