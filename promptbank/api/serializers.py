"""Prompt bank API shapes: output serializers for rows, input serializers for each workflow (they only parse; the
rules are in `promptbank.services` and the pipeline).

People's emails are shown on an organization's own rows only: global rows are written by the platform's curators,
whose addresses are none of a tenant's business.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Organization
from promptbank.choices import Category, IngestionFormat, Label, Mutator, ReleaseBump, Severity
from promptbank.models import (
    BankRelease,
    IngestionRun,
    LearningEvent,
    LearningPolicy,
    Prompt,
    PromptStats,
    PromptVersion,
    Submission,
)

SHORT_TEXT_CHARS = 120
# A detail answer lists at most this many variants and near duplicates; `?variant_of=<id>` lists them all.
RELATED_LIMIT = 100


def _short(text: str) -> str:
    return text if len(text) <= SHORT_TEXT_CHARS else text[: SHORT_TEXT_CHARS - 1] + "…"


def _email_unless_global(row: Any, user: Any) -> str | None:
    if user is None or row.organization_id is None:
        return None
    return user.email


def _scope(row: Any) -> str:
    return "global" if row.organization_id is None else "private"


# --- prompts ------------------------------------------------------------------------------------------------------


class PromptSerializer(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField(help_text="`global` (the shared bank, read-only) or `private`.")
    author = serializers.SerializerMethodField()

    class Meta:
        model = Prompt
        fields = [
            "id",
            "text",
            "label",
            "category",
            "category_confidence",
            "subcategory",
            "attack_type",
            "severity",
            "tags",
            "language",
            "source",
            "source_ref",
            "license",
            "version",
            "is_active",
            "quality_score",
            "variant_of",
            "mutator",
            "near_duplicate_of",
            "near_duplicate_similarity",
            "scope",
            "author",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_scope(self, obj: Prompt) -> str:
        return _scope(obj)

    def get_author(self, obj: Prompt) -> str | None:
        return _email_unless_global(obj, obj.author)


class PromptCreatedSerializer(PromptSerializer):
    """A prompt just written, with what the pipeline made of it (the views add `status`; this describes it)."""

    status = serializers.ChoiceField(
        choices=["accepted", "near_duplicate", "duplicate"],
        read_only=True,
        help_text="`duplicate` only for variants: the existing prompt is returned.",
    )

    class Meta(PromptSerializer.Meta):
        fields = [*PromptSerializer.Meta.fields, "status"]
        read_only_fields = fields


class PromptVersionSerializer(serializers.ModelSerializer):
    changed_by = serializers.SerializerMethodField()

    class Meta:
        model = PromptVersion
        fields = ["version", "text", "fields", "changed_by", "created_at", "change_note"]
        read_only_fields = fields

    def get_changed_by(self, obj: PromptVersion) -> str | None:
        return _email_unless_global(obj, obj.changed_by)


class PromptStatsSerializer(serializers.ModelSerializer):
    detection_rate = serializers.FloatField(read_only=True, allow_null=True)
    attack_success_rate = serializers.FloatField(read_only=True, allow_null=True)
    false_positive_rate = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = PromptStats
        fields = [
            "times_used",
            "firewall_evaluations",
            "firewall_detections",
            "test_runs",
            "attack_successes",
            "false_positives",
            "detection_rate",
            "attack_success_rate",
            "false_positive_rate",
            "last_used_at",
        ]
        read_only_fields = fields


class PromptBriefSerializer(serializers.ModelSerializer):
    """A related prompt in a detail answer: enough to recognise it and follow its id."""

    text = serializers.SerializerMethodField()
    scope = serializers.SerializerMethodField()

    class Meta:
        model = Prompt
        fields = ["id", "text", "mutator", "near_duplicate_similarity", "scope", "is_active"]
        read_only_fields = fields

    def get_text(self, obj: Prompt) -> str:
        return _short(obj.text)

    def get_scope(self, obj: Prompt) -> str:
        return _scope(obj)


class PromptDetailSerializer(PromptSerializer):
    """A prompt with its history, the caller's statistics, and its visible variants and near duplicates.

    Everything related is read through the caller's organization (`context["organization"]`): variants of a global
    prompt live in many tenants' banks, and only the caller's own (and global ones) may show.
    """

    versions = serializers.SerializerMethodField()
    stats = serializers.SerializerMethodField()
    variants = serializers.SerializerMethodField()
    near_duplicates = serializers.SerializerMethodField(
        help_text="Prompts stored as near duplicates of this one (see `near_duplicate_of` for the other direction)."
    )

    class Meta(PromptSerializer.Meta):
        fields = [*PromptSerializer.Meta.fields, "versions", "stats", "variants", "near_duplicates"]
        read_only_fields = fields

    def _visible(self) -> Any:
        organization: Organization | None = self.context.get("organization")
        return Prompt.objects.for_org(organization, include_global=True)

    @extend_schema_field(PromptVersionSerializer(many=True))
    def get_versions(self, obj: Prompt) -> list[dict[str, Any]]:
        versions = obj.versions.select_related("changed_by").order_by("-version")
        return PromptVersionSerializer(versions, many=True).data

    @extend_schema_field(PromptStatsSerializer(allow_null=True))
    def get_stats(self, obj: Prompt) -> dict[str, Any] | None:
        organization = self.context.get("organization")
        stats = PromptStats.objects.filter(organization=organization, prompt=obj).first() if organization else None
        return None if stats is None else PromptStatsSerializer(stats).data

    @extend_schema_field(PromptBriefSerializer(many=True))
    def get_variants(self, obj: Prompt) -> list[dict[str, Any]]:
        rows = self._visible().filter(variant_of=obj).order_by("mutator", "created_at")[:RELATED_LIMIT]
        return PromptBriefSerializer(rows, many=True).data

    @extend_schema_field(PromptBriefSerializer(many=True))
    def get_near_duplicates(self, obj: Prompt) -> list[dict[str, Any]]:
        rows = self._visible().filter(near_duplicate_of=obj).order_by("-near_duplicate_similarity")[:RELATED_LIMIT]
        return PromptBriefSerializer(rows, many=True).data


class _TagsField(serializers.ListField):
    child = serializers.CharField(max_length=64)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=50, **kwargs)


class PromptCreateSerializer(serializers.Serializer):
    """A prompt written by hand. The pipeline validates the text (1 to 20,000 characters after normalization),
    fills a missing category and severity, tags and scores it."""

    text = serializers.CharField(trim_whitespace=False)
    label = serializers.ChoiceField(choices=Label.choices)
    category = serializers.ChoiceField(choices=Category.choices, required=False, allow_blank=True)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False, allow_blank=True)
    tags = _TagsField(required=False)
    subcategory = serializers.CharField(max_length=64, required=False, allow_blank=True)
    attack_type = serializers.CharField(max_length=64, required=False, allow_blank=True)
    language = serializers.CharField(max_length=16, required=False, allow_blank=True)
    source = serializers.CharField(max_length=64, required=False)
    source_ref = serializers.CharField(max_length=500, required=False, allow_blank=True)
    license = serializers.CharField(max_length=64, required=False, allow_blank=True)


class PromptUpdateSerializer(serializers.Serializer):
    """The versioned fields a curator may change; every accepted change is a new version."""

    text = serializers.CharField(trim_whitespace=False, required=False)
    label = serializers.ChoiceField(choices=Label.choices, required=False)
    category = serializers.ChoiceField(choices=Category.choices, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    tags = _TagsField(required=False)
    subcategory = serializers.CharField(max_length=64, required=False, allow_blank=True)
    attack_type = serializers.CharField(max_length=64, required=False, allow_blank=True)
    language = serializers.CharField(max_length=16, required=False, allow_blank=True)
    source = serializers.CharField(max_length=64, required=False)
    source_ref = serializers.CharField(max_length=500, required=False, allow_blank=True)
    license = serializers.CharField(max_length=64, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    change_note = serializers.CharField(max_length=500, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not {k for k in attrs if k != "change_note"}:
            raise serializers.ValidationError("Nothing to change: send at least one field of the prompt.")
        return attrs


class VariantsCreateSerializer(serializers.Serializer):
    mutators = serializers.ListField(
        child=serializers.ChoiceField(choices=Mutator.choices), allow_empty=False, max_length=len(Mutator.choices)
    )

    def validate_mutators(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # each mutator once, in the order given


class VariantsCreatedSerializer(serializers.Serializer):
    variants = PromptCreatedSerializer(many=True)


# --- imports ------------------------------------------------------------------------------------------------------


class ImportCreateSerializer(serializers.Serializer):
    """Either a `file` (multipart) or `records` (JSON), never both. Each record is checked by the pipeline, which
    reports a bad one by its line (its position in `records`, from 1) rather than refusing the whole request."""

    file = serializers.FileField(required=False, allow_empty_file=False)
    records = serializers.ListField(child=serializers.JSONField(), required=False, allow_empty=False)
    format = serializers.ChoiceField(
        choices=IngestionFormat.choices, required=False, help_text="Of the file; guessed from its name when absent."
    )
    source = serializers.CharField(
        max_length=64, required=False, help_text="The `source` of records that do not name one (default `api`)."
    )
    license = serializers.CharField(max_length=64, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_file, has_records = "file" in attrs, "records" in attrs
        if has_file == has_records:
            raise serializers.ValidationError(
                "Send either a 'file' (multipart/form-data) or 'records' (a JSON list), not both or neither."
            )
        if has_records and attrs.get("format") not in (None, IngestionFormat.JSON):
            raise serializers.ValidationError({"format": ["JSON records need no format (or 'json')."]})
        return attrs


class IngestionRunSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = IngestionRun
        fields = [
            "id",
            "status",
            "channel",
            "format",
            "source_name",
            "license",
            "filename",
            "counts",
            "received",
            "accepted",
            "duplicates",
            "near_duplicates",
            "rejected",
            "lines_done",
            "errors",
            "errors_total",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts(self, obj: IngestionRun) -> dict[str, int]:
        return obj.counts()

    def get_created_by(self, obj: IngestionRun) -> str | None:
        return _email_unless_global(obj, obj.created_by)


class ImportStartedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    url = serializers.URLField(help_text="Poll this for counts and line errors.")


# --- submissions --------------------------------------------------------------------------------------------------


class SubmissionSerializer(serializers.ModelSerializer):
    submitter = serializers.EmailField(source="submitter.email", read_only=True, default=None)
    submitter_key = serializers.CharField(source="submitter_key.prefix", read_only=True, default=None)
    reviewer = serializers.EmailField(source="reviewer.email", read_only=True, default=None)

    class Meta:
        model = Submission
        fields = [
            "id",
            "text",
            "label",
            "category",
            "severity",
            "tags",
            "source",
            "source_ref",
            "notes",
            "occurrences",
            "metadata",
            "status",
            "submitter",
            "submitter_key",
            "reviewer",
            "reviewed_at",
            "reason",
            "prompt",
            "created_at",
        ]
        read_only_fields = fields


class SubmissionCreateSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    label = serializers.ChoiceField(choices=Label.choices, default=Label.ATTACK)
    category = serializers.ChoiceField(choices=Category.choices, required=False, allow_blank=True)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False, allow_blank=True)
    tags = _TagsField(required=False)
    source = serializers.CharField(max_length=64, required=False, help_text="Default `user` (`api` for API keys).")
    source_ref = serializers.CharField(max_length=500, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    metadata = serializers.DictField(required=False)


class SubmissionAcceptSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class SubmissionRejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why, for the submitter.")


# --- releases -----------------------------------------------------------------------------------------------------


class ReleaseSerializer(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = BankRelease
        fields = [
            "id",
            "version",
            "major",
            "minor",
            "patch",
            "notes",
            "scope",
            "is_active",
            "activated_at",
            "prompt_count",
            "attack_count",
            "benign_count",
            "created_by",
            "metrics",
            "created_at",
        ]
        read_only_fields = fields

    def get_scope(self, obj: BankRelease) -> str:
        return _scope(obj)

    def get_created_by(self, obj: BankRelease) -> str | None:
        return _email_unless_global(obj, obj.created_by)


class ReleaseCreateSerializer(serializers.Serializer):
    bump = serializers.ChoiceField(choices=ReleaseBump.choices)
    notes = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    activate = serializers.BooleanField(default=True)


class _KeywordFieldsMixin:
    """`from` is a Python keyword: a field declared as `from_` is named `from` on the wire."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()  # type: ignore[misc]
        return {name.removesuffix("_"): field for name, field in fields.items()}


class ReleaseCompareQuerySerializer(_KeywordFieldsMixin, serializers.Serializer):
    from_ = serializers.UUIDField(help_text="The older release's id.")
    to = serializers.UUIDField(help_text="The newer release's id.")


class ReleaseBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = BankRelease
        fields = ["id", "version", "is_active"]
        read_only_fields = fields


class ReleaseCompareSerializer(_KeywordFieldsMixin, serializers.Serializer):
    from_ = ReleaseBriefSerializer()
    to = ReleaseBriefSerializer()
    added = serializers.ListField(child=serializers.DictField())
    removed = serializers.ListField(child=serializers.DictField())
    changed = serializers.ListField(child=serializers.DictField())
    counts = serializers.DictField(child=serializers.IntegerField())


# --- learning events ----------------------------------------------------------------------------------------------


class LearningEventSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="event_type", read_only=True)

    class Meta:
        model = LearningEvent
        fields = ["id", "type", "source_type", "source_id", "action", "result", "prompt", "created_at"]
        read_only_fields = fields


# --- nearest known attacks ----------------------------------------------------------------------------------------


class NearestQuerySerializer(serializers.Serializer):
    """A text to compare with the bank and the threat patterns (`promptbank.nearest.check_query` has the rules)."""

    text = serializers.CharField(trim_whitespace=False, help_text="Up to 20,000 characters.")
    limit = serializers.IntegerField(required=False, default=10, min_value=1, max_value=50)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and "text" in data and not isinstance(data["text"], str):
            raise serializers.ValidationError({"text": ["Must be a string."]})
        return super().to_internal_value(data)


class NearestMatchSerializer(serializers.Serializer):
    """A prompt (`category`, `text`) or a threat pattern (`threat_type`, `pattern_hash` and counts; never text)."""

    kind = serializers.ChoiceField(choices=["prompt", "pattern"])
    id = serializers.CharField()
    score = serializers.FloatField(
        help_text="Similarity from 0 to 1 (exact for prompts, a MinHash estimate for patterns)."
    )
    category = serializers.CharField(required=False)
    text = serializers.CharField(required=False)
    threat_type = serializers.CharField(required=False)
    pattern_hash = serializers.CharField(required=False)
    detection_count = serializers.IntegerField(required=False)
    organizations_affected = serializers.IntegerField(required=False)
    first_seen = serializers.DateTimeField(required=False)
    last_seen = serializers.DateTimeField(required=False)


class NearestResultSerializer(serializers.Serializer):
    results = NearestMatchSerializer(many=True)


class LearningPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = LearningPolicy
        fields = [
            "auto_accept_findings",
            "auto_accept_false_positives",
            "harvest_blocked",
            "harvest_min_confidence",
            "harvested_until",
            "updated_at",
        ]
        read_only_fields = fields


class LearningPolicyUpdateSerializer(serializers.Serializer):
    """For the schema only: the view hands the raw JSON to the service, which type-checks without coercing."""

    auto_accept_findings = serializers.BooleanField(required=False)
    auto_accept_false_positives = serializers.BooleanField(required=False)
    harvest_blocked = serializers.BooleanField(required=False)
    harvest_min_confidence = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
