"""Source links: a document's details, or a redirect to it, only for someone who may read it now."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from connectors import services as connectors
from identity.selectors import principals_for
from retrieval import selectors
from tests.console.conftest import auth, finance_document, index_corpus, public_document, write_corpus, write_manifest

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed(tmp_path, main_index):
    folder = write_corpus(tmp_path / "docs")
    return folder, index_corpus(folder)


def document_url(document_id: str) -> str:
    return f"/api/v1/documents/{document_id}"


def test_readable_document_follows_the_index_acl(indexed, alice, bob):
    _, source = indexed
    budget = finance_document(source)
    document = selectors.readable_document(budget.id, principals_for(alice))
    assert document is not None and (document.document_id, document.title) == (budget.id, "Travel budget")
    assert document.url == budget.url and document.source_id == str(source.pk)
    assert selectors.readable_document(budget.id, principals_for(bob)) is None
    assert selectors.readable_document(budget.id, frozenset()) is None
    assert selectors.readable_document(public_document(source).id, frozenset()) is not None
    assert selectors.readable_document("0" * 32, principals_for(alice)) is None
    with pytest.raises(TypeError):
        selectors.readable_document(budget.id, set(principals_for(alice)))


def test_the_documents_endpoint_is_200_when_readable_and_404_otherwise(client, indexed, alice, bob):
    folder, source = indexed
    budget = finance_document(source)

    response = client.get(document_url(budget.id), headers=auth(alice))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {"document_id": budget.id, "title": "Travel budget", "url": budget.url,
                    "source_type": "Markdown", "mime_type": "text/markdown", "source_kind": "filesystem",
                    "modified_at": budget.source_modified_at.isoformat(), "effective_date": None}

    # Forbidden looks exactly like missing: 404 with the same body, never 403.
    forbidden = client.get(document_url(budget.id), headers=auth(bob))
    missing = client.get(document_url("f" * 32), headers=auth(bob))
    assert (forbidden.status_code, forbidden.json()) == (missing.status_code, missing.json()) == (
        404, {"detail": "unknown document", "code": "not_found"})
    assert client.get(document_url(public_document(source).id), headers=auth(bob)).status_code == 200
    assert client.get(document_url(budget.id)).status_code == 401

    # Revoked at the source, visible to nobody after the next permission sync.
    write_manifest(folder, finance_members=[])
    connectors.sync_permissions(source)
    assert client.get(document_url(budget.id), headers=auth(alice)).status_code == 404

    seen = [(e.actor.username, e.detail["visible"]) for e in AuditEvent.objects.filter(
        action="document.view", object_id=budget.id).order_by("id")]
    assert seen == [("alice", True), ("bob", False), ("alice", False)]


def test_open_redirects_to_the_document_only_when_readable(client, indexed, alice, bob):
    _, source = indexed
    budget = finance_document(source)
    url = f"/documents/{budget.id}/open"

    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")

    client.force_login(alice)
    response = client.get(url)
    # A file: browsers refuse file:// links from a web page, so it opens in the built-in viewer.
    assert budget.url.startswith("file://")
    assert response.status_code == 302 and response["Location"] == f"/documents/{budget.id}"

    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert client.get("/documents/not-a-document/open").status_code == 404
    events = AuditEvent.objects.filter(action="document.open", object_id=budget.id).order_by("id")
    assert [(e.actor.username, e.detail["visible"]) for e in events] == [("alice", True), ("bob", False)]
