"""Websocket routes of every app, gathered in one list for the ASGI router."""

from accounts.routing import websocket_urlpatterns as accounts_ws

websocket_urlpatterns = [*accounts_ws]
