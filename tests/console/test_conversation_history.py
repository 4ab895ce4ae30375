"""Conversation history through /api/v1/conversations: the asker's own conversations only, reopened with each
answer re-checked against what they may read now, renamed, deleted for good; and votes that change instead of
piling up."""

from __future__ import annotations

import pytest

from answers.models import Feedback
from audit.models import AuditEvent
from connectors import services as connectors
from tests.console.conftest import BUDGET_QUESTION, KITCHEN_QUESTION, auth, write_manifest

pytestmark = pytest.mark.django_db

LIST = "/api/v1/conversations"


def ask(client, user, question: str, conversation_id: str | None = None) -> dict:
    body = {"question": question, **({"conversation_id": conversation_id} if conversation_id else {})}
    response = client.post("/api/v1/ask", body, content_type="application/json", headers=auth(user))
    assert response.status_code == 200, response.content
    return response.json()


def test_the_history_lists_only_ones_own_conversations_newest_first(client, corpus, alice, bob):
    first = ask(client, alice, KITCHEN_QUESTION)
    ask(client, alice, "And who does it?", first["conversation_id"])
    second = ask(client, alice, BUDGET_QUESTION)
    ask(client, bob, KITCHEN_QUESTION)

    listed = client.get(LIST, headers=auth(alice)).json()["conversations"]
    assert [(c["id"], c["title"], c["turns"], c["renamed"]) for c in listed] == [
        (second["conversation_id"], BUDGET_QUESTION, 1, False),
        (first["conversation_id"], KITCHEN_QUESTION, 2, False),
    ]
    assert [c["title"] for c in client.get(LIST, headers=auth(bob)).json()["conversations"]] == [KITCHEN_QUESTION]
    # Someone else's conversation is the same 404 as one that does not exist, for every method.
    other = f"{LIST}/{first['conversation_id']}"
    assert client.get(other, headers=auth(bob)).status_code == 404
    assert client.patch(other, {"title": "mine"}, content_type="application/json", headers=auth(bob)).status_code == 404
    assert client.delete(other, headers=auth(bob)).status_code == 404
    assert client.get(LIST).status_code == 401


def test_reopening_shows_each_answer_with_its_sources_and_vote_and_withholds_what_is_no_longer_readable(
        client, corpus, alice):
    folder, source = corpus
    budget = ask(client, alice, BUDGET_QUESTION)
    kitchen = ask(client, alice, KITCHEN_QUESTION, budget["conversation_id"])
    assert not budget["refused"] and "40,000" in budget["answer"]
    client.post(f"/api/v1/answers/{kitchen['answer_id']}/feedback", {"kind": "up"}, content_type="application/json",
                headers=auth(alice))
    url = f"{LIST}/{budget['conversation_id']}"

    turns = client.get(url, headers=auth(alice)).json()["turns"]
    assert [(t["question"], t["withheld"], t["vote"]) for t in turns] == [
        (BUDGET_QUESTION, False, ""), (KITCHEN_QUESTION, False, "up")]
    assert "40,000" in turns[0]["answer"] and "40,000" in turns[0]["answer_html"]
    assert turns[0]["citations"][0]["title"] == budget["citations"][0]["title"]

    # Alice leaves finance: the budget answer quoted a document she may no longer read, so neither its text nor
    # its sources come back; the kitchen answer, from a public document, still does.
    write_manifest(folder, finance_members=[])
    connectors.sync_permissions(source)
    body = client.get(url, headers=auth(alice)).content.decode()
    turns = client.get(url, headers=auth(alice)).json()["turns"]
    assert (turns[0]["withheld"], turns[0]["citations"]) == (True, [])
    assert "40,000" not in body and "Travel budget" not in body
    assert turns[1]["withheld"] is False and "Friday" in turns[1]["answer"]


def test_renaming_and_deleting_a_conversation(client, corpus, alice):
    conversation_id = ask(client, alice, KITCHEN_QUESTION)["conversation_id"]
    url = f"{LIST}/{conversation_id}"
    for bad in ({"title": "   "}, {"title": "x" * 201}, {"title": 7}, {}):
        response = client.patch(url, bad, content_type="application/json", headers=auth(alice))
        assert response.status_code == 400, (bad, response.content)
    response = client.patch(url, {"title": "  Coffee\n machine  "}, content_type="application/json", headers=auth(alice))
    assert response.status_code == 200 and response.json() == {"title": "Coffee machine"}
    assert client.get(LIST, headers=auth(alice)).json()["conversations"][0]["title"] == "Coffee machine"

    assert client.delete(url, headers=auth(alice)).status_code == 204
    assert client.get(LIST, headers=auth(alice)).json()["conversations"] == []
    assert client.get(url, headers=auth(alice)).status_code == 404
    assert client.delete(url, headers=auth(alice)).status_code == 404
    # Never continued again either; the record stays for the audit trail.
    response = client.post("/api/v1/ask", {"question": "And who does it?", "conversation_id": conversation_id},
                           content_type="application/json", headers=auth(alice))
    assert response.status_code == 400
    assert AuditEvent.objects.filter(action="conversation.delete", object_id=conversation_id).count() == 1


def test_a_vote_can_be_changed_and_counts_once_while_flags_add_up(client, corpus, alice):
    answer_id = ask(client, alice, KITCHEN_QUESTION)["answer_id"]
    feedback = f"/api/v1/answers/{answer_id}/feedback"
    for body in ({"kind": "up"}, {"kind": "down"}, {"kind": "down"}, {"kind": "flag", "reason": "wrong"},
                 {"kind": "flag", "reason": "other", "comment": "and again"}):
        assert client.post(feedback, body, content_type="application/json", headers=auth(alice)).status_code == 201
    votes = Feedback.objects.filter(answer_id=answer_id, kind__in=("up", "down"))
    assert list(votes.values_list("kind", flat=True)) == ["down"]
    assert Feedback.objects.filter(answer_id=answer_id, kind="flag").count() == 2
    client.post(feedback, {"kind": "up"}, content_type="application/json", headers=auth(alice))
    assert list(votes.values_list("kind", flat=True)) == ["up"]
