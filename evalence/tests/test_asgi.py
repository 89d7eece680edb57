"""The HTTP side of `evalence.asgi.application`, served by a real uvicorn on a loopback port.

Each request's synchronous work (signals, middleware, view) runs in one hop on a few long-lived threads; what a
client sees is Django's usual answer, streamed responses included, and every request ends with request_finished on
the thread that served it (which hands its database connection back to the pool).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvicorn
from django.conf import settings
from django.core import signals
from django.db import connections

from evalence.asgi import SyncThreadHTTPHandler, application
from firewall.models import Evaluation
from promptbank.tests.factories import PromptFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server() -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def fetch(url: str, *, data: dict | None = None, secret: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_health_answers_through_the_whole_middleware_chain(server: str) -> None:
    status, headers, body = fetch(f"{server}/health/live")

    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["X-Request-ID"] and headers["X-Frame-Options"] == "DENY"
    assert "no-store" in headers["Cache-Control"]


def test_an_evaluation_is_answered_and_stored_before_the_answer_arrives(server: str, key_a: Any) -> None:
    _, secret = key_a

    status, _, body = fetch(f"{server}/api/v1/firewall/evaluate", data={"text": "hello there"}, secret=secret)

    assert status == 200
    answer = json.loads(body)
    stored = Evaluation.objects.get(pk=answer["evaluation_id"])
    assert (stored.decision, stored.text) == (answer["decision"], "hello there")


def test_errors_keep_the_standard_body(server: str, key_a: Any) -> None:
    _, secret = key_a

    status, _, body = fetch(f"{server}/api/v1/firewall/evaluate", data={"text": "   "}, secret=secret)
    unauthenticated, _, _ = fetch(f"{server}/api/v1/firewall/evaluate", data={"text": "hi"})

    assert status == 400 and set(json.loads(body)["error"]) >= {"code", "message", "request_id", "timestamp"}
    assert unauthenticated == 401


def test_a_streamed_export_arrives_whole(server: str, key_a: Any, org_a: Any) -> None:
    _, secret = key_a
    texts = {PromptFactory(organization=org_a).text for _ in range(5)}

    status, headers, body = fetch(f"{server}/api/v1/promptbank/export/?format=jsonl&source=", secret=secret)

    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    exported = {json.loads(line)["text"] for line in body.decode().splitlines()}
    assert texts <= exported


def test_requests_run_on_a_few_long_lived_threads_that_finish_what_they_start(server: str, key_a: Any) -> None:
    _, secret = key_a
    events: list[tuple[str, str, bool]] = []
    lock = threading.Lock()

    def started(**kwargs: Any) -> None:
        with lock:
            events.append(("started", threading.current_thread().name, False))

    def finished(**kwargs: Any) -> None:
        # Connected after Django's own receivers: the connection was handed back (closed) before this runs.
        closed = connections["default"].connection is None
        with lock:
            events.append(("finished", threading.current_thread().name, closed))

    postgresql = connections["default"].vendor == "postgresql"

    one_writer = threading.Lock()  # SQLite's shared in-memory test database fails a second writer at once

    def call(i: int) -> int:
        if postgresql:
            return fetch(f"{server}/api/v1/firewall/evaluate", data={"text": f"message {i}"}, secret=secret)[0]
        if i % 6 == 0:
            with one_writer:
                return fetch(f"{server}/api/v1/firewall/evaluate", data={"text": f"message {i}"}, secret=secret)[0]
        return fetch(f"{server}/health/live")[0]

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        with ThreadPoolExecutor(12 if postgresql else 6) as clients:
            answers = list(clients.map(call, range(36)))
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

    assert answers == [200] * 36
    threads = {name for _, name, _ in events}
    assert all(name.startswith("django-http") for name in threads)
    assert len(threads) <= settings.ASGI_SYNC_THREADS
    per_thread = Counter((kind, name) for kind, name, _ in events)
    assert all(per_thread[("started", name)] == per_thread[("finished", name)] for name in threads)
    if postgresql:  # SQLite's in-memory test database is never closed
        assert all(closed for kind, _, closed in events if kind == "finished")


def test_it_refuses_a_thread_count_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SyncThreadHTTPHandler(threads=0)
