"""FilterSets shared by the API's `?field=` parameters and the pages' filter forms."""

import django_filters

from accounts.choices import AuditAction
from accounts.models import AuditLog


class AuditLogFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains", label="Actor")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields = ["action", "actor", "since", "until"]
