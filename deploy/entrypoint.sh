#!/bin/sh
# Container entry point: `web` (default), `worker`, `migrate`, or any other command (e.g. `python manage.py shell`).
set -eu

case "${1:-web}" in
  web)
    # A fresh directory per start: prometheus_client's multiprocess mode adds up every worker's files in it, so
    # /metrics answers for all gunicorn workers. Only the web processes use it.
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/evalence-metrics}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete  # empty it, even when it is a mounted volume
    exec gunicorn evalence.asgi:application -c deploy/gunicorn.conf.py
    ;;
  worker)
    # Start (or join) the schedule that polls the prompt bank's drop folder and feeds; idempotent across workers.
    python manage.py promptbank_import --schedule || echo "worker: could not schedule the prompt-bank poll" >&2
    python manage.py testing_recover --schedule || echo "worker: could not schedule the testing watchdog" >&2
    python manage.py analytics_report --schedule || echo "worker: could not schedule the report e-mails" >&2
    python manage.py analytics_rollup --schedule || echo "worker: could not schedule the analytics rollups" >&2
    python manage.py train_detector --schedule || echo "worker: could not schedule the classifier retraining" >&2
    python manage.py firewall_harvest --schedule || echo "worker: could not schedule the firewall harvest" >&2
    exec python manage.py rqworker default testing pipeline --with-scheduler
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  *)
    exec "$@"
    ;;
esac
