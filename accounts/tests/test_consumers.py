"""The organization events websocket: session-authenticated, and an organization only hears its own events."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client

from evalence.asgi import application
from evalence.consumers import TenantConsumer
from evalence.events import send_org_event
from evalence.routing import websocket_urlpatterns

# The consumer reads the database from another thread: the test data must be committed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _cookie_for(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def _communicator(cookie: bytes | None = None, origin: bytes = b"http://testserver") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/events/", headers=headers)


@pytest.mark.asyncio(loop_scope="function")
async def test_every_websocket_route_is_served_by_a_tenant_consumer() -> None:
    for route in websocket_urlpatterns:
        consumer = route.callback.consumer_class
        assert issubclass(consumer, TenantConsumer), f"{route.pattern} must authorize through TenantConsumer"


async def test_a_member_hears_their_organization_and_nobody_else_does(alice: Any, charlie: Any, org_a: Any) -> None:
    alice_ws = _communicator(await sync_to_async(_cookie_for)(alice))
    charlie_ws = _communicator(await sync_to_async(_cookie_for)(charlie))
    assert (await alice_ws.connect())[0]
    assert (await charlie_ws.connect())[0]

    await sync_to_async(send_org_event)(org_a.pk, "audit.verification", {"id": "v1", "status": "succeeded"})

    message = await alice_ws.receive_json_from(timeout=5)
    assert message == {"type": "audit.verification", "data": {"id": "v1", "status": "succeeded"}}
    assert await charlie_ws.receive_nothing(timeout=0.5)
    await alice_ws.disconnect()
    await charlie_ws.disconnect()


async def test_an_anonymous_socket_is_refused(db: Any) -> None:
    ws = _communicator()
    connected, code = await ws.connect()
    assert not connected
    assert code == 4403


async def test_a_socket_from_another_site_is_refused(alice: Any) -> None:
    ws = _communicator(await sync_to_async(_cookie_for)(alice), origin=b"http://evil.example")
    connected, _ = await ws.connect()
    assert not connected


async def test_the_socket_answers_pings(alice: Any) -> None:
    ws = _communicator(await sync_to_async(_cookie_for)(alice))
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    await ws.disconnect()


@pytest_asyncio.fixture(autouse=True)
async def _close_worker_thread_connections() -> Any:
    """The consumer queries from asgiref's worker thread; close that thread's connection so the test database can be
    dropped at the end of the run."""
    yield
    await sync_to_async(connections.close_all)()
