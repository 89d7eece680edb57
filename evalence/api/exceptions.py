"""DRF's EXCEPTION_HANDLER: every API error, expected or not, in the standard error body."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from evalence.errors import ApplicationError, RateLimited, error_body

_DRF_CODES = {
    drf.ParseError: "parse_error",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
}


def _flatten_detail(detail: Any) -> Any:
    """DRF error details are ErrorDetail strings nested in lists and dicts; make them plain JSON."""
    if isinstance(detail, dict):
        return {str(k): _flatten_detail(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(v) for v in detail]
    return str(detail)


def _validation_fields(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return _flatten_detail(detail)
    return {"non_field_errors": _flatten_detail(detail if isinstance(detail, list) else [detail])}


def _summary(fields: dict[str, Any]) -> str:
    for name, messages in fields.items():
        first = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(first, dict):
            return f"Invalid input in '{name}'."
        prefix = "" if name == "non_field_errors" else f"{name}: "
        return f"{prefix}{first}"
    return "Invalid input."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        set_rollback()
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(error_body("payload_too_large", "Request body is too large."), status=413)
    elif isinstance(exc, SuspiciousOperation):
        set_rollback()
        return Response(error_body("bad_request", "The request was rejected as malformed."), status=400)

    if not isinstance(exc, drf.APIException):
        return None  # Let Django's handler500 render it (and log it with the traceback).

    set_rollback()
    if isinstance(exc, drf.ValidationError):
        fields = _validation_fields(exc.detail)
        body = error_body("validation_error", _summary(fields), fields)
    else:
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None) or str(
            getattr(exc, "default_code", "error")
        )
        message = str(exc.detail) if not isinstance(exc.detail, dict | list) else str(_flatten_detail(exc.detail))
        body = error_body(code, message)
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    return Response(body, status=exc.status_code, headers=headers)
