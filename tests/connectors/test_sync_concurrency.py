"""Content syncs under real conditions: an unreachable index, two syncs of one source at once, and a
permission sync that writes ACLs while a content sync is running."""

from __future__ import annotations

import json
import signal
import uuid

import pytest
from celery.signals import task_retry
from django.db.models.signals import pre_save

from connectors import services, tasks
from connectors.models import Document
from connectors.runs import SyncInProgress
from console.celery import app as celery_app
from retrieval import services as retrieval_services
from search.types import SearchUnavailable
from tests.connectors.conftest import found
from tests.connectors.files import make_pdf
from tests.connectors.test_worker_death import slow_sync, wait_for_mark  # noqa: F401 - a fixture
from tests.workers import shared_database, worker_environment  # noqa: F401 - a fixture

FINANCE = frozenset({"group:finance"})
EXECUTIVES = frozenset({"group:executives"})


@pytest.mark.django_db
def test_a_content_sync_task_retries_while_elasticsearch_is_unreachable(tmp_path, settings, isolated_index):
    """Reproduces issue 10 item 13: content-sync tasks never retried on an Elasticsearch outage (autoretry_for
    named the builtin ConnectionError, but the backends raise SearchUnavailable)."""
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="elasticsearch",
                         elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout_s=2)
    retrieval_services._backends.clear()
    (tmp_path / "notes.txt").write_text("The cafeteria serves ramen on Thursdays.\n")
    source = services.ensure_source("filesystem", tmp_path, config={"public": True})
    retried = []

    def on_retry(sender, reason, **kwargs) -> None:
        retried.append(reason.exc)

    # Run in-process, as a worker would: each retry is applied in turn (without the backoff's wait), and
    # failures are results rather than exceptions, so every attempt runs.
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    task_retry.connect(on_retry, sender=tasks.sync_source, weak=False)
    try:
        result = tasks.sync_source.apply(args=(source.id,))
    finally:
        task_retry.disconnect(on_retry, sender=tasks.sync_source)
        celery_app.conf.task_eager_propagates = propagates
        retrieval_services._backends.clear()  # nothing to drop at the closed port
    assert len(retried) == tasks.sync_source.max_retries
    assert all(isinstance(reason, SearchUnavailable) for reason in retried)
    assert result.state == "FAILURE" and isinstance(result.result, SearchUnavailable)
    assert not Document.objects.filter(source=source, status="indexed").exists()


@pytest.mark.slow
def test_a_second_sync_of_a_source_is_skipped_while_the_first_runs(slow_sync):
    """Reproduces issue 10 item 13: overlapping syncs of one source raced, with no lock between them."""
    source, folder, first = slow_sync.source, slow_sync.folder, slow_sync.worker
    wait_for_mark(first, "slow.html", slow_sync.log)  # the first sync is well under way
    with pytest.raises(SyncInProgress, match="another sync of this source is running"):
        services.sync_source(source)
    skipped = tasks.sync_source.delay(source.id).get()
    assert skipped["source_id"] == source.id and "another sync of this source is running" in skipped["skipped"]
    (folder / "notes.txt").unlink()
    with pytest.raises(SyncInProgress, match="another sync of this source is running"):
        services.run_sync(source, "prune")  # pruning would race the content sync: one run per lane
    permissions = services.sync_permissions(source)  # ACLs still sync, in their own lane, deleting nothing
    assert permissions.checked == 2
    assert Document.objects.filter(source=source, external_id="notes.txt").exists()
    assert first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)

    # The first sync's process is gone, so its lease is not waited out: the next sync takes over at once.
    report = services.sync_source(source)
    slow = Document.objects.get(source=source, external_id="slow.html")
    assert report.deleted == 1 and slow.error.startswith("worker_stopped:")


@pytest.mark.django_db
def test_a_content_sync_does_not_undo_a_permission_sync_that_ran_meanwhile(tmp_path, make_folder_source):
    """Reproduces issue 10 item 13: a content sync's full document.save() wrote back the ACL it had read or
    fetched earlier, over a permission sync's newer ACL."""
    folder = tmp_path / "docs"
    (folder / "finance").mkdir(parents=True)
    (folder / "finance" / "budget.md").write_text("# Budget\n\nThe zeppelin budget is forty thousand euros.\n")
    (folder / "finance" / "report.pdf").write_bytes(make_pdf("Report", [("Zeppelin", "The zeppelin report.")]))

    def readers(*principals: str) -> None:
        (folder / ".citewise-acl.json").write_text(json.dumps({"rules": [{"paths": ["finance/*"],
                                                                          "principals": list(principals)}]}))

    readers("group:finance")
    source = make_folder_source(folder)
    services.sync_source(source)
    services.sync_permissions(source)
    budget = Document.objects.get(source=source, external_id="finance/budget.md")
    report = Document.objects.get(source=source, external_id="finance/report.pdf")
    assert set(found(source, "zeppelin", FINANCE)) == {budget.id, report.id}

    # The budget changes (re-indexed), the report breaks (recorded as failed), and while the content sync
    # is recording them, finance loses access and a permission sync carries that into the index.
    (folder / "finance" / "budget.md").write_text("# Budget\n\nThe zeppelin budget is fifty thousand euros.\n")
    (folder / "finance" / "report.pdf").write_bytes(b"%PDF-1.4 truncated")
    uid = f"permission-sync-meanwhile-{uuid.uuid4().hex}"
    ran = []

    def permission_sync_meanwhile(sender, instance, **kwargs) -> None:
        if not ran and instance.status == Document.Status.ERROR:
            ran.append(True)
            readers("group:executives")
            services.sync_permissions(source)

    pre_save.connect(permission_sync_meanwhile, sender=Document, weak=False, dispatch_uid=uid)
    try:
        content = services.sync_source(source)
    finally:
        pre_save.disconnect(sender=Document, dispatch_uid=uid)
    assert ran and (content.indexed, content.failed) == (1, 1)
    budget.refresh_from_db()
    report.refresh_from_db()
    assert budget.acl_principals == report.acl_principals == ["group:executives"]
    assert found(source, "zeppelin", FINANCE) == []
    assert set(found(source, "zeppelin", EXECUTIVES)) == {budget.id, report.id}
    assert found(source, "fifty thousand", EXECUTIVES) == [budget.id]  # the new content, with the newer ACL
