"""ASGI entry point: HTTP through Django, websockets through Channels with session authentication.

HTTP requests do not go through Django's stock `ASGIHandler`. Every view, middleware and signal receiver of this
project is synchronous, and the stock handler runs such code by hopping between the event loop and a thread created
afresh for each request — six hops or so per request (the request_started signal, the middleware chain, back to the
loop for the async-capable middleware, the view, CSRF's process_view, the response's close), each a thread wake-up
and a fight for the GIL with every other request. Under load (the firewall at 32 connections) that machinery cost
more CPU than the request itself, and a fresh thread per request also meant a fresh cache client (a new Redis
connection) per request. `SyncThreadHTTPHandler` keeps the event loop for what it is good at (reading the body,
writing the response, holding idle connections) and runs everything synchronous for a request in one hop on a
long-lived worker thread, as a WSGI server would: request_started, the middleware chain (loaded in sync mode), the
view, request_finished (which gives the database connection back to the pool).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings")
django.setup(set_prefix=False)  # set up Django before importing consumers (as get_asgi_application does)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers import base  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import HttpResponseBase  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from evalence.routing import websocket_urlpatterns  # noqa: E402

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _replay(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class SyncThreadHTTPHandler(ASGIHandler):
    """Django's ASGI handler with a request's synchronous work done in one hop on a long-lived thread.

    The threads keep their own context between requests, as a WSGI server's do: per-thread state that Django keeps in
    `asgiref.local.Local` (cache clients and their Redis connections, the URLconf) lives as long as the thread instead
    of one request. Database connections still go back to the pool at the end of each request (request_finished).
    A sync streaming response is read to the end on the request's thread (its generator may use that thread's database
    connection), as the stock handler does; an async one streams from the event loop.
    """

    def __init__(self, threads: int | None = None) -> None:
        base.BaseHandler.__init__(self)  # not ASGIHandler.__init__: its chain is the async one
        self.load_middleware(is_async=False)
        self.threads = settings.ASGI_SYNC_THREADS if threads is None else threads
        if self.threads < 1:
            raise ValueError(f"ASGI_SYNC_THREADS must be at least 1, not {self.threads}")
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._lock = threading.Lock()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Created on first use in each process (gunicorn imports the application before forking its workers)."""
        if self._executor is None or self._executor_pid != os.getpid():
            with self._lock:
                if self._executor is None or self._executor_pid != os.getpid():
                    self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="django-http")
                    self._executor_pid = os.getpid()
        return self._executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            loop = asyncio.get_running_loop()
            # run_in_executor, not to_thread: the thread's own context is kept, not the task's copied in.
            response = await loop.run_in_executor(self.executor, self.respond, scope, body_file)
            try:
                with suppress(asyncio.CancelledError):  # the client went away while the answer was sent
                    await self.send_response(response, send)
            finally:
                if response.streaming and response.is_async:  # closed once streamed (nothing here streams async)
                    await loop.run_in_executor(self.executor, response.close)
        finally:
            body_file.close()

    def respond(self, scope: Scope, body_file: Any) -> HttpResponseBase:
        """On a worker thread: everything synchronous about one request, ending with request_finished."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
        if response.streaming and response.is_async:
            return response
        try:
            if response.streaming:
                response.streaming_content = _replay(list(response.streaming_content))
        finally:
            response.close()  # request_finished: the database connection goes back to the pool
        return response


application = ProtocolTypeRouter(
    {
        "http": SyncThreadHTTPHandler(),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
