"""The firewall's metrics as Prometheus scrapes them from /metrics, in one process and added up over several."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from firewall import metrics
from firewall.engine import breaker as breakers

ROOT = Path(__file__).resolve().parents[2]


def scrape() -> str:
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample line (labels in any order), or None when it is not there."""
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    return None


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Any:
    breakers.forget_breakers()
    yield
    breakers.forget_breakers()


@pytest.mark.django_db
def test_evaluations_show_on_metrics_by_tenant_model_and_result() -> None:
    before = scrape()
    base = sample(before, "detection_requests_total", tenant_id="t-metrics", model="local", result="blocked") or 0.0
    count_before = sample(before, "detection_confidence_count") or 0.0

    metrics.record_evaluation("t-metrics", "local", "blocked", 0.0015, 0.93)
    metrics.record_evaluation("t-metrics", "local", "blocked", 0.0004, 0.99)
    metrics.record_evaluation("t-metrics", "model:judge", "allowed", 0.4, 0.1)
    metrics.record_tenant_request("t-metrics")

    text = scrape()
    assert sample(text, "detection_requests_total", tenant_id="t-metrics", model="local", result="blocked") == base + 2
    assert sample(text, "detection_requests_total", tenant_id="t-metrics", model="model:judge", result="allowed") >= 1
    # Sub-millisecond buckets exist: the local engine's time is measured in tenths of a millisecond.
    assert (
        sample(text, "detection_duration_seconds_bucket", tenant_id="t-metrics", model="local", le="0.0005") or 0
    ) >= 1
    assert sample(text, "detection_duration_seconds_bucket", tenant_id="t-metrics", model="local", le="0.002") >= 2
    assert sample(text, "detection_duration_seconds_count", tenant_id="t-metrics", model="model:judge") >= 1
    assert sample(text, "detection_confidence_count") == count_before + 3
    assert sample(text, "detection_confidence_bucket", le="0.1") is not None
    assert sample(text, "tenant_requests_total", tenant_id="t-metrics") >= 1


@pytest.mark.django_db
def test_a_breaker_reports_its_state_and_failures_on_metrics() -> None:
    breaker = breakers.breaker_for("dm-metrics", 2, 30.0, name="model:metrics-judge")
    text = scrape()
    assert sample(text, "circuit_breaker_state", model="model:metrics-judge", state="closed") == 1
    assert sample(text, "circuit_breaker_state", model="model:metrics-judge", state="open") == 0

    failures_before = sample(text, "circuit_breaker_failures_total", model="model:metrics-judge") or 0.0
    breaker.record_failure()
    breaker.record_failure()
    text = scrape()
    assert sample(text, "circuit_breaker_state", model="model:metrics-judge", state="open") == 1
    assert sample(text, "circuit_breaker_state", model="model:metrics-judge", state="closed") == 0
    assert sample(text, "circuit_breaker_state", model="model:metrics-judge", state="half_open") == 0
    assert sample(text, "circuit_breaker_failures_total", model="model:metrics-judge") == failures_before + 2


def test_the_gauge_never_shows_two_states_at_once() -> None:
    metrics.record_breaker_state("model:gauge", "half_open")
    metrics.record_breaker_state("model:gauge", "closed")
    states = {s: metrics.breaker_state.labels(model="model:gauge", state=s)._value.get() for s in breakers.BreakerState}
    assert states == {"closed": 1, "open": 0, "half_open": 0}


def test_importing_the_module_again_reuses_the_registered_metrics() -> None:
    counter = metrics.detection_requests
    reloaded = importlib.reload(metrics)
    assert reloaded.detection_requests is counter
    reloaded.record_evaluation("t-reload", "local", "allowed", 0.001, 0.0)
    reloaded.record_breaker_failure("model:reload")


# Run in separate processes: each records, then a scrape adds up their files as /metrics does under `make serve`.
RECORD = """
import sys
from firewall import metrics
metrics.record_evaluation("t-multi", "local", "blocked", 0.001, 0.9)
metrics.record_tenant_request("t-multi")
metrics.record_breaker_state("model:multi", sys.argv[1])
"""
SCRAPE = """
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(generate_latest(registry).decode())
"""


def test_with_several_worker_processes_the_scrape_adds_them_up(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the metrics module needs no Django
    for state in ("closed", "open"):
        subprocess.run([sys.executable, "-c", RECORD, state], env=env, check=True, cwd=ROOT, timeout=60)
    text = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, check=True, cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout

    assert sample(text, "detection_requests_total", tenant_id="t-multi", model="local", result="blocked") == 2
    assert sample(text, "tenant_requests_total", tenant_id="t-multi") == 2
    assert sample(text, "detection_duration_seconds_count", tenant_id="t-multi", model="local") == 2
    # livemax: the highest value among processes; "open in any worker" shows as open.
    assert sample(text, "circuit_breaker_state", model="model:multi", state="open") == 1
    assert sample(text, "circuit_breaker_state", model="model:multi", state="closed") == 1
