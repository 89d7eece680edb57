"""The landing page of a section whose features have not landed yet: what it is for and how to get there now."""

from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from evalence.sections import BY_KEY
from evalence.views import OrgPageMixin


class SectionLandingView(OrgPageMixin, TemplateView):
    template_name = "section_landing.html"
    section_key = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["section"] = BY_KEY[self.section_key]
        context["nav_active"] = self.section_key
        return context
