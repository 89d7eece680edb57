"""The firewall's Prometheus metrics, served on `/metrics` with django-prometheus's own.

`make serve` runs several worker processes with PROMETHEUS_MULTIPROC_DIR set, and /metrics then adds up every
worker's files: counters and histograms sum; the breaker gauge takes the highest value among live workers (a breaker is
per process, so `circuit_breaker_state{state="open"} 1` means "open in at least one worker").

Labels: `tenant_id` is the organization's id; `model` is the detector that decided — "local" for the local engine,
"model:<name>" for a remote judge. Collectors are created once per process: importing this module again (a reload, a
second import path) finds the registered ones instead of failing on duplicates.

Circuit breakers report themselves: importing this module subscribes to every breaker `breaker_for()` creates.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from firewall.engine import breaker as breakers
from firewall.engine.breaker import BreakerState

DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def _collector(cls: type, name: str, documentation: str, labelnames: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """The registered collector called `name`, created on first use."""
    existing = REGISTRY._names_to_collectors.get(name)  # prometheus_client has no public lookup
    if existing is not None:
        return existing
    return cls(name, documentation, labelnames, **kwargs)


detection_requests = _collector(
    Counter,
    "detection_requests_total",
    "Firewall evaluations by tenant, deciding detector and result (the decision).",
    ("tenant_id", "model", "result"),
)
detection_duration = _collector(
    Histogram,
    "detection_duration_seconds",
    "Time to evaluate one text, by tenant and deciding detector.",
    ("tenant_id", "model"),
    buckets=DURATION_BUCKETS,
)
detection_confidence = _collector(
    Histogram, "detection_confidence", "Confidence of firewall decisions (0 to 1).", buckets=CONFIDENCE_BUCKETS
)
breaker_state = _collector(
    Gauge,
    "circuit_breaker_state",
    "1 for the current state of a remote model detector's circuit breaker, 0 for the other states.",
    ("model", "state"),
    multiprocess_mode="livemax",
)
breaker_failures = _collector(
    Counter,
    "circuit_breaker_failures_total",
    "Failed calls to a remote model detector (timeouts, errors, unreadable answers).",
    ("model",),
)
tenant_requests = _collector(
    Counter, "tenant_requests_total", "Firewall requests per tenant, throttled ones included.", ("tenant_id",)
)


def record_evaluation(tenant_id: str, model: str, result: str, duration_s: float, confidence: float) -> None:
    """One evaluation: its decision (`result`), how long it took and how confident it was."""
    tenant = str(tenant_id)
    detection_requests.labels(tenant_id=tenant, model=model, result=result).inc()
    detection_duration.labels(tenant_id=tenant, model=model).observe(max(duration_s, 0.0))
    detection_confidence.observe(min(max(confidence, 0.0), 1.0))


def record_tenant_request(tenant_id: str) -> None:
    tenant_requests.labels(tenant_id=str(tenant_id)).inc()


def record_breaker_state(model: str, state: str) -> None:
    """Set the breaker's gauge: 1 for `state`, 0 for the others, so a query never sees two states at once."""
    for candidate in BreakerState:
        breaker_state.labels(model=model, state=candidate.value).set(1 if candidate.value == state else 0)


def record_breaker_failure(model: str) -> None:
    breaker_failures.labels(model=model).inc()


def _on_breaker_change(name: str, old: BreakerState | None, new: BreakerState) -> None:
    record_breaker_state(name, new.value)


breakers.subscribe("firewall.metrics", on_change=_on_breaker_change, on_failure=record_breaker_failure)
