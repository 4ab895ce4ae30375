"""The admin console's say over who is an employee and who belongs to which group, and the audit trail of both."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from connectors.models import Account, ExternalIdentity
from connectors.selectors import EVERYONE_EXCEPT_EXTERNAL, expanded_principals
from console.models import AuditEvent

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
    response = client.post("/admin/connectors/account/add/", {"user": erin.pk, "status": "employee"})
    assert response.status_code == 302, response.content
    assert Account.objects.get(user=erin).status == "employee"
    assert {EVERYONE_EXCEPT_EXTERNAL, "domain:corp.example"} <= expanded_principals(erin)
    [event] = events("account.status")
    assert (event.actor, event.object_type, event.object_id, event.surface) == (
        admin_user, "auth.user", str(erin.pk), "admin")
    assert (event.detail["from"], event.detail["to"]) == ("unknown", "employee")

    account = Account.objects.get(user=erin)
    response = client.post(f"/admin/connectors/account/{account.pk}/change/", {"user": erin.pk, "status": "guest"})
    assert response.status_code == 302
    assert EVERYONE_EXCEPT_EXTERNAL not in expanded_principals(erin)
    assert [(e.detail["from"], e.detail["to"]) for e in events("account.status")] == [
        ("unknown", "employee"), ("employee", "guest")]

    listed = client.get("/admin/auth/user/", {"account__status__exact": "guest"})
    assert [u.username for u in listed.context["cl"].result_list] == ["erin"]
    assert "Guest or contractor" in listed.content.decode()

