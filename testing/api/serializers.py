"""Testing API shapes. Input serializers parse types; the rules (kinds, URLs, templates, bank filters) are in
`testing.services`. Secrets are write-only: a target answers with `has_api_key` and a masked hint, never the key."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from evalence.crypto import mask
from firewall.api.serializers import StrictCharField
from promptbank.choices import ATTACK_CATEGORIES, Severity
from promptbank.mutators import MUTATORS
from testing.choices import OVERRIDE_VERDICTS, TargetKind
from testing.models import Target, TestResult, TestSession, TestSuite
from testing.runner import progress_payload


class StrictListField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", StrictCharField(max_length=100))
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)


class TargetSerializer(serializers.ModelSerializer):
    has_api_key = serializers.SerializerMethodField()
    api_key_hint = serializers.SerializerMethodField()
    header_names = serializers.SerializerMethodField()

    class Meta:
        model = Target
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "base_url",
            "model",
            "has_api_key",
            "api_key_hint",
            "method",
            "header_names",
            "body_template",
            "response_path",
            "extra_params",
            "system_prompt",
            "canary",
            "timeout_s",
            "concurrency",
            "requests_per_minute",
            "max_retries",
            "is_active",
            "last_checked_at",
            "last_check_ok",
            "last_check_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_api_key(self, obj: Target) -> bool:
        return bool(obj.api_key)

    def get_api_key_hint(self, obj: Target) -> str:
        return mask(obj.api_key) if obj.api_key else ""

    def get_header_names(self, obj: Target) -> list[str]:
        import json

        try:
            return sorted(json.loads(obj.headers)) if obj.headers else []
        except (ValueError, TypeError):
            return []


class TargetWriteSerializer(serializers.Serializer):
    """POST (all required fields) or PATCH (any). `api_key` and `headers` are write-only; blank keeps them."""

    name = StrictCharField(max_length=100)
    kind = serializers.ChoiceField(choices=TargetKind.choices, required=False)
    description = StrictCharField(required=False, allow_blank=True)
    base_url = StrictCharField(required=False, allow_blank=True, max_length=500)
    model = StrictCharField(required=False, allow_blank=True, max_length=200)
    api_key = StrictCharField(required=False, allow_blank=True, write_only=True, max_length=2000)
    method = StrictCharField(required=False, max_length=8)
    headers = serializers.DictField(child=StrictCharField(allow_blank=True), required=False, write_only=True)
    body_template = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    response_path = StrictCharField(required=False, allow_blank=True, max_length=200)
    extra_params = serializers.DictField(required=False)
    system_prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    canary = StrictCharField(required=False, allow_blank=True, max_length=100)
    timeout_s = serializers.FloatField(required=False, min_value=0.1, max_value=600)
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=256)
    requests_per_minute = serializers.IntegerField(required=False, min_value=0, max_value=100_000)
    max_retries = serializers.IntegerField(required=False, min_value=0, max_value=10)
    is_active = serializers.BooleanField(required=False)


class SuiteSerializer(serializers.ModelSerializer):
    categories = serializers.ListField(
        child=serializers.ChoiceField(choices=ATTACK_CATEGORIES), required=False, max_length=20
    )
    severities = serializers.ListField(child=serializers.ChoiceField(choices=Severity.choices), required=False)
    tags = StrictListField()
    sources = StrictListField()
    mutators = serializers.ListField(child=serializers.ChoiceField(choices=list(MUTATORS)), required=False)
    release = serializers.UUIDField(source="release_id", required=False, allow_null=True)
    llm_judge = serializers.UUIDField(source="llm_judge_id", required=False, allow_null=True)

    class Meta:
        model = TestSuite
        fields = [
            "id",
            "name",
            "description",
            "categories",
            "severities",
            "tags",
            "sources",
            "language",
            "release",
            "max_prompts",
            "random_seed",
            "mutators",
            "include_original",
            "generations",
            "baseline_prompts",
            "llm_judge",
            "is_builtin",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "is_builtin", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness per organization is the service's (a clear 400)


class SessionCreateSerializer(serializers.Serializer):
    target = serializers.UUIDField()
    suite = serializers.UUIDField()
    name = StrictCharField(required=False, allow_blank=True, max_length=200)


class SessionSerializer(serializers.ModelSerializer):
    target_name = serializers.SerializerMethodField()
    suite_name = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    duration_s = serializers.FloatField(read_only=True)

    class Meta:
        model = TestSession
        fields = [
            "id",
            "name",
            "status",
            "target",
            "target_name",
            "suite",
            "suite_name",
            "total_samples",
            "completed_samples",
            "counts",
            "progress",
            "summary",
            "config",
            "attempts",
            "cancel_requested",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration_s",
        ]
        read_only_fields = fields

    def get_target_name(self, obj: TestSession) -> str:
        return (obj.config.get("target") or {}).get("name") or (obj.target.name if obj.target else "")

    def get_suite_name(self, obj: TestSession) -> str:
        return (obj.config.get("suite") or {}).get("name") or (obj.suite.name if obj.suite else "")

    def get_progress(self, obj: TestSession) -> dict[str, Any]:
        payload = progress_payload(obj)
        return {k: payload[k] for k in ("attack_success_rate", "counts", "rate_per_s", "eta_s")}


class ResultSerializer(serializers.ModelSerializer):
    overridden = serializers.BooleanField(source="is_overridden", read_only=True)
    overridden_by = serializers.SerializerMethodField()

    class Meta:
        model = TestResult
        fields = [
            "id",
            "session",
            "item_key",
            "sequence",
            "kind",
            "prompt",
            "prompt_version",
            "prompt_text",
            "original_text",
            "category",
            "severity",
            "mutator",
            "generation",
            "verdict",
            "judge_verdict",
            "reason",
            "evidence",
            "judges",
            "response",
            "http_status",
            "latency_ms",
            "attempts",
            "error",
            "completed_at",
            "overridden",
            "overridden_by",
            "overridden_at",
            "override_reason",
            "submission",
        ]
        read_only_fields = fields

    def get_overridden_by(self, obj: TestResult) -> str | None:
        return obj.overridden_by.email if obj.overridden_by_id else None


class OverrideSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=OVERRIDE_VERDICTS)
    reason = StrictCharField(max_length=2000)
