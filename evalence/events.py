"""Live events to browsers: sent only after the transaction commits, to a group that carries the tenant."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from evalence.tenancy import group_name

logger = logging.getLogger("evalence.events")


def send_org_event(organization_id: Any, event_type: str, payload: dict[str, Any], *parts: str) -> None:
    """Push `{"type": event_type, "data": payload}` to the organization's group (or a sub-group) after commit."""
    group = group_name(organization_id, *parts)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, {"type": "org.event", "event": event_type, "data": payload})
        except Exception:  # a live update must never fail the work that produced it
            logger.warning("could not deliver live event %s to %s", event_type, group, exc_info=True)

    transaction.on_commit(send)
