"""The database block of the settings, read in a fresh process per environment (settings are read once per process).

Under ASGI every request runs on a fresh thread, so on PostgreSQL the connections must come from a process-wide pool,
not from per-thread persistent connections (which ran the server out of connections under load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

PRINT_DATABASE = (
    "import json; from django.conf import settings; d = settings.DATABASES['default']; "
    "print(json.dumps({'engine': d['ENGINE'], 'conn_max_age': d['CONN_MAX_AGE'], "
    "'pool': d['OPTIONS'].get('pool')}))"
)
POSTGRES = "postgres://evalence@db.invalid:5432/evalence"  # never connected to: the settings only are read


def database_settings(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`manage.py shell -c ...` with only these variables, printing the default database's engine, age and pool."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "EVALENCE_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "evalence.settings",
        "DEBUG": "true",
        **env,
    }
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "shell", "--no-imports", "-c", PRINT_DATABASE],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read(env: dict[str, str], tmp_path: Path) -> dict:
    result = database_settings(env, tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_postgresql_gets_a_connection_pool_and_no_persistent_connections(tmp_path: Path) -> None:
    db = read({"DATABASE_URL": POSTGRES}, tmp_path)

    assert db["engine"] == "django.db.backends.postgresql"
    assert db["conn_max_age"] == 0  # Django refuses a pool with persistent connections
    assert db["pool"] == {"min_size": 2, "max_size": 10, "timeout": 10.0}


def test_the_pool_is_sized_from_the_environment(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": POSTGRES,
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_MAX_SIZE": "4",
        "DATABASE_POOL_TIMEOUT": "2.5",
    }

    assert read(env, tmp_path)["pool"] == {"min_size": 1, "max_size": 4, "timeout": 2.5}


def test_without_the_pool_postgresql_keeps_persistent_connections(tmp_path: Path) -> None:
    db = read({"DATABASE_URL": POSTGRES, "DATABASE_POOL": "false", "DATABASE_CONN_MAX_AGE": "30"}, tmp_path)

    assert (db["pool"], db["conn_max_age"]) == (None, 30)


def test_sqlite_gets_no_pool(tmp_path: Path) -> None:
    db = read({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}, tmp_path)

    assert db["engine"] == "django.db.backends.sqlite3"
    assert db["pool"] is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_CONN_MAX_AGE": "60"}, "DATABASE_CONN_MAX_AGE"),
        ({"DATABASE_POOL_MIN_SIZE": "5", "DATABASE_POOL_MAX_SIZE": "2"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE"),
    ],
)
def test_a_contradictory_pool_setting_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = database_settings({"DATABASE_URL": POSTGRES, **env}, tmp_path)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_test_database_connection_comes_from_the_pool_on_postgresql() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the suite runs on SQLite (no DATABASE_URL): no pool to lend from")
    connection.close()  # a new connection, whatever earlier tests did with this one
    connection.ensure_connection()

    assert connection.pool is not None
    assert connection.connection._pool is connection.pool  # lent by the pool, given back on close


def test_an_rq_worker_process_keeps_plain_connections(tmp_path: Path) -> None:
    """RQ forks a work horse per job; a pool's connections and threads do not survive the fork."""
    code = (
        "import json, sys; sys.argv = ['manage.py', 'rqworker']; import django; django.setup(); "
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(json.dumps({'conn_max_age': d['CONN_MAX_AGE'], 'pool': d['OPTIONS'].get('pool')}))"
    )
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "EVALENCE_READ_DOTENV": "0",
        "DJANGO_SETTINGS_MODULE": "evalence.settings",
        "DEBUG": "true",
        "DATABASE_URL": POSTGRES,
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    result = subprocess.run([sys.executable, "-c", code], env=clean, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    db = json.loads(result.stdout.strip().splitlines()[-1])
    assert db == {"conn_max_age": 60, "pool": None}
    assert read({"DATABASE_URL": POSTGRES}, tmp_path)["pool"] is not None  # the web process keeps its pool
