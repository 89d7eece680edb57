"""The bank's filters, shared by the API's `?field=` parameters, the bank browser page and exports."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from promptbank.choices import Category, Label, Severity, SubmissionStatus
from promptbank.models import Prompt, Submission


class PromptFilter(django_filters.FilterSet):
    category = django_filters.MultipleChoiceFilter(choices=Category.choices)
    label = django_filters.ChoiceFilter(choices=Label.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    tag = django_filters.CharFilter(method="filter_tag", label="Tag")
    source = django_filters.CharFilter(field_name="source", lookup_expr="iexact")
    language = django_filters.CharFilter(field_name="language", lookup_expr="iexact")
    q = django_filters.CharFilter(method="filter_text", label="Text contains")
    active = django_filters.BooleanFilter(field_name="is_active", label="Active")
    scope = django_filters.ChoiceFilter(
        choices=[("global", "Global bank"), ("private", "Organization's own")], method="filter_scope", label="Scope"
    )
    mutator = django_filters.CharFilter(field_name="mutator", lookup_expr="iexact")
    variant_of = django_filters.UUIDFilter(field_name="variant_of_id")

    class Meta:
        model = Prompt
        fields = ["category", "label", "severity", "tag", "source", "language", "q", "active", "scope", "mutator"]

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Tags are a JSON list; match the quoted element so "dan" does not match "dance" (works on SQLite and PG).
        tags = [t.strip().lower() for t in value.split(",") if t.strip()]
        for tag in tags:
            queryset = queryset.filter(tags__icontains=f'"{tag}"')
        return queryset

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(text__icontains=value) | Q(source_ref__icontains=value))

    def filter_scope(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "global":
            return queryset.filter(organization__isnull=True)
        if value == "private":
            return queryset.filter(organization__isnull=False)
        return queryset


class SubmissionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SubmissionStatus.choices)
    source = django_filters.CharFilter(field_name="source", lookup_expr="iexact")
    category = django_filters.ChoiceFilter(choices=Category.choices)

    class Meta:
        model = Submission
        fields = ["status", "source", "category"]
