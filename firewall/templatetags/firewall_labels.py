"""Labels for the firewall's vocabulary in templates that hold a raw value, not a model row (the playground's
verdict, a detector report): `{% load firewall_labels %}{{ verdict.threat_type|threat_label }}` → "Prompt injection"."""

from __future__ import annotations

from django import template

from firewall.choices import ThreatType

register = template.Library()


@register.filter
def threat_label(value: object) -> str:
    """The human label of a threat type value; an unknown value is shown as it is rather than hidden."""
    try:
        return str(ThreatType(str(value)).label)
    except ValueError:
        return str(value)
