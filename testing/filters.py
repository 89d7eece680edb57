"""Filters of the sessions and results lists, shared by the API's `?field=` parameters and the pages."""

from __future__ import annotations

import django_filters

from promptbank.choices import Category, Severity
from testing.choices import ResultKind, SessionStatus, Verdict
from testing.models import TestResult, TestSession

ORIGINAL_MUTATOR = "original"


class SessionFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=SessionStatus.choices)
    target = django_filters.UUIDFilter(field_name="target_id")
    suite = django_filters.UUIDFilter(field_name="suite_id")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = TestSession
        fields = ["status", "target", "suite", "since", "until"]


class ResultFilter(django_filters.FilterSet):
    """Repeat a multiple-choice parameter to widen it (`?verdict=succeeded&verdict=error`)."""

    verdict = django_filters.MultipleChoiceFilter(choices=Verdict.choices)
    category = django_filters.MultipleChoiceFilter(choices=Category.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    kind = django_filters.ChoiceFilter(choices=ResultKind.choices)
    # `?mutator=original` selects the unmutated prompts (stored with a blank mutator, which a filter cannot name).
    mutator = django_filters.CharFilter(method="filter_mutator")
    overridden = django_filters.BooleanFilter(field_name="overridden_at", lookup_expr="isnull", exclude=True)
    q = django_filters.CharFilter(method="filter_text", label="Text in the prompt sent or the response")

    class Meta:
        model = TestResult
        fields = ["verdict", "category", "severity", "kind", "mutator", "overridden", "q"]

    def filter_mutator(self, queryset, name, value):
        return queryset.filter(mutator="" if value == ORIGINAL_MUTATOR else value)

    def filter_text(self, queryset, name, value):
        from django.db.models import Q

        value = value.strip()[:200]
        if not value:
            return queryset
        return queryset.filter(Q(prompt_text__icontains=value) | Q(response__icontains=value))
