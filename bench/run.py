#!/usr/bin/env python
"""Run every `bench/bench_*.py` and write the figures to docs/benchmarks.md (`make bench`).

A benchmark module defines:

    TITLE = "Firewall: single evaluation latency"      # optional; defaults to the module name
    NEEDS_DATABASE = True                               # optional; runs inside a throwaway test database
    def run() -> list[dict[str, object]]: ...          # rows of the figures table, one dict per row

and its docstring says what it measures and how. Rows become a Markdown table whose columns are the dicts' keys
(first-seen order); floats are rounded to three significant decimals. Run one with `python bench/run.py --only NAME`.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
BASE_DIR = BENCH_DIR.parent
DEFAULT_OUTPUT = BASE_DIR / "docs" / "benchmarks.md"


@dataclass
class Result:
    name: str
    title: str
    description: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def discover(only: list[str] | None = None) -> list[Path]:
    paths = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
        paths = [p for p in paths if p.stem.removeprefix("bench_") in wanted]
        missing = wanted - {p.stem.removeprefix("bench_") for p in paths}
        if missing:
            raise SystemExit(f"error: no benchmark named {', '.join(sorted(missing))} in {BENCH_DIR}")
    return paths


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench.{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ImportError(f"{path.name} defines no run() function")
    return module


def setup_django() -> None:
    """Benchmarks import the apps; the test settings need no secrets and no services."""
    sys.path.insert(0, str(BASE_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalence.settings_test")
    import django

    django.setup()


@contextmanager
def test_database() -> Iterator[None]:
    """A throwaway database (as the test suite makes), so a benchmark never writes into real data."""
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases, teardown_test_environment

    setup_test_environment()
    config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(config, verbosity=0)
        teardown_test_environment()


def _cpu_idle_share(seconds: float) -> float | None:
    """The share of CPU time the whole machine spent idle (or waiting for I/O counts as busy) over `seconds`."""
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text(encoding="ascii").splitlines()[0].split()[1:]]
        return fields[3], sum(fields)  # idle, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def _checkpoint() -> None:
    """Ask the PostgreSQL server to write its dirty buffers now, so the next benchmark does not pay for the previous
    one's writes (a 100,000-row import leaves a checkpoint's worth behind). Quietly nothing without PostgreSQL."""
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith("postgres"):
        url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=3, autocommit=True) as db:
            db.execute("CHECKPOINT")
    except Exception as exc:  # no server, or not allowed to: settling is best effort
        print(f"    (no checkpoint: {exc.__class__.__name__})", flush=True)


def settle(*, idle: float = 0.85, timeout: float = 60.0) -> float:
    """Let the machine settle before a benchmark: a PostgreSQL checkpoint, then wait (at most `timeout` seconds)
    until two consecutive one-second samples show the CPUs at least `idle` idle. Background work left by the previous
    benchmark (autovacuum, a dropped database's files, a server still shutting down) then does not land in the next
    one's figures. Returns the seconds waited."""
    started = time.perf_counter()
    _checkpoint()
    quiet = 0
    while time.perf_counter() - started < timeout:
        share = _cpu_idle_share(1.0)
        if share is None:
            break
        quiet = quiet + 1 if share >= idle else 0
        if quiet >= 2:
            break
    return time.perf_counter() - started


def run_one(path: Path, module: ModuleType | None, load_error: str) -> Result:
    name = path.stem.removeprefix("bench_")
    if module is None:
        return Result(name, name, "", error=load_error)
    result = Result(
        name=name,
        title=getattr(module, "TITLE", name),
        description=inspect.cleandoc(module.__doc__ or ""),
    )
    started = time.perf_counter()
    try:
        rows = module.run()
        result.rows = [dict(row) for row in rows]
    except Exception:
        result.error = traceback.format_exc(limit=5)
    result.seconds = time.perf_counter() - started
    return result


def machine_info() -> list[tuple[str, str]]:
    from django.conf import settings

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text(encoding="utf-8").splitlines()[0]  # MemTotal: N kB
        memory = f"{int(first.split()[1]) / 1024 / 1024:.1f} GiB"
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [
        ("CPU", f"{cpu} ({os.cpu_count()} logical cores)"),
        ("Memory", memory or "unknown"),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Database", database),
        ("Redis", "yes" if settings.REDIS_URL else "no (in-process jobs)"),
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(column, "")) for column in columns) + " |" for row in rows]
    return lines


def render(results: list[Result], command: str, started: datetime) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`); do not edit by hand. Figures depend on the machine below:",
        "compare runs on the same machine, not across machines.",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        *(f"- {label}: {value}" for label, value in machine_info()),
        "",
    ]
    if not results:
        lines += [
            "## No benchmarks yet",
            "",
            "No benchmarks yet — they arrive with the prompt bank, firewall and testing issues (firewall evaluation",
            "latency and throughput, pipeline ingestion rate, test-session throughput). Each one is a",
            "`bench/bench_*.py` module; see `bench/README.md`.",
            "",
        ]
    for result in results:
        lines += [f"## {result.title}", ""]
        if result.description:
            lines += [result.description, ""]
        if result.error:
            lines += ["**Failed:**", "", "```", result.error.rstrip(), "```", ""]
        elif result.rows:
            lines += [*table(result.rows), ""]
        else:
            lines += ["(no figures)", ""]
        lines += [f"_`bench/bench_{result.name}.py`, {result.seconds:.1f} s_", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only bench_NAME.py (repeatable)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write (default: %(default)s)")
    args = parser.parse_args(argv)

    setup_django()
    started = datetime.now(UTC)
    loaded: list[tuple[Path, ModuleType | None, str]] = []
    for path in discover(args.only):
        try:
            loaded.append((path, load(path), ""))
        except Exception:
            loaded.append((path, None, traceback.format_exc(limit=3)))
    needs_database = any(getattr(module, "NEEDS_DATABASE", False) for _, module, _ in loaded)

    results: list[Result] = []
    with test_database() if needs_database else nullcontext():
        for path, module, load_error in loaded:
            waited = settle()
            print(f"==> {path.name} (after {waited:.0f} s settling)", flush=True)
            result = run_one(path, module, load_error)
            print(f"    {'FAILED' if result.error else 'ok'} in {result.seconds:.1f} s", flush=True)
            results.append(result)

    command = shlex.join(["python", os.path.relpath(__file__, BASE_DIR), *(sys.argv[1:] if argv is None else argv)])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results, command, started), encoding="utf-8")
    print(f"Wrote {os.path.relpath(args.output, BASE_DIR)} ({len(results)} benchmark(s))")
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
