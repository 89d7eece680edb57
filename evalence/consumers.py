"""Websocket base consumer: authenticated by the session, scoped to the active organization, no business logic."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from evalence.tenancy import SESSION_ORG_KEY, active_membership, group_name


class TenantConsumer(AsyncJsonWebsocketConsumer):
    """Accept only a signed-in member; subclasses pick the groups (inside the organization) in `get_groups`."""

    organization_id: str | None = None

    async def connect(self) -> None:
        membership = await database_sync_to_async(self._membership)()
        if membership is None:
            await self.close(code=4403)
            return
        self.membership = membership
        self.organization_id = str(membership.organization_id)
        allowed = await database_sync_to_async(self.authorize)(membership)
        if not allowed:
            await self.close(code=4404)
            return
        self.joined = await self.get_groups()
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    def _membership(self) -> Any:
        session = self.scope.get("session") or {}
        return active_membership(self.scope.get("user"), session.get(SESSION_ORG_KEY))

    def authorize(self, membership: Any) -> bool:
        """Check the object in the URL belongs to the membership's organization (override; sync, may query)."""
        return True

    async def get_groups(self) -> list[str]:
        return [group_name(self.organization_id)]

    async def org_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": message["event"], "data": message["data"]})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
