"""Principal expansion details: spelling, cycles, pseudo-principals."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth import get_user_model

from identity.models import Account, ExternalIdentity, Group, GroupMembership
from identity.principals import EVERYONE_EXCEPT_EXTERNAL
from identity.selectors import expanded_principals

pytestmark = pytest.mark.django_db


def test_email_principals_match_whatever_their_case():
    user = get_user_model().objects.create_user("ana")
    Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
    ExternalIdentity.objects.create(user=user, principal="email:Ana.Lima@Corp.Example")
    group = Group.objects.create(principal="group:finance")
    GroupMembership.objects.create(group=group, member="email:ana.lima@corp.example")
    principals = expanded_principals(user)
    assert {"email:ana.lima@corp.example", "domain:corp.example", "group:finance"} <= principals


def test_cycles_end_and_external_users_are_not_everyone_except_external():
    user = get_user_model().objects.create_user("guest")
    ExternalIdentity.objects.create(user=user, principal="email:guest@partner.example", is_external=True)
    a, b, c = (Group.objects.create(principal=f"group:{n}") for n in "abc")
    GroupMembership.objects.bulk_create([
        GroupMembership(group=a, member="email:guest@partner.example"),
        GroupMembership(group=b, member="group:a"), GroupMembership(group=c, member="group:b"),
        GroupMembership(group=a, member="group:c"),  # a ⊂ b ⊂ c ⊂ a
        GroupMembership(group=c, member="group:never-synced"),
    ])
    principals = expanded_principals(user)
    assert {"group:a", "group:b", "group:c"} <= principals
    assert EVERYONE_EXCEPT_EXTERNAL not in principals and "domain:partner.example" not in principals
    user.is_active = False
    user.save()
    assert expanded_principals(user) == frozenset()


def test_the_group_sync_task_alone_changes_access_at_the_next_query(tmp_path):
    from connectors import services, tasks

    (tmp_path / ".citewise-acl.json").write_text('{"groups": {"group:ops": ["email:ana@corp.example"]}, '
                                                 '"rules": [{"paths": ["*"], "principals": ["group:ops"]}]}')
    source = services.ensure_source("filesystem", tmp_path)
    user = get_user_model().objects.create_user("ana")
    ExternalIdentity.objects.create(user=user, principal="email:ana@corp.example")
    assert "group:ops" not in expanded_principals(user)
    assert tasks.sync_groups.delay(source.id).get() == {"source_id": source.id, "groups": 1, "memberships": 1}
    assert "group:ops" in expanded_principals(user)
    (tmp_path / ".citewise-acl.json").write_text('{"groups": {"group:ops": []}, "rules": []}')
    tasks.sync_groups.delay(source.id).get()
    assert "group:ops" not in expanded_principals(user)


def test_only_employees_read_as_everyone_internal_and_as_their_domain():
    """Reproduces issue 10 item 2: a signed-in user with no linked identity (or one nobody classified) counted as
    internal and got org:everyone-except-external; unknown must mean hidden."""
    users = get_user_model().objects

    def principals_of(name: str, status: str | None, *identities: tuple[str, bool]) -> frozenset[str]:
        user = users.create_user(name)
        for principal, external in identities:
            ExternalIdentity.objects.create(user=user, principal=principal, is_external=external)
        if status is not None:
            Account.objects.create(user=user, status=status)
        return expanded_principals(user)

    assert principals_of("newcomer", None) == {"citewise:user:newcomer"}
    assert principals_of("unsure", "unknown", ("email:unsure@corp.example", False)) == {
        "citewise:user:unsure", "email:unsure@corp.example"}
    # A guest with an address at our domain is still not "anyone at corp.example".
    assert principals_of("visitor", "guest", ("email:visitor@corp.example", False)) == {
        "citewise:user:visitor", "email:visitor@corp.example"}
    assert principals_of("ana", "employee", ("email:ana@corp.example", False)) == {
        "citewise:user:ana", "email:ana@corp.example", "domain:corp.example", EVERYONE_EXCEPT_EXTERNAL}
    # An employee with no identity at all, once an admin says so, is internal; one with a guest identity is not.
    assert EVERYONE_EXCEPT_EXTERNAL in principals_of("bo", "employee")
    assert principals_of("cy", "employee", ("email:cy@corp.example", False), ("slack:TP:user:U1", True)) == {
        "citewise:user:cy", "email:cy@corp.example", "slack:TP:user:U1", "domain:corp.example"}


def test_the_status_migration_keeps_demonstrably_internal_users_internal():
    """Reproduces issue 10 item 2: existing users keep today's access only where it was earned: identities and
    none external → employee, any external identity → guest, no identity → unknown."""
    from django.apps import apps

    class AppsWhenItRan:
        """The migration names the models as the connectors app's, whose they were then (identity's now)."""

        def get_model(self, app_label: str, model_name: str):
            return apps.get_model("identity" if app_label == "connectors" else app_label, model_name)

    migration = importlib.import_module("connectors.migrations.0005_account_status")
    users = get_user_model().objects
    staff, guest, contractor, bare, decided = (users.create_user(n) for n in
                                               ("staff", "guest", "contractor", "bare", "decided"))
    ExternalIdentity.objects.create(user=staff, principal="email:staff@corp.example")
    ExternalIdentity.objects.create(user=staff, principal="slack:T1:user:USTAFF")
    ExternalIdentity.objects.create(user=guest, principal="email:guest@partner.example", is_external=True)
    ExternalIdentity.objects.create(user=contractor, principal="email:contractor@corp.example")
    ExternalIdentity.objects.create(user=contractor, principal="slack:TP:user:UC", is_external=True)
    Account.objects.create(user=decided, status="guest")  # already classified: left alone
    migration.status_from_identities(AppsWhenItRan(), None)
    statuses = dict(Account.objects.values_list("user__username", "status"))
    assert statuses == {"staff": "employee", "guest": "guest", "contractor": "guest", "bare": "unknown",
                        "decided": "guest"}
    assert EVERYONE_EXCEPT_EXTERNAL in expanded_principals(staff)
    assert EVERYONE_EXCEPT_EXTERNAL not in expanded_principals(bare)


def test_many_users_expand_together_as_each_would_alone_in_the_queries_of_one():
    """A channel's members are expanded at once (bot channel-safe answers): the same principals as one by one,
    with one query per level of group nesting rather than per member."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from identity.selectors import expanded_principals_of

    users = get_user_model().objects
    a, b, c = (Group.objects.create(principal=f"group:{n}") for n in "abc")
    GroupMembership.objects.bulk_create([
        GroupMembership(group=a, member="email:ana@corp.example"), GroupMembership(group=b, member="group:a"),
        GroupMembership(group=c, member="group:b"), GroupMembership(group=a, member="group:c"),  # a cycle
        GroupMembership(group=b, member="citewise:user:bo"),
        GroupMembership(group=c, member="email:cy@corp.example", revoked_at="2026-01-01T00:00:00Z"),
    ])
    members = []
    for name, status, identities in (
            ("ana", "employee", [("email:Ana@corp.example", False)]), ("bo", "guest", []),
            ("cy", "employee", [("email:cy@corp.example", False), ("slack:TP:user:UC", True)]),
            ("dee", None, [])):
        user = users.create_user(name)
        for principal, external in identities:
            ExternalIdentity.objects.create(user=user, principal=principal, is_external=external)
        if status is not None:
            Account.objects.create(user=user, status=status)
        members.append(user)
    gone = users.create_user("gone", is_active=False)
    one_by_one, most_alone = {}, 0
    for user in members:
        with CaptureQueriesContext(connection) as alone:
            one_by_one[user.pk] = expanded_principals(user)
        most_alone = max(most_alone, len(alone.captured_queries))
    with CaptureQueriesContext(connection) as together:
        assert expanded_principals_of([*members, gone]) == one_by_one
    assert len(together.captured_queries) <= most_alone
