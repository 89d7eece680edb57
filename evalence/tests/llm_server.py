"""A small OpenAI-compatible HTTP server on loopback for tests: a real socket, a real HTTP exchange, and a switch that
makes it fail in the ways real endpoints fail.

    server = LLMServer().start()          # 127.0.0.1, a free port, a daemon thread
    server.base_url                       # "http://127.0.0.1:<port>/v1"
    server.behaviour = "fail"             # ok | fail | rate_limited | slow | garbage | hang | close
    server.handler = lambda request: "I can't help with that."   # what "ok" answers
    server.requests                       # what it received: path, headers, JSON body
    server.stop()

Endpoints: `POST /v1/chat/completions` and `GET /v1/models`. The default handler plays an LLM judge: it answers a JSON
verdict from simple keyword rules over the last user message, so firewall tests get a real verdict without a model.
A handler may return a string (the assistant's message), a dict (the whole JSON answer) or `(status, dict)`.

Behaviours: `ok` answers; `fail` is HTTP 500; `rate_limited` is 429 with `Retry-After`; `slow` sleeps `slow_s`
seconds and then answers; `garbage` answers 200 with `garbage_body` (not JSON by default; set it to a JSON of the
wrong shape as needed); `hang` reads the request and never answers (until the client gives up or the server stops);
`close` drops the connection without a response. `behaviours_by_model` overrides the behaviour per requested model.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = ("ok", "fail", "rate_limited", "slow", "garbage", "hang", "close")

Handler = Callable[["RecordedRequest"], "str | dict[str, Any] | tuple[int, dict[str, Any]]"]

# Keyword rules of the default judge: (pattern, threat type). Deliberately simple: tests need a predictable verdict.
JUDGE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ignore (all |any )?(previous|prior|above) instructions", re.I), "prompt_injection"),
    (re.compile(r"\b(jailbreak|DAN|do anything now|developer mode)\b", re.I), "jailbreak"),
    (re.compile(r"\b(system prompt|hidden instructions)\b", re.I), "data_extraction"),
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None  # the parsed JSON body, or None
    raw: bytes = b""
    client_port: int = 0  # the same port on two requests: the client kept its connection alive

    @property
    def model(self) -> str:
        return self.body.get("model", "") if isinstance(self.body, dict) else ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""


def judge_by_keywords(request: RecordedRequest) -> str:
    """The default handler: a judge verdict (JSON text) from keyword rules over the last user message."""
    text = request.last_user_message
    for pattern, threat_type in JUDGE_RULES:
        if pattern.search(text):
            return json.dumps(
                {"attack": True, "score": 0.97, "threat_type": threat_type, "reason": f"matches {pattern.pattern!r}"}
            )
    return json.dumps({"attack": False, "score": 0.02, "threat_type": "none", "reason": "no attack found"})


def chat_completion(content: str, model: str = "test-model") -> dict[str, Any]:
    """An OpenAI chat-completions answer carrying `content`."""
    return {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


@dataclass
class LLMServer:
    """The server; its switches may be changed from the test while it runs."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port chosen by the OS
    behaviour: str = "ok"
    behaviours_by_model: dict[str, str] = field(default_factory=dict)
    handler: Handler = judge_by_keywords
    slow_s: float = 1.0
    retry_after_s: int = 1
    garbage_body: bytes = b"<html><body>502 Bad Gateway (not JSON)</body></html>"
    models: list[str] = field(default_factory=lambda: ["test-model"])
    api_key: str = ""  # when set, requests without `Authorization: Bearer <api_key>` get 401

    def __post_init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> LLMServer:
        server = self

        class RequestHandler(_RequestHandler):
            owner = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), RequestHandler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name=f"llm-server-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and sleeping requests
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style API root, as a client's `base_url`."""
        return f"{self.url}/v1"

    # --- assertions ---

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def reset(self) -> None:
        """Forget recorded requests and go back to answering normally."""
        with self._lock:
            self.requests.clear()
        self.behaviour = "ok"
        self.behaviours_by_model.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _behaviour_for(self, request: RecordedRequest) -> str:
        behaviour = self.behaviours_by_model.get(request.model, self.behaviour)
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; expected one of {', '.join(BEHAVIOURS)}")
        return behaviour


class _RequestHandler(BaseHTTPRequestHandler):
    owner: LLMServer
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints and pooled clients expect
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for the client's delayed
    # ACK (about 40 ms) on a kept-alive connection, which real servers do not make their clients wait.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output

    def do_GET(self) -> None:
        request = self._read()
        if not self._authorized(request):
            return
        if request.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "evalence-tests"} for m in self.owner.models]
            self._json(200, {"object": "list", "data": data})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        request = self._read()
        if not self._authorized(request):
            return
        if not request.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        if not isinstance(request.body, dict):
            self._json(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request_error"}})
            return
        behaviour = self.owner._behaviour_for(request)
        if behaviour == "fail":
            self._json(500, {"error": {"message": "internal error (told to fail)", "type": "server_error"}})
        elif behaviour == "rate_limited":
            self._json(
                429,
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                headers={"Retry-After": str(self.owner.retry_after_s)},
            )
        elif behaviour == "garbage":
            self._send(200, self.owner.garbage_body, "application/json")
        elif behaviour == "hang":
            self.owner._stopping.wait()
            self.close_connection = True
        elif behaviour == "close":
            self.close_connection = True  # no response: the client sees the connection drop
        else:
            if behaviour == "slow" and self.owner._stopping.wait(self.owner.slow_s):
                return
            self._answer(request)

    def _answer(self, request: RecordedRequest) -> None:
        result = self.owner.handler(request)
        if isinstance(result, tuple):
            self._json(*result)
        elif isinstance(result, dict):
            self._json(200, result)
        else:
            self._json(200, chat_completion(str(result), request.model or "test-model"))

    def _read(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            self.command, self.path, dict(self.headers.items()), body, raw, self.client_address[1]
        )
        self.owner._record(request)
        return request

    def _authorized(self, request: RecordedRequest) -> bool:
        if not self.owner.api_key or request.headers.get("Authorization") == f"Bearer {self.owner.api_key}":
            return True
        self._json(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
        return False

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
