"""A JSON parser that refuses what the standard one lets through: invalid UTF-8, NaN, and absurd nesting."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any, limit: int) -> int:
    """Depth of nested containers, iteratively (a 100,000-level body must not hit the recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw:
            raise ParseError("Request body is empty; send a JSON object.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Request body is not valid UTF-8 (byte {exc.start}).") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise ParseError("JSON is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
        limit = settings.API_MAX_JSON_DEPTH
        if _depth(data, limit) > limit:
            raise ParseError(f"JSON is nested deeper than {limit} levels.")
        return data
