# Citewise developer commands. `make demo` runs the product; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ADDR ?= 127.0.0.1:8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo test lint lock system services-start services-stop benchmarks

venv:
	@VENV=$(VENV) bash scripts/ensure-venv.sh

# Embedded default: SQLite, in-process search, eager tasks, the bundled demo corpus; web app + admin.
# DEBUG is on for this local demo only (runserver serves the admin's CSS, errors show tracebacks); the settings
# keep it off everywhere else. `DJANGO_DEBUG=0 make demo` turns it off here too.
demo: venv
	$(PY) manage.py migrate --no-input
	$(PY) manage.py load_demo
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py runserver $(DEMO_ADDR)

# Java check, Elasticsearch zip, Redis, PostgreSQL, Chromium: idempotent, a fraction of a second once installed.
system:
	bash scripts/install-system.sh

services-start: system
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop

# Static checks (ruff, import-linter, mypy), then the whole suite in two passes side by side (scripts/run-tests.sh):
# on SQLite, the embedded default's database; on PostgreSQL, the production stack (real Celery workers on Redis,
# outages, traces) and the tests that depend on the database engine. Elasticsearch, Redis and PostgreSQL are started
# if they are not running.
test: venv services-start lint
	PY=$(PY) bash scripts/run-tests.sh

# Re-resolve requirements.lock from pyproject.toml (dependencies, test and dev extras) after changing either.
lock: venv
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra test --extra dev --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

lint: venv
	VENV=$(VENV) bash scripts/lint.sh

benchmarks: venv services-start
	$(PY) benchmarks/ingest_scifact.py
	$(PY) benchmarks/scifact_retrieval.py --var-dir var/bench -- --unit document
	$(PY) benchmarks/scifact_retrieval.py --var-dir var/bench -- --unit chunk
