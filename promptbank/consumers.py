"""Live counts of one ingestion run for its page: authorized through the same scoping as the page, then forwarded."""

from __future__ import annotations

from typing import Any

from evalence.consumers import TenantConsumer
from evalence.tenancy import group_name
from promptbank.models import IngestionRun


class IngestionRunConsumer(TenantConsumer):
    """Joins `org-<id>.ingestion.<run id>`, where the import job sends its `ingestion.progress` events; a run of
    another organization (or none) closes the socket with 4404."""

    def run_id(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["pk"])

    def authorize(self, membership: Any) -> bool:
        return IngestionRun.objects.for_org(membership.organization).filter(pk=self.run_id()).exists()

    async def get_groups(self) -> list[str]:
        return [group_name(self.organization_id, "ingestion", self.run_id())]
