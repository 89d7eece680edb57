"""The product's sections still served by a landing page (`evalence.pages.SectionLandingView`), until each section's
issue lands. Every section has its own pages now (the overview: `analytics.views`; the prompt bank, the firewall and
testing: their apps' views), so the list is empty; a new section adds its entry here until its pages exist."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    url_name: str
    summary: str
    coming: tuple[str, ...]


SECTIONS: tuple[Section, ...] = ()

BY_KEY = {section.key: section for section in SECTIONS}
