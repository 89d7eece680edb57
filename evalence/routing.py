"""Websocket routes of every app, gathered in one list for the ASGI router."""

from accounts.routing import websocket_urlpatterns as accounts_ws
from promptbank.routing import websocket_urlpatterns as promptbank_ws
from testing.routing import websocket_urlpatterns as testing_ws

websocket_urlpatterns = [*accounts_ws, *promptbank_ws, *testing_ws]
