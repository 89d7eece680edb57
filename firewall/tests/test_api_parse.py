"""The evaluate body's quick reading (`_plain_evaluate`) agrees with EvaluateSerializer on every body it accepts, and
leaves every other body (and every error) to the serializer."""

from __future__ import annotations

from typing import Any

import pytest

from evalence.errors import ValidationFailed
from firewall.api.serializers import EvaluateSerializer, _plain_evaluate, parse_evaluate

ACCEPTED = [
    {"text": "What is a good recipe for lasagna?"},
    {"text": "  kept exactly as sent, spaces and all \n"},
    {"text": "x", "direction": "output"},
    {"text": "x", "direction": "input", "session_id": "  chat-42  ", "user_id": "u-1", "canary": "CANARY-1"},
    {"text": "x", "session_id": "", "user_id": "   ", "canary": ""},
    {"text": "x", "session_id": "s" * 200},
    {"text": "naïve café, ünïcödé ✓ 🙂"},
]
DECLINED = [
    # Shapes the quick reading does not take: the serializer reads them (some valid, some not).
    {"text": "x", "metadata": {"application": "chat"}},
    {"text": "x", "system_prompt": "You are a bot."},
    {"messages": [{"role": "user", "content": "hi"}]},
    {"text": "x", "unknown": 1},
    "a string, not an object",
    ["a", "list"],
    None,
    # Invalid bodies: every error comes from the serializer, with its messages.
    {},
    {"text": ""},
    {"text": "   \n\t"},
    {"text": 42},
    {"text": None},
    {"text": "nul\x00inside"},
    {"text": "lone \ud800 surrogate"},
    {"text": "x", "direction": "sideways"},
    {"text": "x", "direction": ["input"]},
    {"text": "x", "direction": None},
    {"text": "x", "session_id": 7},
    {"text": "x", "session_id": "s" * 201},
    {"text": "x", "user_id": "nul\x00"},
    {"text": "x", "canary": None},
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_the_quick_reading_gives_what_the_serializer_gives(body: dict[str, Any]) -> None:
    quick = _plain_evaluate(body)
    assert quick is not None
    serializer = EvaluateSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    assert quick == serializer.to_request()
    assert parse_evaluate(body) == quick


@pytest.mark.parametrize("body", DECLINED)
def test_other_bodies_and_every_invalid_one_go_to_the_serializer(body: Any) -> None:
    assert _plain_evaluate(body) is None
    serializer = EvaluateSerializer(data=body)
    if serializer.is_valid():
        assert parse_evaluate(body) == serializer.to_request()
    else:
        with pytest.raises(ValidationFailed):
            parse_evaluate(body)


def test_a_batch_mixes_both_readings_in_order_and_names_a_bad_item() -> None:
    from firewall.api.serializers import parse_batch

    items = [
        {"text": "first"},
        {"messages": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "second"}]},
        {"text": "third", "session_id": " s-3 "},
    ]
    parsed = parse_batch({"items": items})
    assert [r.text for r in parsed] == ["first", "second", "third"]
    assert parsed[1].system_prompt == "Be nice." and parsed[2].session_id == "s-3"
    with pytest.raises(ValidationFailed) as caught:
        parse_batch({"items": [*items, {"text": "   "}]})
    assert "items[3].text" in caught.value.fields
