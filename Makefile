# Evalence: `make run` to try it, `make test` before you push. `make help` lists every target.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# Python 3.11 if present, else python3 (checked to be 3.11 or newer when the virtualenv is made).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_CONCURRENCY ?= 2
ARGS ?=

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# --- virtualenv and dependencies (reinstalled only when a requirements file changes) ---

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
	  echo "error: Evalence needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)." >&2; \
	  echo "       Install python3.11, or run: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }
	@echo "==> Creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)

$(VENV)/.requirements.stamp: requirements.txt | $(PY)
	@echo "==> Installing requirements.txt into $(VENV) (the first time takes a minute)"
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.requirements-dev.stamp: requirements-dev.txt requirements.txt | $(PY)
	@echo "==> Installing requirements-dev.txt into $(VENV)"
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.requirements.stamp

.PHONY: install install-dev
install: $(VENV)/.requirements.stamp ## Create .venv and install the runtime requirements
install-dev: $(VENV)/.requirements-dev.stamp ## ... and the test tools

# --- develop ---

.PHONY: run
run: export DEBUG := true
run: export LOG_FORMAT ?= plain
run: install ## Migrate, seed the demo and serve on http://127.0.0.1:8000 (SQLite and in-process jobs unless configured)
	@echo "==> Applying migrations"
	$(PY) manage.py migrate --noinput
	@echo "==> Seeding the demo organization"
	$(PY) manage.py seed_demo
	@echo "==> Serving on http://127.0.0.1:$(PORT) (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

.PHONY: test
test: install-dev ## Lint, check migrations and run the test suite (PostgreSQL + Redis when they answer, then SQLite)
	@echo "==> ruff check"
	$(BIN)/ruff check .
	@echo "==> ruff format --check"
	$(BIN)/ruff format --check .
	@echo "==> makemigrations --check"
	env -u DATABASE_URL -u REDIS_URL DJANGO_SETTINGS_MODULE=evalence.settings_test \
	  $(PY) manage.py makemigrations --check --dry-run
	scripts/ensure_chromium.sh
	VENV=$(VENV) scripts/test.sh $(ARGS)

.PHONY: lint
lint: install-dev ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: install-dev ## Fix what ruff can fix, and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# --- production ---

# Production server: gunicorn managing uvicorn workers (ASGI, websockets included), no autoreload; whitenoise serves
# the collected static files. Needs SECRET_KEY and ALLOWED_HOSTS (see .env.example). Each run gets a fresh
# PROMETHEUS_MULTIPROC_DIR so /metrics adds up every worker instead of answering for whichever one it hits.
.PHONY: serve
serve: install ## Production server: collectstatic, migrate, gunicorn + uvicorn workers on $HOST:$PORT
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py migrate --noinput
	export PROMETHEUS_MULTIPROC_DIR="$$(mktemp -d -t evalence-metrics.XXXXXX)"; \
	echo "==> Serving on http://$(HOST):$(PORT) with $(WEB_CONCURRENCY) workers (metrics in $$PROMETHEUS_MULTIPROC_DIR)"; \
	exec $(BIN)/gunicorn evalence.asgi:application -c deploy/gunicorn.conf.py -k uvicorn_worker.UvicornWorker \
	  -b $(HOST):$(PORT) -w $(WEB_CONCURRENCY)

.PHONY: worker
worker: install ## RQ worker on the default, testing and pipeline queues (needs REDIS_URL)
	@$(PY) manage.py shell --no-imports -c "from django.conf import settings; raise SystemExit(0 if settings.REDIS_URL else \
	  'make worker: REDIS_URL is not set. Without Redis, jobs run inside the web process and no worker is needed.')"
	$(PY) manage.py promptbank_import --schedule
	$(PY) manage.py analytics_report --schedule
	$(PY) manage.py analytics_rollup --schedule
	$(PY) manage.py firewall_harvest --schedule
	$(PY) manage.py train_detector --schedule
	exec $(PY) manage.py rqworker default testing pipeline --with-scheduler

.PHONY: bench
bench: install ## Run bench/bench_*.py and write docs/benchmarks.md
	$(PY) bench/run.py $(ARGS)

.PHONY: screenshots
screenshots: install-dev ## Seed the demo in a test database and save docs/screenshots/*.png (headless Chromium)
	scripts/ensure_chromium.sh
	SCREENSHOTS=1 $(BIN)/pytest analytics/tests/test_screenshots.py -q -p no:cacheprovider

# --- housekeeping ---

.PHONY: clean
clean: ## Remove caches and collected static files (keeps .venv and db.sqlite3)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache staticfiles

.PHONY: distclean
distclean: clean ## ... and the virtualenv and the local SQLite database
	rm -rf $(VENV) db.sqlite3 db.sqlite3-shm db.sqlite3-wal
