"""The built-in demo assistant's OpenAI-compatible API, served by Evalence itself at /demo-assistant/v1/.

No login and no CSRF: it is a public toy model holding no tenant data (its only secrets are the ones the caller
plants in the system prompt), and OpenAI clients call it without cookies."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from testing import demo_assistant

app_name = "demo_assistant"


def _json(result: tuple[int, dict[str, Any]]) -> JsonResponse:
    status, payload = result
    return JsonResponse(payload, status=status)


@csrf_exempt
def chat_completions(request: HttpRequest) -> JsonResponse:
    """`POST v1/chat/completions`; the body size is checked from Content-Length before the body is read."""
    if request.method != "POST":
        return _json(demo_assistant.handle(request.method or "", "/v1/chat/completions", b""))
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > demo_assistant.MAX_BODY_BYTES:
        return _json(demo_assistant.payload_too_large(length))
    return _json(demo_assistant.chat_completions_response(request.body))


def models(request: HttpRequest) -> JsonResponse:
    """`GET v1/models`."""
    return _json(demo_assistant.handle(request.method or "", "/v1/models", b""))


urlpatterns = [
    path("v1/chat/completions", chat_completions, name="chat_completions"),
    path("v1/models", models, name="models"),
]
