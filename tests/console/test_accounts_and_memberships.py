"""The admin console's say over who is an employee and who belongs to which group, and the audit trail of both."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model

from audit.models import AuditEvent
from connectors import services as connectors
from identity.models import Account, ExternalIdentity, Group, GroupMembership
from identity.principals import EVERYONE_EXCEPT_EXTERNAL
from identity.selectors import expanded_principals, principals_for
from retrieval.selectors import search

pytestmark = pytest.mark.django_db


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# -- account status ----------------------------------------------------------------------------------------


def test_an_admin_classifies_a_user_and_the_change_is_audited(client, admin_user):
    """Reproduces issue 10 item 2: employee/guest status must be stored on the user and editable in the console;
    until an admin says "employee", a user is not internal."""
    erin = get_user_model().objects.create_user("erin", "erin@corp.example", "pw")
    ExternalIdentity.objects.create(user=erin, principal="email:erin@corp.example")
    assert EVERYONE_EXCEPT_EXTERNAL not in expanded_principals(erin)
    client.force_login(admin_user)

    user_page = client.get(f"/admin/auth/user/{erin.pk}/change/").content.decode()
    assert 'name="account-0-status"' in user_page  # editable on the user's own page
    response = client.post("/admin/identity/account/add/", {"user": erin.pk, "status": "employee"})
    assert response.status_code == 302, response.content
    assert Account.objects.get(user=erin).status == "employee"
    assert {EVERYONE_EXCEPT_EXTERNAL, "domain:corp.example"} <= expanded_principals(erin)
    [event] = events("account.status")
    assert (event.actor, event.object_type, event.object_id, event.surface) == (
        admin_user, "auth.user", str(erin.pk), "admin")
    assert (event.detail["from"], event.detail["to"]) == ("unknown", "employee")

    account = Account.objects.get(user=erin)
    response = client.post(f"/admin/identity/account/{account.pk}/change/", {"user": erin.pk, "status": "guest"})
    assert response.status_code == 302
    assert EVERYONE_EXCEPT_EXTERNAL not in expanded_principals(erin)
    assert [(e.detail["from"], e.detail["to"]) for e in events("account.status")] == [
        ("unknown", "employee"), ("employee", "guest")]

    listed = client.get("/admin/auth/user/", {"account__status__exact": "guest"})
    assert [u.username for u in listed.context["cl"].result_list] == ["erin"]
    assert "Guest or contractor" in listed.content.decode()


# -- group memberships: who owns them, and revocations that stick ---------------------------------------------


def write_ops_corpus(folder: Path, members: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rota.md").write_text("# Ops rota\n\nThe ops pager rota code is 731904.\n")
    (folder / ".citewise-acl.json").write_text(json.dumps({
        "groups": {"group:ops": members}, "rules": [{"paths": ["*"], "principals": ["group:ops"]}]}))


def sees_the_rota(user) -> bool:
    hits = search("ops pager rota code", principals=principals_for(user), limit=10)
    return any("731904" in hit.text for hit in hits)


def inline_post(group: Group, rows: list[dict], *, extra: list[dict] = ()) -> dict:
    """The Group change form as the admin submits it, with its memberships inline."""
    data = {"principal": group.principal, "name": group.name, "source": group.source_id or "",
            "memberships-TOTAL_FORMS": str(len(rows) + len(extra)), "memberships-INITIAL_FORMS": str(len(rows)),
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000"}
    for i, row in enumerate([*rows, *extra]):
        for key, value in row.items():
            data[f"memberships-{i}-{key}"] = value
        data[f"memberships-{i}-group"] = str(group.pk)
    return data


@pytest.fixture
def ops(tmp_path, isolated_index):
    """ana is in group:ops by the source's manifest, which alone may read the rota; bo is not."""
    folder = tmp_path / "ops"
    write_ops_corpus(folder, ["email:ana@corp.example"])
    source = connectors.ensure_source("filesystem", folder, name="ops")
    assert connectors.sync_source(source).indexed == 1
    connectors.sync_permissions(source)
    users = {}
    for name in ("ana", "bo"):
        users[name] = get_user_model().objects.create_user(name, f"{name}@corp.example", "pw")
        ExternalIdentity.objects.create(user=users[name], principal=f"email:{name}@corp.example")
        Account.objects.create(user=users[name], status="employee")
    return SimpleNamespace(folder=folder, source=source, group=Group.objects.get(principal="group:ops"), **users)


def test_a_membership_revoked_in_the_console_stays_revoked_after_the_next_sync(client, admin_user, ops):
    """Reproduces issue 10 item 5: an admin removed ana from a source-synced group by hand, and the next manifest
    sync put her back."""
    membership = GroupMembership.objects.get(group=ops.group, member="email:ana@corp.example")
    assert sees_the_rota(ops.ana)
    client.force_login(admin_user)
    response = client.post(f"/admin/identity/group/{ops.group.pk}/change/", inline_post(
        ops.group, [{"id": str(membership.pk), "member": membership.member, "DELETE": "on"}]), follow=True)
    assert response.status_code == 200 and not sees_the_rota(ops.ana)
    connectors.sync_permissions(ops.source)  # the manifest still lists ana
    assert not sees_the_rota(ops.ana) and "group:ops" not in expanded_principals(ops.ana)

    assert "revoked rather than deleted" in response.content.decode()
    page = client.get(f"/admin/identity/group/{ops.group.pk}/change/").content.decode()
    assert "Synced from the source" in page  # who owns each row is shown
    membership.refresh_from_db()
    assert membership.revoked and membership.revoked_by == admin_user
    [event] = AuditEvent.objects.filter(action="membership.revoke")
    assert (event.actor, event.object_id, event.detail["member"], event.detail["group"]) == (
        admin_user, str(membership.pk), "email:ana@corp.example", "group:ops")

    # The console lists it as revoked, with who and when; the revocation can be lifted.
    listing = client.get("/admin/identity/groupmembership/", {"state": "revoked"})
    assert [m.pk for m in listing.context["cl"].result_list] == [membership.pk]
    assert "revoked" in listing.content.decode() and admin_user.username in listing.content.decode()
    client.post("/admin/identity/groupmembership/", {"action": "lift_selected",
                                                       "_selected_action": [str(membership.pk)]})
    assert sees_the_rota(ops.ana)
    connectors.sync_permissions(ops.source)
    assert sees_the_rota(ops.ana)
    assert AuditEvent.objects.filter(action="membership.restore", object_id=str(membership.pk)).exists()


def test_a_membership_added_in_the_console_is_never_removed_by_a_source_sync(client, admin_user, ops):
    """Reproduces issue 10 item 5: a sync replaced every membership of a source's group, so bo, added by an
    admin, lost access at the next manifest sync."""
    ana = GroupMembership.objects.get(group=ops.group, member="email:ana@corp.example")
    client.force_login(admin_user)
    client.post(f"/admin/identity/group/{ops.group.pk}/change/", inline_post(
        ops.group, [{"id": str(ana.pk), "member": ana.member}], extra=[{"member": "email:bo@corp.example"}]))
    assert sees_the_rota(ops.bo)
    connectors.sync_permissions(ops.source)
    assert sees_the_rota(ops.bo)
    bo = GroupMembership.objects.get(group=ops.group, member="email:bo@corp.example")
    assert bo.origin == "local"
    write_ops_corpus(ops.folder, [])  # the source drops everyone, and then the group itself
    connectors.sync_permissions(ops.source)
    assert sees_the_rota(ops.bo) and not sees_the_rota(ops.ana)
    (ops.folder / ".citewise-acl.json").write_text(json.dumps({
        "groups": {}, "rules": [{"paths": ["*"], "principals": ["group:ops"]}]}))
    connectors.sync_permissions(ops.source)
    assert sees_the_rota(ops.bo)
    listing = client.get("/admin/identity/groupmembership/", {"origin__exact": "local"})
    assert [m.member for m in listing.context["cl"].result_list] == ["email:bo@corp.example"]
    # Removing a local membership is a plain delete, audited too.
    client.post("/admin/identity/groupmembership/", {"action": "remove_selected",
                                                       "_selected_action": [str(bo.pk)]})
    assert not GroupMembership.objects.filter(pk=bo.pk).exists() and not sees_the_rota(ops.bo)
    assert AuditEvent.objects.filter(action="membership.delete", object_id=str(bo.pk)).exists()


def test_a_synced_member_cannot_be_edited_into_someone_else(client, admin_user, ops):
    """Reproduces issue 10 item 5: editing a source-synced row's member would be undone by the next sync (and
    re-grant the original member); the console refuses with a clear message."""
    ana = GroupMembership.objects.get(group=ops.group, member="email:ana@corp.example")
    client.force_login(admin_user)
    response = client.post(f"/admin/identity/group/{ops.group.pk}/change/", inline_post(
        ops.group, [{"id": str(ana.pk), "member": "email:bo@corp.example"}]))
    assert response.status_code == 200 and "cannot be edited here" in response.content.decode()
    ana.refresh_from_db()
    assert ana.member == "email:ana@corp.example"


def test_a_source_synced_group_is_not_deleted_in_the_console_but_its_source_can_be(client, admin_user, ops):
    """A group the source defines would come back with the next sync, so the console refuses to delete it and
    says why; deleting the source itself still deletes its groups (the refusal must not block the cascade)."""
    client.force_login(admin_user)
    response = client.post(f"/admin/identity/group/{ops.group.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "was not deleted: the next sync would bring it back" in response.content.decode()
    assert Group.objects.filter(pk=ops.group.pk).exists()

    response = client.post(f"/admin/connectors/source/{ops.source.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Group.objects.filter(pk=ops.group.pk).exists()
