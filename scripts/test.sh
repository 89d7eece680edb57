#!/usr/bin/env bash
# The pytest part of `make test`. Extra arguments go to pytest (`make test ARGS="-k audit -x"`).
#
# Where PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) answer, the suite runs against them —
# in a throwaway database that pytest-django creates and drops — and then again on SQLite without Redis, so both
# configurations stay green. Where they do not answer, the suite runs on SQLite only, and the tests that need Redis
# are skipped with the reason printed. With CI=true an unreachable service is an error, never a silent skip.
set -uo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="${VENV}/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "error: ${PY} not found; run \`make test\`, which creates the virtualenv first" >&2
  exit 2
fi

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
RUN_ID="$$_${RANDOM}"

# The settings of every pass are set explicitly below; nothing from the caller's shell may change them.
unset DATABASE_URL DATABASE_TEST_NAME REDIS_URL REDIS_CACHE_URL REDIS_CHANNELS_URL DEBUG DJANGO_SETTINGS_MODULE

probe_postgres() {
  "$PY" - "$PG_HOST" "$PG_PORT" <<'PYTHON' 2>/dev/null
import sys
import psycopg
psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="postgres", dbname="postgres", connect_timeout=3).close()
PYTHON
}

probe_redis() {
  "$PY" - "$REDIS_HOST" "$REDIS_PORT" <<'PYTHON' 2>/dev/null
import sys
import redis
redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), socket_connect_timeout=2, socket_timeout=2).ping()
PYTHON
}

have_postgres=0
have_redis=0
probe_postgres && have_postgres=1
probe_redis && have_redis=1

if [[ "${CI:-}" == "true" ]]; then
  missing=0
  if (( ! have_postgres )); then
    echo "CI: PostgreSQL at ${PG_HOST}:${PG_PORT} (user postgres) is not reachable" >&2
    missing=1
  fi
  if (( ! have_redis )); then
    echo "CI: Redis at ${REDIS_HOST}:${REDIS_PORT} is not reachable" >&2
    missing=1
  fi
  (( missing )) && exit 1
fi

# Every pass runs the whole suite (no -x), shows the slowest tests, and treats "no tests collected" (exit 5) as the
# failure it is. Usage: run_pytest LABEL [VAR=value ...] -- [pytest args ...]
run_pytest() {
  local label="$1"
  shift
  local env_args=()
  while (( $# )) && [[ "$1" != "--" ]]; do
    env_args+=("$1")
    shift
  done
  shift
  echo
  echo "==> pytest: ${label}"
  env ${env_args[@]+"${env_args[@]}"} "$PY" -m pytest -p no:cacheprovider --durations=10 "$@"
  local status=$?
  if (( status == 5 )); then
    echo "error: pytest collected no tests (${label})" >&2
  fi
  return "$status"
}

test_db="test_evalence_${RUN_ID}"
drop_test_db() {
  # pytest-django drops it on a normal exit; this covers an interrupted run.
  "$PY" - "$PG_HOST" "$PG_PORT" "$test_db" <<'PYTHON' >/dev/null 2>&1 || true
import sys
import psycopg
from psycopg import sql
with psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="postgres", dbname="postgres", autocommit=True) as c:
    c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(sys.argv[3])))
PYTHON
}

failures=()

if (( have_postgres || have_redis )); then
  env_args=()
  labels=()
  pytest_args=()
  if (( have_postgres )); then
    trap drop_test_db EXIT
    env_args+=("DATABASE_URL=postgres://postgres@${PG_HOST}:${PG_PORT}/evalence" "DATABASE_TEST_NAME=${test_db}")
    labels+=("PostgreSQL ${PG_HOST}:${PG_PORT} (throwaway database ${test_db})")
    pytest_args+=(--create-db)
  else
    echo "PostgreSQL at ${PG_HOST}:${PG_PORT} is not reachable: the first pass uses SQLite."
    labels+=("SQLite")
  fi
  if (( have_redis )); then
    # Its own key prefixes, so another `make test` on the same machine does not read this run's cache entries.
    env_args+=(
      "REDIS_URL=redis://${REDIS_HOST}:${REDIS_PORT}/10"
      "CACHE_KEY_PREFIX=evalence-test-${RUN_ID}"
      "CHANNELS_PREFIX=evalence-test-${RUN_ID}"
    )
    labels+=("Redis ${REDIS_HOST}:${REDIS_PORT}/10 (RQ jobs, cache, channel layer)")
  else
    echo "Redis at ${REDIS_HOST}:${REDIS_PORT} is not reachable: tests marked 'redis' are skipped in the first pass."
  fi
  label="${labels[0]}${labels[1]+ + ${labels[1]}}"
  if ! run_pytest "$label" "${env_args[@]}" -- ${pytest_args[@]+"${pytest_args[@]}"} "$@"; then
    failures+=("$label")
  fi
else
  echo "PostgreSQL (${PG_HOST}:${PG_PORT}) and Redis (${REDIS_HOST}:${REDIS_PORT}) are not reachable: running on SQLite"
  echo "only, and tests marked 'redis' are skipped (start both services to run the suite against them too)."
fi

if ! run_pytest "SQLite, no Redis (in-process jobs, in-memory channel layer)" -- "$@"; then
  failures+=("SQLite, no Redis")
fi

echo
if (( ${#failures[@]} )); then
  printf 'FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "All test passes succeeded."
