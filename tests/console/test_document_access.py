"""The console's document page: the ACL in plain words, the indexed text, who can read it and why a given user
cannot — explained through identities and groups, checked against the search index, every look audited."""

from __future__ import annotations

import html

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from connectors.models import Document
from identity.models import GroupMembership
from tests.console.conftest import finance_document, make_user, public_document

pytestmark = pytest.mark.django_db


def access_page(client, document: Document, **params):
    response = client.get(f"/admin/connectors/document/{document.pk}/access/", params)
    assert response.status_code == 200
    return response


def test_the_document_page_says_who_may_read_it_in_words_and_shows_its_indexed_text(client, corpus, admin_user):
    _, source = corpus
    client.force_login(admin_user)
    page = client.get(f"/admin/connectors/document/{finance_document(source).pk}/change/").content.decode()
    assert "members of the group “finance” (group:finance)" in page and "<code>group:finance</code>" in page
    assert "40,000 euros" in page  # the chunk as indexed
    assert f"/admin/connectors/document/{finance_document(source).pk}/access/" in page
    public = client.get(f"/admin/connectors/document/{public_document(source).pk}/change/").content.decode()
    assert "Public: every signed-in user may read it." in public


def test_who_can_read_it_and_why_a_user_cannot(client, corpus, alice, bob, admin_user):
    _, source = corpus
    document = finance_document(source)
    client.force_login(admin_user)

    response = access_page(client, document)
    access = response.context["access"]
    assert access.readers_total == 1 and [reader.username for reader, _ in access.readers] == ["alice"]
    assert response.context["readers"][0][1] == ("the person with the email address alice@corp.example → "
                                                 "members of the group “finance” (group:finance)")

    bob_explained = access_page(client, document, user="bob@corp.example").context["explanation"]
    assert (bob_explained.can_read, bob_explained.index_can_read) == (False, False)
    assert "bob holds none of the principals" in bob_explained.steps[0]
    assert "the person with the email address bob@corp.example" in bob_explained.steps[1]

    alice_explained = access_page(client, document, user="alice").context["explanation"]
    assert (alice_explained.can_read, alice_explained.index_can_read) == (True, True)
    assert alice_explained.steps[0].startswith("alice may read it through: the person with the email address")

    # An administrator revokes alice's membership in Citewise: she loses it at once, and the page says why.
    GroupMembership.objects.filter(group__principal="group:finance", member="email:alice@corp.example").update(
        revoked_at=timezone.now(), revoked_by=admin_user)
    revoked = access_page(client, document, user="alice").context["explanation"]
    assert (revoked.can_read, revoked.index_can_read) == (False, False)
    assert any("membership of group:finance was revoked in Citewise by root" in step for step in revoked.steps)
    assert access_page(client, document).context["access"].readers_total == 0

    checks = AuditEvent.objects.filter(action="document.access_check", object_id=document.pk)
    assert checks.count() == 5 and checks.filter(detail__user="bob@corp.example", detail__can_read=False).exists()


def test_unknown_permissions_hide_it_from_everyone_and_the_page_says_why(client, corpus, alice, admin_user):
    _, source = corpus
    document = finance_document(source)
    Document.objects.filter(pk=document.pk).update(acl_status="unknown", acl_reason="the space's permissions API said 403")
    document.refresh_from_db()
    client.force_login(admin_user)
    response = access_page(client, document, user="alice")
    assert "its permissions are unknown (the space's permissions API said 403)" in html.unescape(
        response.content.decode())
    assert response.context["explanation"].can_read is False
    assert access_page(client, document, user="nobody-like-this").context["user_found"] is None


def test_only_administrators_see_it(client, corpus):
    _, source = corpus
    client.force_login(make_user("carol"))
    assert client.get(f"/admin/connectors/document/{finance_document(source).pk}/access/").status_code == 403
