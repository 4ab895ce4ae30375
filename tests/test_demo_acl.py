"""The demo's ACLs: the same question gets different answers for different employees, a refusal for an outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from answers.services import ask
from identity.models import Account
from identity.selectors import principals_for
from retrieval.selectors import search

pytestmark = pytest.mark.django_db
QUESTION = "How much extra pay do I get for a week of on-call?"


def ask_as(username: str):
    user = get_user_model().objects.get(username=username)
    return ask(QUESTION, principals=principals_for(user), user=user)


def cited(result) -> set[str]:
    return {c.url.split("/corpus/", 1)[1].split("#", 1)[0] for c in result.citations}


def test_two_employees_get_different_answers_and_a_contractor_is_refused(load_demo):
    load_demo()
    engineer, people_team, contractor = ask_as("alice"), ask_as("ben"), ask_as("chris")

    assert not engineer.refused and cited(engineer) == {"runbooks/on-call.md"}
    assert "$400 per week" in engineer.text
    assert not people_team.refused and cited(people_team) == {"handbook/compensation-and-payroll.txt"}
    assert "$400" not in people_team.text and "stipend" in people_team.text
    assert contractor.refused and contractor.citations == []
    # The refusal lists only what the contractor may read: public documents.
    assert all(c.url.split("/corpus/", 1)[1].split("/")[0] in {"facilities", "reference"} for c in contractor.nearest)

    # dave reads engineering documents through platform ⊂ engineering: nested groups expand at query time.
    assert cited(ask_as("dave")) == {"runbooks/on-call.md"}


def test_the_demo_accounts_are_classified_and_an_unclassified_user_reads_public_documents_only(load_demo):
    """Reproduces issue 10 item 2: a signed-in user nobody linked or classified read the demo's internal-only
    IT security documents (org:everyone-except-external); an employee still does, the contractor does not."""
    load_demo()
    get_user_model().objects.create_user("erin", password="pw")

    def folders(username: str) -> set[str]:
        user = get_user_model().objects.get(username=username)
        hits = search("password policy minimum length VPN laptop incident", principals=principals_for(user),
                      limit=100)
        return {hit.url.split("/corpus/", 1)[1].split("/")[0] for hit in hits}

    assert "it-security" in folders("alice")
    assert "it-security" not in folders("chris")
    assert folders("erin") and folders("erin") <= {"facilities", "reference"}, folders("erin")
    assert dict(Account.objects.values_list("user__username", "status")) == {
        "alice": "employee", "dave": "employee", "ben": "employee", "chris": "guest"}
