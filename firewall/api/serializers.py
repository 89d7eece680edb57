"""Firewall API shapes. Input serializers only parse (the policy's limits and rules are in `firewall.services`);
output serializers describe rows and, for the evaluate endpoints, the body `EvaluationOutcome.as_dict()` gives.

Strings are strict: DRF's CharField turns `42` into `"42"`, which would evaluate something the caller never sent, so
every text field here takes JSON strings only. NUL characters and lone surrogates are refused (DRF's validators):
no real prompt holds them, PostgreSQL cannot store them, and stripping them silently would change what is judged.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import ProhibitSurrogateCharactersValidator

from evalence.errors import ValidationFailed
from firewall.choices import Decision, Direction, Feedback
from firewall.filters import SEVERITY_CHOICES, THREAT_TYPE_CHOICES
from firewall.models import Evaluation, TenantPolicy, ThreatPattern
from firewall.services import MAX_METADATA_CHARS, EvaluationRequest

MAX_MESSAGES = 500
PREVIEW_CHARS = 120
SYSTEM_ROLES = ("system", "developer")
MESSAGE_ROLES = (*SYSTEM_ROLES, "user", "assistant", "tool")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class StrictCharField(serializers.CharField):
    """A CharField that takes JSON strings only (no numbers turned into text)."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(StrictCharField):
    """Text to judge, kept exactly as sent (no trimming); empty or whitespace-only is refused."""

    default_error_messages = {"whitespace": "The text is only whitespace; send something to evaluate."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, allow_blank=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not value.strip():
            self.fail("whitespace")
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {"type": "object", "properties": {"type": {"type": "string"}, "text": {"type": "string"}}},
            },
        ]
    }
)
class MessageContentField(serializers.Field):
    """OpenAI message content: a string, or a list of parts of which the `text` ones are joined (images ignored).
    `null` (an assistant message that only calls tools) counts as empty."""

    default_error_messages = {"invalid": "A string, or a list of content parts each with `type` (and `text`)."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_null", True)
        super().__init__(
            validators=[ProhibitNullCharactersValidator(), ProhibitSurrogateCharactersValidator()], **kwargs
        )

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, ""
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if not isinstance(data, list):
            self.fail("invalid")
        texts = []
        for part in data:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                self.fail("invalid")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    self.fail("invalid")
                texts.append(part["text"])
        return "\n".join(texts)

    def to_representation(self, value: Any) -> Any:
        return value


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=MESSAGE_ROLES)
    content = MessageContentField()


@extend_schema_field(OpenApiTypes.OBJECT)
class MetadataField(serializers.DictField):
    """Free-form JSON object stored with the evaluation (`application` also fills the filterable column)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if len(repr(value)) > MAX_METADATA_CHARS:
            raise serializers.ValidationError(f"At most {MAX_METADATA_CHARS:,} characters.")
        if _holds_unstorable(value):
            raise serializers.ValidationError("NUL characters and lone surrogates are not allowed.")
        return value


def _holds_unstorable(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _UNSTORABLE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class EvaluateSerializer(serializers.Serializer):
    """One evaluate body: `text` or an OpenAI-style `messages` list (exactly one of them).

    With `messages`, the last message is evaluated: an `assistant` one as an output, any other as an input; earlier
    `user` messages are the conversation context, and `system`/`developer` messages give the `system_prompt` unless
    it is sent. A `direction` sent along must agree with the last message."""

    text = TextField(required=False)
    messages = serializers.ListField(child=MessageSerializer(), required=False, min_length=1, max_length=MAX_MESSAGES)
    direction = serializers.ChoiceField(choices=Direction.choices, default=Direction.INPUT)
    session_id = StrictCharField(required=False, default="", allow_blank=True, max_length=200)
    user_id = StrictCharField(required=False, default="", allow_blank=True, max_length=200)
    system_prompt = StrictCharField(required=False, default="", allow_blank=True, trim_whitespace=False)
    canary = StrictCharField(required=False, default="", allow_blank=True, max_length=200)
    metadata = MetadataField(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_text, has_messages = "text" in attrs, "messages" in attrs
        if has_text and has_messages:
            raise serializers.ValidationError({"text": ["Send either text or messages, not both."]})
        if not has_text and not has_messages:
            raise serializers.ValidationError(
                {"text": ["Send the text to evaluate (or an OpenAI-style messages list)."]}
            )
        if has_messages:
            attrs = self._from_messages(attrs)
        return attrs

    def _from_messages(self, attrs: dict[str, Any]) -> dict[str, Any]:
        messages = attrs.pop("messages")
        last_index = len(messages) - 1
        last = messages[last_index]
        if last["role"] in SYSTEM_ROLES:
            raise serializers.ValidationError(
                {
                    f"messages[{last_index}].role": [
                        "The last message is the one evaluated: a user, assistant or tool one."
                    ]
                }
            )
        if not last["content"].strip():
            raise serializers.ValidationError({f"messages[{last_index}].content": ["The last message is empty."]})
        direction = Direction.OUTPUT if last["role"] == "assistant" else Direction.INPUT
        if "direction" in self.initial_data and attrs["direction"] != direction:
            raise serializers.ValidationError(
                {"direction": [f"The last message ({last['role']}) makes this an {direction}; leave direction out."]}
            )
        earlier = messages[:last_index]
        if not attrs.get("system_prompt"):
            attrs["system_prompt"] = "\n".join(m["content"] for m in earlier if m["role"] in SYSTEM_ROLES)
        attrs["context"] = [m["content"] for m in earlier if m["role"] == "user" and m["content"].strip()]
        attrs["text"] = last["content"]
        attrs["direction"] = direction
        return attrs

    def to_request(self) -> EvaluationRequest:
        return EvaluationRequest(**self.validated_data)


class BatchSerializer(serializers.Serializer):
    """Documents the batch body; `parse_batch` parses it so that errors name each item (`items[3].text`)."""

    items = EvaluateSerializer(many=True)


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as flat paths: `{"messages": {0: {"role": [...]}}}` → `messages[0].role`."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                path = prefix or "non_field_errors"
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for name, messages in flatten_errors(value, path).items():
                flat.setdefault(name, []).extend(messages)
    elif isinstance(detail, list):
        if any(isinstance(item, dict | list) for item in detail):
            for index, item in enumerate(detail):
                if item:
                    for name, messages in flatten_errors(item, f"{prefix}[{index}]").items():
                        flat.setdefault(name, []).extend(messages)
        else:
            flat.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return flat


def _raise(fields: dict[str, list[str]]) -> None:
    name, messages = next(iter(fields.items()))
    prefix = "" if name == "non_field_errors" else f"{name}: "
    raise ValidationFailed(f"{prefix}{messages[0]}", fields=fields)


# The fields of the common evaluate body, each a plain string: `_plain_evaluate` reads such a body without a serializer.
_PLAIN_FIELDS = frozenset({"text", "direction", "session_id", "user_id", "canary"})
# Trimmed, and at most as long as EvaluateSerializer's fields say.
_SHORT_LIMITS = {
    name: EvaluateSerializer._declared_fields[name].max_length for name in ("session_id", "user_id", "canary")
}
_DIRECTIONS = frozenset(Direction.values)


def _plain_evaluate(data: Any) -> EvaluationRequest | None:
    """The request EvaluateSerializer would give for the common body — a `text` and optional plain string fields, all
    valid — or None, and the serializer reads it (anything else: messages, metadata, system_prompt, every error).

    Building a serializer deep-copies its declared fields, about a fifth of a millisecond per call on the firewall's
    hot path; tests check that both readings agree on every shape this one accepts.
    """
    if type(data) is not dict or not data.keys() <= _PLAIN_FIELDS:
        return None
    text = data.get("text")
    if type(text) is not str or not text.strip() or _UNSTORABLE.search(text):
        return None
    direction = data.get("direction", Direction.INPUT)
    if "direction" in data and (type(direction) is not str or direction not in _DIRECTIONS):  # null is refused too
        return None
    short: dict[str, str] = {}
    for name, limit in _SHORT_LIMITS.items():
        value = data.get(name, "")
        if type(value) is not str or _UNSTORABLE.search(value):
            return None
        value = value.strip()
        if len(value) > limit:
            return None
        short[name] = value
    return EvaluationRequest(text=text, direction=direction, **short)


def parse_evaluate(data: Any) -> EvaluationRequest:
    plain = _plain_evaluate(data)
    if plain is not None:
        return plain
    serializer = EvaluateSerializer(data=data)
    if not serializer.is_valid():
        _raise(flatten_errors(serializer.errors))
    return serializer.to_request()


def parse_batch(data: Any) -> list[EvaluationRequest]:
    """Every item is checked before anything is evaluated; every item's errors are reported at once."""
    limit = settings.FIREWALL_BATCH_MAX
    if not isinstance(data, dict):
        _raise({"non_field_errors": ['Send a JSON object: {"items": [...]}.']})
    items = data.get("items")
    if not isinstance(items, list):
        _raise({"items": ["A list of evaluate bodies."]})
    if not items:
        _raise({"items": ["The batch is empty."]})
    if len(items) > limit:
        _raise({"items": [f"At most {limit} items; this batch has {len(items)}."]})
    requests: list[EvaluationRequest] = []
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        plain = _plain_evaluate(item)
        if plain is not None:
            requests.append(plain)
            continue
        serializer = EvaluateSerializer(data=item)
        if serializer.is_valid():
            requests.append(serializer.to_request())
        else:
            errors.update(flatten_errors(serializer.errors, f"items[{index}]"))
    if errors:
        _raise(errors)
    return requests


# --- answers ------------------------------------------------------------------------------------------------------


class DetectorResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    score = serializers.FloatField()
    threat_type = serializers.ChoiceField(choices=THREAT_TYPE_CHOICES)
    severity = serializers.ChoiceField(choices=SEVERITY_CHOICES, required=False)
    evidence = serializers.ListField(child=serializers.CharField())
    rule_id = serializers.CharField(required=False)
    view = serializers.CharField(required=False, help_text="Where it matched: original, normalized or a decoding.")
    spans = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()), required=False)


class EvaluateResultSerializer(serializers.Serializer):
    """The evaluate answer (ARCHITECTURE.md "The firewall"); a throttled one adds `retry_after` and, at 429, `error`."""

    evaluation_id = serializers.UUIDField(allow_null=True)
    decision = serializers.ChoiceField(choices=Decision.choices)
    confidence = serializers.FloatField(min_value=0.0, max_value=1.0)
    threat_type = serializers.ChoiceField(choices=THREAT_TYPE_CHOICES)
    severity = serializers.ChoiceField(choices=SEVERITY_CHOICES)
    sanitized_text = serializers.CharField(allow_null=True)
    latency_ms = serializers.FloatField()
    detectors = DetectorResultSerializer(many=True)
    policy_decision = serializers.ChoiceField(
        choices=Decision.choices, help_text="What the policy decided; in monitor mode `decision` stays allowed."
    )
    reason = serializers.CharField(help_text="Why: the deciding rule, emergency_stop, rate_limit, …")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait, on a throttled result.")


class BatchResultSerializer(serializers.Serializer):
    results = EvaluateResultSerializer(many=True)


class EvaluationSerializer(serializers.ModelSerializer):
    """An evaluation in a list: the decision and where it came from; the text only as a preview."""

    threat_type = serializers.ChoiceField(choices=THREAT_TYPE_CHOICES, read_only=True)
    severity = serializers.ChoiceField(choices=SEVERITY_CHOICES, read_only=True)
    text_preview = serializers.SerializerMethodField()
    user_id = serializers.CharField(source="end_user_id", read_only=True)
    api_key = serializers.UUIDField(source="api_key_id", read_only=True, allow_null=True)
    api_key_prefix = serializers.CharField(source="api_key.prefix", read_only=True, default=None)

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "created_at",
            "direction",
            "source",
            "decision",
            "policy_decision",
            "confidence",
            "threat_type",
            "severity",
            "latency_ms",
            "text_preview",
            "text_length",
            "text_hash",
            "session_id",
            "user_id",
            "application",
            "api_key",
            "api_key_prefix",
            "feedback",
        ]
        read_only_fields = fields

    def get_text_preview(self, obj: Evaluation) -> str:
        text = obj.text
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class EvaluationDetailSerializer(EvaluationSerializer):
    """An evaluation with its text, each detector's evidence, the context it was judged in, and the feedback."""

    detectors = DetectorResultSerializer(many=True, read_only=True)
    feedback_by = serializers.EmailField(source="feedback_by.email", read_only=True, default=None)
    feedback_submission_id = serializers.SerializerMethodField(
        help_text="The prompt-bank submission the feedback went to."
    )

    class Meta(EvaluationSerializer.Meta):
        fields = [
            *EvaluationSerializer.Meta.fields,
            "text",
            "sanitized_text",
            "detectors",
            "context",
            "ip",
            "request_id",
            "detector_version",
            "feedback_note",
            "feedback_at",
            "feedback_by",
            "feedback_submission_id",
        ]
        read_only_fields = fields

    def get_feedback_submission_id(self, obj: Evaluation) -> str | None:
        return (obj.context or {}).get("feedback_submission_id")


class FeedbackSerializer(serializers.Serializer):
    feedback = serializers.ChoiceField(choices=Feedback.choices)
    note = StrictCharField(required=False, default="", allow_blank=True, max_length=2_000)


class PolicySerializer(serializers.ModelSerializer):
    """The policy as it stands. The webhook secret is write-only: only whether one is set is shown."""

    webhook_secret_set = serializers.SerializerMethodField()
    updated_by = serializers.EmailField(source="updated_by.email", read_only=True, default=None)

    class Meta:
        model = TenantPolicy
        fields = [
            "block_threshold",
            "flag_threshold",
            "actions",
            "detectors",
            "max_input_chars",
            "rate_limit_per_minute",
            "fail_mode",
            "monitor_mode",
            "context_turns",
            "webhook_url",
            "webhook_secret_set",
            "emergency_stop",
            "emergency_stop_reason",
            "emergency_stop_at",
            "version",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = fields

    def get_webhook_secret_set(self, obj: TenantPolicy) -> bool:
        return bool(obj.webhook_secret)


class PolicyUpdateSerializer(serializers.Serializer):
    """Documents PATCH policy: any of these fields; the service validates the whole policy and names bad fields."""

    block_threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    flag_threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    actions = serializers.DictField(child=serializers.CharField(), required=False, help_text="threat type → action")
    detectors = serializers.DictField(child=serializers.BooleanField(), required=False)
    max_input_chars = serializers.IntegerField(required=False)
    rate_limit_per_minute = serializers.IntegerField(required=False)
    fail_mode = serializers.CharField(required=False)
    monitor_mode = serializers.BooleanField(required=False)
    webhook_url = serializers.CharField(required=False, allow_blank=True)
    webhook_secret = serializers.CharField(required=False, allow_blank=True, write_only=True)
    context_turns = serializers.IntegerField(required=False)


class EmergencyStopSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    reason = StrictCharField(required=False, default="", allow_blank=True, max_length=500)


class ThreatPatternSerializer(serializers.ModelSerializer):
    """A blocked attack known by hash: counts across organizations and this organization's own. Never text."""

    threat_type = serializers.ChoiceField(choices=THREAT_TYPE_CHOICES, read_only=True)
    severity = serializers.ChoiceField(choices=SEVERITY_CHOICES, read_only=True)
    org_count = serializers.IntegerField(read_only=True, help_text="Times this organization was sent it.")
    org_first_seen = serializers.DateTimeField(read_only=True)
    org_last_seen = serializers.DateTimeField(read_only=True)

    class Meta:
        model = ThreatPattern
        fields = [
            "pattern_hash",
            "threat_type",
            "severity",
            "detection_count",
            "organizations_affected",
            "first_seen",
            "last_seen",
            "org_count",
            "org_first_seen",
            "org_last_seen",
        ]
        read_only_fields = fields
