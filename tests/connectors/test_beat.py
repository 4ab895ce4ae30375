"""Scheduled syncs in production: a real `celery beat` dispatches the syncs that are due, a real worker on Redis
runs them, and the source's documents reach the index, with no one asking. beat's container health check reads
the pid file it writes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from connectors import services
from connectors.models import Document, SyncRun
from console import healthcheck
from retrieval import services as retrieval_services
from tests.connectors.conftest import write_manifest
from tests.workers import ROOT, redis_celery, shared_database, start_worker, stop, worker_environment  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.production]


def test_beat_dispatches_due_syncs_that_a_worker_runs(tmp_path, settings, shared_database, redis_celery):
    index_dir, index_name = tmp_path / "index", f"test-beat-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                                                  index_name=index_name)
    retrieval_services._backends.clear()
    folder = tmp_path / "docs"
    folder.mkdir()
    for number in range(3):
        (folder / f"note-{number}.md").write_text(f"# Note {number}\n\nThe heron count on day {number} was {number * 7}.\n")
    write_manifest(folder)
    source = services.ensure_source("filesystem", folder)  # never synced: due at once

    env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
    env.update(CELERY_TASK_DEFAULT_QUEUE=redis_celery, CITEWISE_SYNC_DISPATCH_INTERVAL_S="2")
    worker = start_worker(env, redis_celery, tmp_path / "worker.log")
    pidfile, beat_log = tmp_path / "celerybeat.pid", tmp_path / "beat.log"
    beat = subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "console", "beat", "--loglevel=INFO",
         "--schedule", str(tmp_path / "celerybeat-schedule"), "--pidfile", str(pidfile)],
        cwd=ROOT, env=env, stdout=beat_log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not SyncRun.objects.filter(
                source=source, kind="full", trigger="schedule", state="succeeded").exists():
            time.sleep(0.5)
        settings.CELERY_BROKER_URL = env["CELERY_BROKER_URL"]  # as in beat's container
        beat_health = healthcheck.main(["beat", "--pidfile", str(pidfile)])
    finally:
        stop(beat)
        stop(worker)
    logs = beat_log.read_text()[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
    assert SyncRun.objects.filter(source=source, kind="full", trigger="schedule", state="succeeded").exists(), logs
    assert "connectors.dispatch_due_syncs" in beat_log.read_text()
    assert Document.objects.filter(source=source, status="indexed").count() == 3
    assert retrieval_services.get_backend().document_ids() == set(
        Document.objects.filter(source=source).values_list("id", flat=True))
    assert beat_health == 0
