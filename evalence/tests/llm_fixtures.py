"""pytest fixtures for the loopback LLM server (`evalence.tests.llm_server`), registered by the root conftest.

- `llm_server`: one running server, answering "ok" with the keyword judge, stopped after the test;
- `llm_server_factory`: `llm_server_factory(**options)` starts another one (a fallback chain needs several).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evalence.tests.llm_server import LLMServer


@pytest.fixture
def llm_server_factory() -> Iterator[Callable[..., LLMServer]]:
    servers: list[LLMServer] = []

    def make(**options: Any) -> LLMServer:
        server = LLMServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def llm_server(llm_server_factory: Callable[..., LLMServer]) -> LLMServer:
    return llm_server_factory()
