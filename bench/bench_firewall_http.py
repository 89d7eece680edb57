"""Throughput and latency of `POST /api/v1/firewall/evaluate` over HTTP, next to the bare `/health/live` endpoint of
the same server in the same run (these machines are shared and noisy: only the ratio is comparable across runs).

The server is what `make serve` starts — gunicorn with uvicorn workers (WEB_CONCURRENCY=2), DEBUG off — on a throwaway
PostgreSQL database with Redis for the policy cache, rate limit and session context; every evaluation is stored. The
bank is seeded and the classifier trained (`promptbank_seed`, `train_detector`) before the run; the key's rate limit
is raised so it is counted but never refuses. The load generator is `wrk` (Debian's package; installed by this
benchmark when missing), 2 threads and 32 connections, a 3 s warm-up, then 15 s per measurement, the two endpoints
measured alternately twice. Request bodies are real bank prompts (attacks and benign) of about 200 characters.
"server CPU ms/request" is the CPU time (user + system) the gunicorn master and workers used during a measurement,
divided by the requests answered: the cost of a request, which the machine's noise moves much less than requests per
second (it does not depend on how much CPU wrk, PostgreSQL and Redis got). At 32 connections on this machine's cores the
ratio of the two endpoints' throughput is bounded by the ratio of their CPU per request.
"PG connections" is the most the server held to its database during a measurement (sampled from pg_stat_activity);
with Django's connection pool it stays at most workers x DATABASE_POOL_MAX_SIZE. A row with non-2xx answers quotes the
server's last error line.
Goal: evaluate keeps at least half of the bare endpoint's throughput, with p99 ≤ 25 ms.
Run alone: `python bench/run.py --only firewall_http` (BENCH_POSTGRES_URL / BENCH_REDIS_URL override the servers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

TITLE = "Firewall: HTTP throughput and latency at 32 connections (evaluate vs /health/live, same server, same run)"
NEEDS_DATABASE = False

BASE_DIR = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/3"
DURATION_S = int(os.environ.get("BENCH_HTTP_SECONDS", "15"))
CONNECTIONS = 32
THREADS = 2

LUA = """
local bodies = {}
local n = 0
for line in io.lines("%(bodies)s") do n = n + 1; bodies[n] = line end
local i = 0
request = function()
  i = (i %% n) + 1
  return wrk.format("POST", "/api/v1/firewall/evaluate", {
    ["Authorization"] = "Bearer %(secret)s", ["Content-Type"] = "application/json"}, bodies[i])
end
"""


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it (apt-get install wrk)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wrk(wrk: str, url: str, script: str | None, seconds: int) -> dict[str, float]:
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": requests,
        "p50": _ms(lat["50"]),
        "p99": _ms(lat["99"]),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


class _ConnectionPeak:
    """The most connections to one database seen while measuring, sampled every 0.2 s on a side thread."""

    def __init__(self, url: str, db_name: str) -> None:
        self.url, self.db_name, self.peak = url, db_name, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _ConnectionPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.2):
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.db_name])
                self.peak = max(self.peak, row.fetchone()[0])


def _server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn master and its workers."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
        except OSError:  # a process that just ended
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _measure(
    wrk: str, url: str, script: str | None, seconds: int, admin_url: str, db_name: str, server_pid: int
) -> dict[str, Any]:
    """One wrk run, with the server's CPU per answered request: a figure the machine's noise moves much less than
    requests per second (it does not depend on how much CPU wrk and the database got)."""
    before = _server_cpu_s(server_pid)
    with _ConnectionPeak(admin_url, db_name) as peak:
        result: dict[str, Any] = _wrk(wrk, url, script, seconds)
    result["cpu_ms"] = (_server_cpu_s(server_pid) - before) * 1000 / max(1, result["requests"])
    result["pg_connections"] = peak.peak
    return result


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if "ERROR" in line]
    return lines[-1][-300:] if lines else ""


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([PY, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _bodies(path: Path) -> None:
    rows = [json.loads(line) for line in (BASE_DIR / "promptbank/data/bank_seed.jsonl").open(encoding="utf-8")]
    picked = [r["text"][:200] for r in rows if len(r["text"]) >= 120][:2000]
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(picked):
            handle.write(json.dumps({"text": text, "session_id": f"bench-{i % 50}"}) + "\n")


def run() -> list[dict[str, Any]]:
    import psycopg
    from psycopg import sql

    wrk = _ensure_wrk()
    admin_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    db_name = f"bench_firewall_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="evalence-bench-http-"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    base = admin_url.rsplit("/", 1)[0]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_", "EVALENCE_"))},
        "DEBUG": "false",
        "SECRET_KEY": "bench-not-secret-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"{base}/{db_name}",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
        "CACHE_KEY_PREFIX": f"bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
        "EVALENCE_READ_DOTENV": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "WEB_CONCURRENCY": "2",
    }
    (work / "metrics").mkdir()
    server = None
    try:
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "create_org", "--name", "Bench", "--slug", "bench")
        secret = _manage(
            env, "create_api_key", "--org", "bench", "--name", "bench", "--scopes", "firewall:evaluate,read"
        )
        secret = secret.strip().splitlines()[-1].strip()
        _manage(env, "promptbank_seed")
        _manage(env, "train_detector", "--activate", "force")
        _manage(
            env,
            "shell",
            "-c",
            "from accounts.models import Organization; from firewall import services; "
            "services.policy_update(organization=Organization.objects.get(slug='bench'), "
            "changes={'rate_limit_per_minute': 1000000}, actor=None)",
        )
        bodies = work / "bodies.jsonl"
        _bodies(bodies)
        script = work / "evaluate.lua"
        script.write_text(LUA % {"bodies": bodies, "secret": secret}, encoding="utf-8")
        port = _free_port()
        server = subprocess.Popen(
            [
                str(Path(PY).parent / "gunicorn"),
                "evalence.asgi:application",
                "-c",
                "deploy/gunicorn.conf.py",
                "-k",
                "uvicorn_worker.UvicornWorker",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / "server.log").open("w"),
        )
        root = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{root}/health/live", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start: " + (work / "server.log").read_text()[-500:])
        _wrk(wrk, f"{root}/health/live", None, 3)
        _wrk(wrk, root, str(script), 3)
        results: dict[str, list[dict[str, Any]]] = {"health": [], "evaluate": []}
        for _ in range(2):
            results["health"].append(
                _measure(wrk, f"{root}/health/live", None, DURATION_S, admin_url, db_name, server.pid)
            )
            results["evaluate"].append(_measure(wrk, root, str(script), DURATION_S, admin_url, db_name, server.pid))
        server_error = _last_error(work / "server.log")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        stored = "?"
        try:  # counted once the server's connections are gone (each of its threads may hold one)
            with psycopg.connect(f"{base}/{db_name}") as conn:
                stored = str(conn.execute("SELECT count(*) FROM firewall_evaluation").fetchone()[0])
        except psycopg.Error:
            pass
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    best_health = max(r["rps"] for r in results["health"])
    for name, label in (("health", "GET /health/live (bare baseline)"), ("evaluate", "POST /api/v1/firewall/evaluate")):
        for i, r in enumerate(results[name], 1):
            rows.append(
                {
                    "endpoint": label,
                    "round": i,
                    "requests/s": r["rps"],
                    "p50 ms": r["p50"],
                    "p99 ms": r["p99"],
                    "server CPU ms/request": round(r["cpu_ms"], 3),
                    "non-2xx": int(r["non_2xx"]),
                    "PG connections": r["pg_connections"],
                    "share of best baseline": r["rps"] / best_health,
                    "note": _note(name, i, r, stored, server_error),
                }
            )
    return rows


def _note(name: str, round_: int, result: dict[str, Any], stored: str, server_error: str) -> str:
    notes = []
    if name == "evaluate" and round_ == 2:
        notes.append(f"{stored} evaluations stored in PostgreSQL")
    if result["non_2xx"] and server_error:
        notes.append(f"server's last error: {server_error}")
    return "; ".join(notes)


if __name__ == "__main__":
    for row in run():
        print(row)
