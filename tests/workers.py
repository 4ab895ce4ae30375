"""Real Celery workers and `manage.py` processes beside a test: a database both use, their environment, and a Redis
queue of the test's own.

The database is of the suite's own engine: a SQLite file in the default run, a fresh PostgreSQL database when the
suite runs on PostgreSQL (DATABASE_URL=postgres://…), so the worker tests exercise the production database too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]
BROKER_URL = "redis://127.0.0.1:6379/15"


def _postgres_url(entry: dict) -> str:
    password = f":{entry['PASSWORD']}" if entry.get("PASSWORD") else ""
    return f"postgres://{entry['USER']}{password}@{entry['HOST']}:{entry['PORT'] or 5432}/{entry['NAME']}"


@pytest.fixture
def shared_database(request, tmp_path, django_db_blocker) -> Iterator[str]:
    """A migrated database this process and worker processes both use, swapped in as the default connection for
    the test. Yields its URL (DATABASE_URL for the workers)."""
    from django.db import connections

    original = connections["default"]
    if original.vendor == "postgresql":
        from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper

        entry = request.getfixturevalue("postgres_database")
        url = _postgres_url(entry)
        shared = PostgresWrapper({**original.settings_dict, "NAME": entry["NAME"]}, "default")
    else:
        from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteWrapper

        path = tmp_path / "shared.sqlite3"
        url = f"sqlite:///{path}"
        shared = SqliteWrapper({**original.settings_dict, "NAME": str(path)}, "default")
    env = worker_environment(url, tmp_path, index_dir=tmp_path / "unused", index_name="unused")
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr
    with django_db_blocker.unblock():
        connections["default"] = shared
        try:
            yield url
        finally:
            shared.close()
            connections["default"] = original


def worker_environment(database_url: str, tmp_path: Path, *, index_dir: Path, index_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings.local", DATABASE_URL=database_url,
        CITEWISE_VAR_DIR=str(tmp_path / "var"), CITEWISE_SEARCH_BACKEND="embedded",
        CITEWISE_EMBEDDED_INDEX_DIR=str(index_dir), CITEWISE_INDEX_NAME=index_name,
        CELERY_BROKER_URL=BROKER_URL, CELERY_RESULT_BACKEND=BROKER_URL,
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
    )
    return env


def start_worker(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen:
    """A real `celery worker` (solo pool) reading `queue`, its output in `log`."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "console", "worker", "--pool=solo", "-Q", queue,
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--hostname", f"{queue}-{log.stem}@%h"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def reset_celery_connections() -> None:
    from kombu import pools

    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    # kombu keeps connection and producer pools in registries of its own, keyed by broker URL: a pool closed above
    # would be handed out again to the next task sent (eagerly too) with the same URL.
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app._backend_cache = None  # the result backend, cached per app or per thread
    celery_app._local.__dict__.pop("backend", None)


@pytest.fixture
def redis_celery() -> Iterator[str]:
    """This process sends tasks to Redis (db 15) on a queue of its own, instead of running them eagerly."""
    import redis

    queue = f"citewise-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(BROKER_URL)
    client.ping()
    saved = {key: celery_app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager",
                                                    "task_default_queue")}
    reset_celery_connections()
    celery_app.conf.update(broker_url=BROKER_URL, result_backend=BROKER_URL, task_always_eager=False,
                           task_default_queue=queue)
    try:
        yield queue
    finally:
        reset_celery_connections()
        celery_app.conf.update(saved)
        for key in [queue.encode(), *client.scan_iter(match=f"_kombu.*{queue}*")]:
            client.delete(key)
        client.close()
