"""Scheduled permission sync: the Celery tasks on a real worker and Redis broker, the command, the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import CommandError, call_command

from answers import services as answering
from answers.models import Answer
from connectors import tasks
from connectors.models import Document, Source
from console.celery import app as celery_app
from identity.selectors import principals_for
from retrieval import selectors
from search.types import SearchMode
from tests.console.conftest import (
    BUDGET_QUESTION,
    finance_document,
    index_corpus,
    make_user,
    write_corpus,
    write_manifest,
)
from tests.workers import redis_celery, shared_database, stop, worker_environment  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = "redis://127.0.0.1:6379/15"


def visible_documents(user) -> set[str]:
    hits = selectors.search("travel budget espresso", principals=principals_for(user), mode=SearchMode.BM25,
                            limit=20)
    return {hit.document_id for hit in hits}


# -- the management command and the schedule -------------------------------------------------------------


@pytest.mark.django_db
def test_sync_permissions_command_revokes(tmp_path, isolated_index, capsys):
    folder = write_corpus(tmp_path / "docs")
    source = index_corpus(folder)
    alice = make_user("alice")
    budget = finance_document(source).id
    assert budget in visible_documents(alice)

    write_manifest(folder, finance_members=["email:alice@corp.example"], finance_readers=["group:executives"])
    call_command("sync_permissions", "--source", str(source.id))
    assert "1 changed" in capsys.readouterr().out
    assert budget not in visible_documents(alice)
    assert Document.objects.get(id=budget).acl_principals == ["group:executives"]
    call_command("sync_permissions")  # every source: nothing left to change
    assert "0 changed" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no such source: 999999"):
        call_command("sync_permissions", "--source", "999999")


@pytest.mark.django_db
def test_the_tasks_run_eagerly_without_a_broker(tmp_path, isolated_index):
    folder = write_corpus(tmp_path / "docs")
    source = index_corpus(folder)
    Source.objects.create(name="eval", kind="beir", location="/nowhere")
    write_manifest(folder, finance_members=[])
    # Its full and permission syncs have just run: a group sync and a prune are due, and the evaluation corpus never.
    assert sorted(tasks.dispatch_due_syncs.delay().get()) == [(source.id, "groups"), (source.id, "prune")]
    assert tasks.run_sync.delay(source.id, "permissions").get()["state"] == "succeeded"
    assert tasks.sync_permissions.delay(987654).get() == {"source_id": 987654, "skipped": "no such source"}
    assert Document.objects.get(id=finance_document(source).id).acl_hash
    assert not visible_documents(make_user("alice")) & {finance_document(source).id}


def test_the_beat_schedule_dispatches_due_syncs():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert schedule["dispatch-due-syncs"]["task"] == "connectors.dispatch_due_syncs"
    assert schedule["dispatch-due-syncs"]["schedule"] == django_settings.CITEWISE.sync_dispatch_interval_s
    assert schedule["remove-orphaned-documents"]["task"] == "connectors.remove_orphaned_documents"
    celery_app.loader.import_default_modules()
    assert {"connectors.run_sync", "connectors.dispatch_due_syncs", "connectors.sync_permissions",
            "connectors.sync_source", "connectors.remove_orphaned_documents"} <= set(celery_app.tasks)


def test_sync_intervals_come_from_the_environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CITEWISE_"))}
    env.update(DJANGO_SETTINGS_MODULE="console.settings.test", CITEWISE_SYNC_DISPATCH_INTERVAL_S="60",
               CITEWISE_CONTENT_SYNC_INTERVAL_S="0")
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(sorted((k, v['schedule']) for k, v in s.CELERY_BEAT_SCHEDULE.items()))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('check-freshness', 300.0), ('dispatch-due-syncs', 60.0)]"


# -- a real worker on the real Redis broker ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.production
def test_a_celery_worker_on_redis_revokes_access_with_sync_permissions(tmp_path, settings, shared_database,
                                                                       redis_celery):
    index_dir, index_name = tmp_path / "index", f"test-celery-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                         index_name=index_name)
    from retrieval import services as retrieval_services

    retrieval_services._backends.clear()
    cache.clear()
    folder = write_corpus(tmp_path / "docs")
    source = index_corpus(folder)
    alice = make_user("alice")
    budget = finance_document(source).id
    assert budget in visible_documents(alice)
    first = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    assert {c.document_id for c in first.citations} == {budget}
    cached = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    assert Answer.objects.get(id=cached.answer_id).timings["cache"] == "hit"

    env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
    log = (tmp_path / "worker.log").open("w+")
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "console", "worker", "--pool=solo", "-Q", redis_celery,
         "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "--hostname",
         f"{redis_celery}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # The source takes alice's access away; the worker's permission sync carries it into the index.
        write_manifest(folder, finance_members=[])
        result = tasks.sync_permissions.delay(source.id)
        report = result.get(timeout=180)
        result.forget()
    finally:
        stop(worker)
        log.seek(0)
        worker_log = log.read()
        log.close()
    assert "connectors.sync_permissions" in worker_log and "succeeded" in worker_log, worker_log
    assert report["source"] == source.name and report["checked"] == 2 and report["memberships"] == 0
    assert Source.objects.get(id=source.id).permissions_synced_at is not None
    assert budget not in visible_documents(alice)
    # The cached answer that cited the budget is not served again, although the worker's cache is its own.
    after = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    assert Answer.objects.get(id=after.answer_id).timings["cache"] == "miss"
    assert after.refused and "40,000" not in after.text
    retrieval_services._backends.clear()


@pytest.mark.django_db
def test_a_prune_run_removes_documents_deleted_at_the_source(tmp_path, isolated_index):
    from connectors import services as connector_services
    from connectors.models import Document
    from retrieval import selectors
    from search.types import SearchMode

    (tmp_path / "a.md").write_text("# Alpha\n\nThe quokka budget is forty dollars.\n")
    (tmp_path / ".citewise-acl.json").write_text('{"rules": [{"paths": ["*"], "public": true}]}')
    source = connector_services.ensure_source("filesystem", tmp_path)
    connector_services.sync_source(source)
    assert selectors.search("quokka", principals=frozenset(), mode=SearchMode.BM25)
    (tmp_path / "a.md").unlink()
    run = connector_services.run_sync(source, "prune")
    assert (run.kind, run.state, run.deleted) == ("prune", "succeeded", 1)
    assert selectors.search("quokka", principals=frozenset(), mode=SearchMode.BM25) == []
    assert not Document.objects.filter(source=source).exists()
