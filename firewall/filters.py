"""The evaluations filter, shared by the API's `?field=` parameters and the evaluations page."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from firewall.choices import Decision, Direction, EvaluationSource, Feedback
from firewall.engine.types import Severity, ThreatType
from firewall.models import Evaluation

# Straight from the engine's enums (the values stored in the rows), also used by the API serializers.
THREAT_TYPE_CHOICES = [(t.value, t.value.replace("_", " ").capitalize()) for t in ThreatType]
SEVERITY_CHOICES = [(s.value, s.value.capitalize()) for s in Severity]
FEEDBACK_CHOICES = [*Feedback.choices, ("any", "Any feedback"), ("none", "No feedback")]


class EvaluationFilter(django_filters.FilterSet):
    """Repeat a multiple-choice parameter to widen it (`?decision=blocked&decision=sanitized`). `since` and `until`
    are ISO 8601 datetimes bounding `created_at` (`since` inclusive, `until` exclusive); `api_key` is a key's id.
    Another organization's key id simply matches nothing here: the list is already scoped to the caller."""

    decision = django_filters.MultipleChoiceFilter(choices=Decision.choices)
    threat_type = django_filters.MultipleChoiceFilter(choices=THREAT_TYPE_CHOICES)
    severity = django_filters.MultipleChoiceFilter(choices=SEVERITY_CHOICES)
    direction = django_filters.ChoiceFilter(choices=Direction.choices)
    source = django_filters.MultipleChoiceFilter(choices=EvaluationSource.choices)
    session_id = django_filters.CharFilter(field_name="session_id")
    user_id = django_filters.CharFilter(field_name="end_user_id")
    application = django_filters.CharFilter(field_name="application")
    text_hash = django_filters.CharFilter(field_name="text_hash", label="Text hash (a threat pattern's hash)")
    api_key = django_filters.UUIDFilter(field_name="api_key_id")
    decided_by = django_filters.CharFilter(field_name="decided_by", label="Deciding detector")
    feedback = django_filters.ChoiceFilter(choices=FEEDBACK_CHOICES, method="filter_feedback")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Evaluation
        fields = [
            "decision",
            "threat_type",
            "severity",
            "direction",
            "source",
            "session_id",
            "user_id",
            "application",
            "text_hash",
            "api_key",
            "decided_by",
            "feedback",
            "since",
            "until",
        ]

    def filter_feedback(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "any":
            return queryset.exclude(feedback="")
        if value == "none":
            return queryset.filter(feedback="")
        return queryset.filter(feedback=value)
