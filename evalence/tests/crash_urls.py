"""The project's URLs plus endpoints that fail on purpose, for the error-format tests."""

from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from evalence.urls import handler400, handler403, handler404, handler500  # noqa: F401  (same error pages)
from evalence.urls import urlpatterns as project_urlpatterns


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request):
    raise RuntimeError("boom: an unexpected failure inside a view")


def crash_page(request):
    raise RuntimeError("boom: an unexpected failure inside a page")


urlpatterns = [
    path("api/v1/_crash/", crash),
    path("_crash/", crash_page),
    *project_urlpatterns,
]
