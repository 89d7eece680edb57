"""Live progress of one test session for its page: authorized through the same scoping as the page.

On connect the consumer sends the session's current progress at once (a `testing.progress` message), so a page that
reconnects after a dropped socket catches up without a reload; then it forwards the runner's throttled events.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from evalence.consumers import TenantConsumer
from evalence.tenancy import group_name
from testing.models import TestSession
from testing.runner import EVENT_PROGRESS, progress_payload


class SessionProgressConsumer(TenantConsumer):
    """Joins `org-<id>.testing-session.<session id>`; another organization's session closes the socket with 4404."""

    def session_id(self) -> str:
        return str(self.scope["url_route"]["kwargs"]["pk"])

    def authorize(self, membership: Any) -> bool:
        return TestSession.objects.for_org(membership.organization).filter(pk=self.session_id()).exists()

    async def get_groups(self) -> list[str]:
        return [group_name(self.organization_id, "testing-session", self.session_id())]

    async def connect(self) -> None:
        await super().connect()
        if getattr(self, "joined", None):
            snapshot = await database_sync_to_async(self._snapshot)()
            if snapshot is not None:
                await self.send_json({"type": EVENT_PROGRESS, "data": snapshot})

    def _snapshot(self) -> dict[str, Any] | None:
        session = TestSession.objects.for_org(self.membership.organization).filter(pk=self.session_id()).first()
        return progress_payload(session) if session is not None else None
