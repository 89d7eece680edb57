"""gunicorn settings shared by `make serve`, the Dockerfile and the Kubernetes manifests.

Command-line flags (`-b`, `-w`, `-k`) override these; the environment variables give the same defaults everywhere.
"""

from __future__ import annotations

import os
from typing import Any

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# One per core. Each worker runs every request's Django code on its own thread and lends it a PostgreSQL connection
# from a per-process pool: workers x DATABASE_POOL_MAX_SIZE (+ job processes) must stay under max_connections.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# Long enough for a large batch evaluation or report export; the firewall's own budget is milliseconds.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak in any dependency cannot grow without bound. Not too often: a new
# worker reloads the firewall's classifier and similarity index, and a worker answers 1,000+ requests a second.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# No access log by default (GUNICORN_CMD_ARGS="--access-logfile -" turns one on); errors go to stderr, where the
# application's JSON log lines go too.
errorlog = "-"
# No gunicornc control socket: it lives in $HOME (read-only in the container) and one path is shared by every
# instance of a user, so two servers on one machine would fight over it.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """Multiprocess Prometheus metrics: drop a dead worker's live gauges so /metrics does not count it."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
