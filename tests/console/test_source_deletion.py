"""Deleting a source removes its passages from search first; if the index cannot confirm, nothing is deleted."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import call_command
from django.db import connection, transaction

from connectors import services as connectors_services
from connectors.models import Document, Source
from identity.selectors import principals_for
from retrieval import selectors
from retrieval import services as retrieval_services
from search.types import SearchMode, SearchUnavailable
from tests.console.conftest import BUDGET_QUESTION, auth, finance_document, index_corpus, write_corpus

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(tmp_path, main_index) -> Source:
    return index_corpus(write_corpus(tmp_path / "docs"))


def budget_titles(user) -> set[str]:
    hits = selectors.search("travel budget 2025", principals=principals_for(user), mode=SearchMode.BM25)
    return {h.title for h in hits}


def ask(client, user) -> dict:
    response = client.post("/api/v1/ask", json.dumps({"question": BUDGET_QUESTION}), content_type="application/json",
                           headers=auth(user))
    assert response.status_code == 200, response.content
    return response.json()


def delete_in_admin(client, admin_user, source: Source, how: str):
    client.force_login(admin_user)
    if how == "admin":
        return client.post(f"/admin/connectors/source/{source.pk}/delete/", {"post": "yes"}, follow=True)
    return client.post("/admin/connectors/source/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: [source.pk],
                                                     "post": "yes"}, follow=True)


def delete_source(client, admin_user, source: Source, how: str):
    if how == "orm instance":
        return source.delete()
    if how == "orm queryset":
        return Source.objects.filter(pk=source.pk).delete()
    return delete_in_admin(client, admin_user, source, how)


@pytest.mark.parametrize(("how", "page_size"), [
    ("admin", 1000), ("admin bulk", 1000), ("orm instance", 1000), ("orm queryset", 1000),
    ("orm instance", 1),  # the index's ids read and deleted a page at a time, here one by one
])
def test_a_deleted_sources_passages_are_neither_searchable_nor_citable(
        client, indexed, alice, admin_user, how, page_size, monkeypatch):
    """Reproduces issue 10 item 7: deleting a Source cascades its Document rows away and leaves its chunks in
    the index, searchable and citable."""
    monkeypatch.setattr(connectors_services, "INDEX_PAGE_SIZE", page_size)
    budget = finance_document(indexed)
    assert budget_titles(alice) == {"Travel budget"}
    assert ask(client, alice)["citations"]  # and now the answer is cached, too

    delete_source(client, admin_user, indexed, how)

    assert not Source.objects.filter(pk=indexed.pk).exists() and not Document.objects.exists()
    assert retrieval_services.get_backend().document_ids() == set()
    assert budget_titles(alice) == set()
    answer = ask(client, alice)
    assert answer["refused"] and not answer["citations"]
    assert client.get(f"/api/v1/documents/{budget.id}", headers=auth(alice)).status_code == 404


@contextmanager
def index_unreachable(kind: str, settings, tmp_path: Path):
    """Elasticsearch: the URL points at a closed port. Embedded: the live file cannot be opened."""
    backend = retrieval_services.get_backend()
    if kind == "elasticsearch":
        saved = settings.CITEWISE
        settings.CITEWISE = saved.replace(elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout_s=2)
        retrieval_services._backends.clear()
        try:
            yield
        finally:
            settings.CITEWISE = saved
            retrieval_services._backends.clear()
            retrieval_services._backends[(kind, saved.index_name)] = backend  # main_index drops it
        return
    live = Path(backend.index_info().physical_name)
    backend.drop_connection()
    aside = tmp_path / "aside"
    aside.mkdir()
    moved = [p for p in live.parent.iterdir() if p.name.startswith(live.name)]
    for path in moved:
        shutil.move(path, aside / path.name)
    live.mkdir()  # where the file was, something SQLite cannot open
    try:
        yield
    finally:
        live.rmdir()
        for path in moved:
            shutil.move(aside / path.name, path)


@pytest.mark.parametrize("how", ["admin", "admin bulk", "orm instance"])
def test_a_source_delete_the_index_cannot_confirm_fails_clearly_and_keeps_everything(
        client, indexed, alice, admin_user, how, main_index, settings, tmp_path):
    """Reproduces issue 10 item 7: a source is deleted whether or not its passages could be removed from the
    index, so an outage leaves them searchable with no row left to remove them by."""
    documents = Document.objects.filter(source=indexed).count()
    with index_unreachable(main_index, settings, tmp_path):
        if how == "orm instance":
            # Its own transaction, as in autocommit code; the test's surrounding one stays usable.
            with pytest.raises(SearchUnavailable), transaction.atomic():
                indexed.delete()
        else:
            response = delete_in_admin(client, admin_user, indexed, how)
            assert response.status_code == 200
            shown = [str(m) for m in response.context["messages"]]
            assert any("was not deleted" in m and "search index" in m for m in shown), shown
        assert Source.objects.filter(pk=indexed.pk).exists()
        assert Document.objects.filter(source=indexed).count() == documents

    # Nothing half-done: the passages are all still there, and the delete goes through once the index is back.
    assert budget_titles(alice) == {"Travel budget"}
    delete_source(client, admin_user, indexed, how)
    assert not Source.objects.filter(pk=indexed.pk).exists()
    assert budget_titles(alice) == set()


@pytest.mark.parametrize("page_size", [1000, 1])
def test_passages_of_sources_deleted_before_are_removed_by_reconcile_index(
        indexed, alice, capsys, page_size, monkeypatch):
    """Reproduces issue 10 item 7: documents orphaned by earlier deletions (the source's rows went, its chunks
    stayed) stay searchable for good."""
    monkeypatch.setattr(connectors_services, "INDEX_PAGE_SIZE", page_size)
    with connection.cursor() as cursor:  # what deleting a source did before: rows only
        cursor.execute("DELETE FROM connectors_document WHERE source_id = %s", [indexed.pk])
        cursor.execute("DELETE FROM identity_groupmembership WHERE group_id IN "
                       "(SELECT id FROM identity_group WHERE source_id = %s)", [indexed.pk])
        cursor.execute("DELETE FROM identity_group WHERE source_id = %s", [indexed.pk])
        cursor.execute("DELETE FROM connectors_syncrun WHERE source_id = %s", [indexed.pk])
        cursor.execute("DELETE FROM connectors_source WHERE id = %s", [indexed.pk])
    assert kitchen_titles() == {"Kitchen"}

    call_command("reconcile_index")

    assert "removed 2 documents" in capsys.readouterr().out
    assert kitchen_titles() == set()
    assert retrieval_services.get_backend().document_ids() == set()


def kitchen_titles() -> set[str]:
    hits = selectors.search("espresso machine descaled", principals=frozenset(), mode=SearchMode.BM25)
    return {h.title for h in hits}


@pytest.mark.parametrize("how", ["admin", "admin bulk"])
def test_a_document_deleted_in_the_admin_leaves_the_index_first(client, indexed, alice, admin_user, how):
    """Reproduces issue 10 item 7 for a single document: deleting a Document row in the admin leaves its
    chunks searchable."""
    budget = finance_document(indexed)
    client.force_login(admin_user)
    if how == "admin":
        client.post(f"/admin/connectors/document/{budget.pk}/delete/", {"post": "yes"})
    else:
        client.post("/admin/connectors/document/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: [budget.pk],
                                                      "post": "yes"})
    assert not Document.objects.filter(pk=budget.pk).exists()
    assert budget.pk not in retrieval_services.get_backend().document_ids()
    assert budget_titles(alice) == set()
    assert kitchen_titles() == {"Kitchen"}
