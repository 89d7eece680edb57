"""Liveness and readiness probes. Readiness checks what a request needs: the database, Redis and the job queues."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = check() or {}
        result = {"status": "ok", **detail}
    except Exception as exc:  # a probe reports failures, it never raises them
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_redis() -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _check_queues() -> dict[str, Any]:
    if settings.JOBS_BACKEND != "rq":
        return {"backend": "thread"}
    import django_rq
    from rq import Worker

    queues = {name: django_rq.get_queue(name).count for name in settings.JOB_QUEUES}
    workers = Worker.count(connection=django_rq.get_connection("default"))
    return {"backend": "rq", "queued": queues, "workers": workers}


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(_check_database)}
    if settings.REDIS_URL:
        checks["redis"] = _timed(_check_redis)
        redis_ok = checks["redis"]["status"] == "ok"
        checks["queues"] = _timed(_check_queues) if redis_ok else {"status": "error", "error": "redis unavailable"}
    else:
        checks["queues"] = _timed(_check_queues)
    healthy = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
