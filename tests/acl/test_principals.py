"""Principal expansion details: spelling, cycles, pseudo-principals."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from connectors.models import ExternalIdentity, Group, GroupMembership
from connectors.selectors import EVERYONE_EXCEPT_EXTERNAL, expanded_principals

pytestmark = pytest.mark.django_db


def test_email_principals_match_whatever_their_case():
    user = get_user_model().objects.create_user("ana")
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
