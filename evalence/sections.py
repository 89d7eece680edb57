"""The product's sections still served by a landing page, until each section's issue lands (the prompt bank, the
firewall and testing have their own pages: `promptbank.views`, `firewall.views`, `testing.views`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    url_name: str
    summary: str
    coming: tuple[str, ...]


SECTIONS = (
    Section(
        "analytics",
        "Overview",
        "analytics:overview",
        "Whether your LLM applications are under attack and whether they are getting safer.",
        (
            "Firewall traffic over time, stacked by decision",
            "Threats by type and severity, and latency percentiles",
            "Attack success rate by category for every target",
        ),
    ),
)

BY_KEY = {section.key: section for section in SECTIONS}
