"""The demo's ACLs: the same question gets different answers for different employees, a refusal for an outsider."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from search.answering.services import ask
from search.identity import principals_for

pytestmark = pytest.mark.django_db
QUESTION = "How much extra pay do I get for a week of on-call?"


def ask_as(username: str):
    user = get_user_model().objects.get(username=username)
    return ask(QUESTION, principals=principals_for(user), user=user)


def cited(result) -> set[str]:
    return {c.url.split("/corpus/", 1)[1].split("#", 1)[0] for c in result.citations}


def test_two_employees_get_different_answers_and_a_contractor_is_refused(isolated_index):
    call_command("load_demo", no_admin=True)
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
