"""The console's user page: identities, account status and every principal the user reads as, each with the route
that gives it; linking and unlinking identities, and every look, audited."""

from __future__ import annotations

import html

import pytest

from audit.models import AuditEvent
from identity.models import ExternalIdentity

pytestmark = pytest.mark.django_db


def test_a_user_s_identities_groups_and_effective_principals_on_one_page(client, corpus, alice, admin_user):
    client.force_login(admin_user)
    page = html.unescape(client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode())
    assert 'value="email:alice@corp.example"' in page  # the identity, in its inline
    assert "<code>group:finance</code> — members of the group “finance” (group:finance) " \
           "(through email:alice@corp.example)" in page
    assert "<code>org:everyone-except-external</code> — everyone in the organisation except guests" in page
    assert AuditEvent.objects.filter(action="admin.view", object_type="auth.user", object_id=str(alice.pk)).exists()


def test_linking_and_unlinking_an_identity_is_audited(client, alice, admin_user):
    client.force_login(admin_user)
    response = client.post("/admin/identity/externalidentity/add/",
                           {"principal": "slack:T1:user:U9", "user": alice.pk, "is_external": ""})
    assert response.status_code == 302
    identity = ExternalIdentity.objects.get(principal="slack:T1:user:U9")
    link = AuditEvent.objects.get(action="identity.link")
    assert (link.actor, link.detail["principal"], link.detail["user"]) == (admin_user, "slack:T1:user:U9", "alice")
    response = client.post(f"/admin/identity/externalidentity/{identity.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not ExternalIdentity.objects.filter(pk=identity.pk).exists()
    assert AuditEvent.objects.get(action="identity.unlink").detail == {"principal": "slack:T1:user:U9",
                                                                       "user": "alice"}
    assert AuditEvent.objects.filter(action="admin.change", object_type="identity.externalidentity").count() == 2
