"""The API root: what `/api/v1/` offers, and where its documentation is."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter


class Router(DefaultRouter):
    """Routers without format-suffix routes (`.json`): one URL per resource keeps the API and its tests simple."""

    include_root_view = False
    include_format_suffixes = False


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request: Request) -> Response:
    return Response(
        {
            "name": "Evalence API",
            "version": "v1",
            "schema": request.build_absolute_uri(reverse("api-schema")),
            "docs": request.build_absolute_uri(reverse("api-docs")),
            "authentication": "Authorization: Bearer <api key> (or X-API-Key: <api key>)",
        }
    )
