"""The product's sections still served by a landing page, until each section's issue lands (the prompt bank and the
firewall have their own pages: `promptbank.views`, `firewall.views`)."""

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
    Section(
        "testing",
        "Red-team testing",
        "testing:index",
        "Run suites of attacks from the bank against your targets and watch the findings arrive live.",
        ("Targets and suites", "Resumable sessions with live progress", "Reports in HTML, CSV, JSON, JUnit and SARIF"),
    ),
)

BY_KEY = {section.key: section for section in SECTIONS}
