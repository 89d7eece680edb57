"""`/metrics` in Prometheus text format (django-prometheus), optionally behind a bearer token."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView

from evalence.errors import error_response


def metrics(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_TOKEN:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(presented, settings.METRICS_TOKEN):
            return error_response(401, "not_authenticated", "Metrics need the bearer token set in METRICS_TOKEN.")
    return ExportToDjangoView(request)
