"""Server time of the overview page (the dashboard's home) on 1,000,000 stored evaluations and 100,000 test results
of one organization over 30 days, in PostgreSQL.

In a throwaway PostgreSQL database: the seed bank is loaded, `analytics.generate.history_generate` (what
`manage.py analytics_generate` runs: COPY in 50,000-row transactions) writes the organization's history, the tables
are rolled up (`analytics.rollups.rebuild()`), and everything is VACUUM ANALYZEd, as autovacuum would do soon after a
bulk load.
Then the page is requested in-process through Django's test client, logged in as the organization's admin, for the
30-day, 7-day and 24-hour ranges: 3 warm-up requests, then 30 timed requests each (template rendering included, no
HTTP server). The baseline is the bare `/health/live` endpoint through the same client in the same run, so the
ratio shows what the page itself costs on this (shared, noisy) machine.
Goal: 30-day p95 ≤ 300 ms.
Run alone: `python bench/run.py --only analytics_overview --output /tmp/bench.md`; BENCH_ANALYTICS_EVALUATIONS /
BENCH_ANALYTICS_RESULTS shrink it for a quick check, BENCH_POSTGRES_URL chooses the server (default: DATABASE_URL
when it is PostgreSQL, else postgres://postgres@127.0.0.1:5432/evalence). Skipped when no PostgreSQL answers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TITLE = "Analytics: overview page server time on 1,000,000 evaluations and 100,000 test results (PostgreSQL)"

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/evalence"
EVALUATIONS = 1_000_000
RESULTS = 100_000
DAYS = 30
WARMUP = 3
REQUESTS = 30
GOAL_P95_MS = 300.0
RANGES = (("30 days", "30d"), ("7 days", "7d"), ("24 hours", "24h"))


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the slowest of the fastest `fraction` of the requests)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _timed(client: Any, url: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter_ns()
        response = client.get(url)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        timings.append(elapsed)
    return timings


# --- the child: one throwaway PostgreSQL database -----------------------------------------------------------------


def child(evaluations: int, results: int, requests: int) -> dict[str, Any]:
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings_test")
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from accounts import services as accounts
    from accounts.choices import Role
    from analytics.generate import history_generate, rollups_rebuild
    from promptbank.seed import seed_bank

    setup_test_environment()
    config = setup_databases(verbosity=0, interactive=False)
    try:
        figures: dict[str, Any] = {"vendor": connection.vendor}
        started = time.perf_counter()
        seed_bank()
        figures["bank_s"] = time.perf_counter() - started

        org = accounts.organization_create(name="Bench analytics", slug="bench-analytics")
        admin = accounts.user_create(email="bench-admin@example.test", password="bench-password-2026")  # noqa: S106
        accounts.membership_add(organization=org, user=admin, role=Role.ADMIN)

        started = time.perf_counter()
        summary = history_generate(
            organization=org, evaluations=evaluations, results=results, days=DAYS, seed=1, rebuild_rollups=False
        )
        figures["generate_s"] = time.perf_counter() - started
        figures["summary"] = summary.as_dict()
        started = time.perf_counter()
        figures["rollups"] = rollups_rebuild()
        figures["rollups_s"] = time.perf_counter() - started
        # What autovacuum does soon after a bulk load, of the evaluations and of the rollups made from them: fresh
        # statistics for the planner and the visibility map for index-only scans.
        started = time.perf_counter()
        connection.ensure_connection()
        autocommit = connection.connection.autocommit
        connection.connection.autocommit = True  # VACUUM cannot run inside a transaction
        try:
            with connection.connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        finally:
            connection.connection.autocommit = autocommit
        figures["analyze_s"] = time.perf_counter() - started

        client = Client()
        client.force_login(admin)
        measured: dict[str, list[float]] = {}
        urls = [("baseline: /health/live", "/health/live")] + [(label, f"/?range={key}") for label, key in RANGES]
        for label, url in urls:
            _timed(client, url, WARMUP)
            measured[label] = _timed(client, url, requests)
        figures["timings"] = measured
        return figures
    finally:
        teardown_databases(config, verbosity=0)


# --- the parent ---------------------------------------------------------------------------------------------------


def _postgres_url() -> str | None:
    url = os.environ.get("BENCH_POSTGRES_URL") or ""
    if not url and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        url = os.environ["DATABASE_URL"]
    url = url or DEFAULT_POSTGRES
    try:
        import psycopg

        # The maintenance database: the named one may not exist (only the throwaway test database is made).
        server = url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0]
        psycopg.connect(f"{server}/postgres", connect_timeout=3).close()
    except Exception:
        return None
    return url


def measure(evaluations: int, results: int, requests: int = REQUESTS) -> list[dict[str, Any]]:
    postgres = _postgres_url()
    if postgres is None:
        return [{"measure": "not measured: no PostgreSQL server answered"}]
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DATABASE_TEST_NAME", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="evalence.settings_test",
        DATABASE_URL=postgres,
        DATABASE_TEST_NAME=f"test_bench_analytics_{os.getpid()}",
    )
    command = [sys.executable, __file__, "--child", "--evaluations", str(evaluations), "--results", str(results)]
    command += ["--requests", str(requests)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=BASE_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])

    timings = figures["timings"]
    baseline_p50 = _percentile(timings["baseline: /health/live"], 0.5)
    rows: list[dict[str, Any]] = []
    for label, values in timings.items():
        p95 = _percentile(values, 0.95)
        row: dict[str, Any] = {
            "measure": label if label.startswith("baseline") else f"overview, {label}",
            "requests": len(values),
            "p50 ms": _percentile(values, 0.5),
            "p95 ms": p95,
            "max ms": max(values),
            "p50 / baseline p50": _percentile(values, 0.5) / baseline_p50 if baseline_p50 else "",
        }
        if label == "30 days":
            row["goal"] = f"p95 ≤ {GOAL_P95_MS:.0f} ms: {'met' if p95 <= GOAL_P95_MS else 'NOT met'}"
        rows.append(row)
    summary = figures["summary"]
    rows += [
        {"measure": "load the seed bank (seconds)", "seconds": figures["bank_s"]},
        {
            "measure": f"generate {summary['evaluations']:,} evaluations (seconds)",
            "seconds": summary["evaluations_s"],
            "rows/s": summary["evaluations"] / summary["evaluations_s"] if summary["evaluations_s"] else "",
        },
        {
            "measure": f"generate {summary['results']:,} results in {summary['sessions']} sessions (seconds)",
            "seconds": summary["results_s"],
            "rows/s": summary["results"] / summary["results_s"] if summary["results_s"] else "",
        },
        {"measure": "VACUUM ANALYZE (seconds)", "seconds": figures["analyze_s"]},
        {"measure": f"rollups.rebuild() (seconds; {figures['rollups']})", "seconds": figures["rollups_s"]},
    ]
    return rows


def run() -> list[dict[str, Any]]:
    return measure(
        int(os.environ.get("BENCH_ANALYTICS_EVALUATIONS", EVALUATIONS)),
        int(os.environ.get("BENCH_ANALYTICS_RESULTS", RESULTS)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=EVALUATIONS)
    parser.add_argument("--results", type=int, default=RESULTS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.evaluations, args.results, args.requests)))
        return 0
    for row in measure(args.evaluations, args.results, args.requests):
        print(json.dumps(row, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
