"""Request-wide plumbing: request ids, API body limits and the active organization of a browser session."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from evalence.logging import request_id_var

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Read `X-Request-ID` (or make one), expose it to logs and error bodies, and send it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Not reset afterwards: Django logs the response (django.request) after the middleware chain returns, and
        # that line must carry the id too. The next request on this thread or task sets its own.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class ApiBodyLimitMiddleware:
    """Refuse an oversized API body from its Content-Length with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            limit = self.limit_for(request)
            if length > limit:
                from evalence.errors import error_response

                return error_response(
                    413, "payload_too_large", f"Request body is {length} bytes; the limit is {limit} bytes."
                )
        return self.get_response(request)

    @staticmethod
    def limit_for(request: HttpRequest) -> int:
        """File uploads (multipart, streamed to disk) to the paths in API_UPLOAD_LIMITS get their own, larger limit."""
        if request.content_type == "multipart/form-data":
            for prefix, limit in settings.API_UPLOAD_LIMITS.items():
                if request.path.startswith(prefix):
                    return limit
        return settings.API_MAX_BODY_BYTES


class ActiveOrganizationMiddleware:
    """Attach `request.organization` and `request.membership` for a signed-in browser session.

    API-key requests carry no session: the API base view sets both from the key after DRF authenticates it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from evalence.tenancy import resolve_session_membership

        membership = resolve_session_membership(request)
        request.membership = membership
        request.organization = membership.organization if membership else None
        return self.get_response(request)
