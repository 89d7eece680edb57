"""One error format for the whole API: `{"error": {"code", "message", "request_id", "timestamp"[, "fields"]}}`.

Services raise `ApplicationError` subclasses with plain arguments; the DRF exception handler and the Django error
handlers (for requests that never reach DRF: unknown URLs, CSRF failures, crashes) all render through
`error_body` (the DRF handler lives in `evalence.api.exceptions`). Pages get HTML error templates instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from evalence.logging import get_request_id

logger = logging.getLogger("evalence.errors")


class ApplicationError(Exception):
    """A failure a caller can act on. Subclasses fix the HTTP status and machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields
        if code:
            self.code = code


class ValidationFailed(ApplicationError):
    status_code = 400
    code = "validation_error"


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"


class Forbidden(ApplicationError):
    status_code = 403
    code = "permission_denied"


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(ApplicationError):
    status_code = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "request_id": get_request_id(),
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path in {"/metrics"} or request.path.startswith("/health/")


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, "payload_too_large", "Request body is too large.")
        return error_response(400, "bad_request", "The request was rejected as malformed.")
    return render(request, "errors/400.html", status=400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_response(403, "permission_denied", "You do not have permission to perform this action.")
    return render(request, "errors/403.html", status=403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_response(404, "not_found", f"No API endpoint or object at {request.path}.")
    return render(request, "errors/404.html", status=404)


def handler500(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return error_response(500, "server_error", "An unexpected error occurred; quote the request id to support.")
    return render(request, "errors/500.html", {"request_id": get_request_id()}, status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _wants_json(request):
        return error_response(403, "csrf_failed", f"CSRF check failed: {reason}")
    return render(request, "errors/403.html", {"reason": "Your form expired or came from another site."}, status=403)
