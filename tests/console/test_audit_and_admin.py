"""The audit log (asks, admin views) and the admin console's review queue and access rules."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from answers import services as answering
from answers.models import Answer, Feedback
from audit.models import AuditEvent
from identity.selectors import principals_for
from tests.console.conftest import BUDGET_QUESTION, KITCHEN_QUESTION, auth, finance_document

pytestmark = pytest.mark.django_db


def events(action: str, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


# -- asks ------------------------------------------------------------------------------------------------


def test_every_ask_is_audited_with_what_was_retrieved_and_what_was_shown(client, corpus, alice, bob):
    _, source = corpus
    response = client.post("/api/v1/ask", json.dumps({"question": BUDGET_QUESTION}), content_type="application/json",
                           headers=auth(alice))
    assert response.status_code == 200, response.content
    body = response.json()
    answer = Answer.objects.get(id=body["answer_id"])
    [event] = events("ask")
    assert (event.actor, event.surface, event.object_type, event.object_id) == (
        alice, "api", "answers.answer", body["answer_id"])
    assert event.detail["question"] == BUDGET_QUESTION and event.detail["cache"] == "miss"
    assert event.detail["retrieved"] == list(dict.fromkeys(r["document_id"] for r in answer.retrieved))
    assert event.detail["retrieved"] and event.detail["cited"] == [finance_document(source).id]
    assert event.detail["shown"] == event.detail["cited"]

    # A refusal shows the nearest documents instead; a cache hit is audited like any other ask.
    refused = answering.ask(BUDGET_QUESTION, principals=principals_for(bob), user=bob, surface="slack")
    answering.ask(BUDGET_QUESTION, principals=principals_for(bob), user=bob, surface="slack")
    first, hit = events("ask", actor=bob)
    assert first.surface == "slack" and first.detail["refused"] is True and first.detail["cited"] == []
    assert first.detail["shown"] == [c.document_id for c in refused.nearest]
    assert finance_document(source).id not in first.detail["retrieved"] + first.detail["shown"]
    assert (hit.detail["cache"], hit.detail["shown"]) == ("hit", first.detail["shown"])


def test_asks_from_the_web_chat_are_audited_as_web(client, corpus, alice):
    client.force_login(alice)
    response = client.post("/chat/stream", {"q": KITCHEN_QUESTION})
    assert b"event: done" in b"".join(response.streaming_content)
    [event] = events("ask")
    assert (event.actor, event.surface, event.detail["question"]) == (alice, "web", KITCHEN_QUESTION)


# -- admin views ---------------------------------------------------------------------------------------


def test_admin_views_of_documents_answers_and_feedback_are_audited(client, corpus, alice, admin_user):
    _, source = corpus
    result = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    feedback = Feedback.objects.create(answer_id=result.answer_id, user=alice, kind="flag", reason="wrong")
    document = finance_document(source)
    client.force_login(admin_user)

    # The admin sees every document, even one no ACL grants them.
    listing = client.get("/admin/connectors/document/")
    assert listing.status_code == 200 and b"Travel budget" in listing.content
    assert client.get(f"/admin/connectors/document/{document.id}/change/").status_code == 200
    assert client.get("/admin/answers/answer/").status_code == 200
    assert client.get(f"/admin/answers/answer/{result.answer_id}/change/").status_code == 200
    assert client.get("/admin/answers/feedback/").status_code == 200
    assert client.get(f"/admin/answers/feedback/{feedback.id}/change/").status_code == 200

    views = [(e.actor, e.object_type, e.object_id, e.surface) for e in events("admin.view")]
    assert views == [
        (admin_user, "connectors.document", "", "admin"),
        (admin_user, "connectors.document", document.id, "admin"),
        (admin_user, "answers.answer", "", "admin"),
        (admin_user, "answers.answer", str(result.answer_id), "admin"),
        (admin_user, "answers.feedback", "", "admin"),
        (admin_user, "answers.feedback", str(feedback.id), "admin"),
    ]
    document_list = events("admin.view", object_type="connectors.document", object_id="")[0]
    assert set(document_list.detail["shown"]) == set(source.documents.values_list("id", flat=True))


def test_the_audit_log_is_read_only_in_the_console(client, alice, admin_user):
    from audit import services as audit

    event = audit.record(alice, "ask", object_type="answers.answer", object_id="x", surface="api")
    client.force_login(admin_user)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/{event.id}/change/").status_code == 200  # a read-only view
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.id}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.id}/change/", {"action": "changed"}).status_code == 403
    assert client.post("/admin/audit/auditevent/", {"action": "delete_selected",
                                                      "_selected_action": [event.id]}).status_code in (200, 302)
    event.refresh_from_db()
    assert event.action == "ask"
    attempt = AuditEvent.objects.get(action="admin.change")
    assert (attempt.detail["action"], attempt.detail["allowed"]) == ("delete_selected", False)
    assert AuditEvent.objects.filter(id=event.id).exists()


def test_a_non_admin_is_refused_and_not_shown_anything(client, alice):
    client.force_login(alice)  # signed in, but not staff
    for url in ("/admin/", "/admin/answers/answer/", "/admin/connectors/document/", "/admin/audit/auditevent/"):
        response = client.get(url)
        assert response.status_code == 403 and b"for administrators" in response.content, url

    staff = get_user_model().objects.create_user("staffer", "staffer@corp.example", "pw", is_staff=True)
    client.force_login(staff)  # staff without the model permissions
    for url in ("/admin/answers/answer/", "/admin/answers/feedback/", "/admin/connectors/document/",
                "/admin/console/flaggedanswer/"):
        assert client.get(url).status_code == 403, url
    client.logout()
    response = client.get("/admin/answers/answer/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


# -- the review queue ------------------------------------------------------------------------------------


def test_the_review_queue_lists_open_flags_and_resolves_them(client, corpus, alice, admin_user):
    flagged = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    other = answering.ask(KITCHEN_QUESTION, principals=principals_for(alice), user=alice)
    flag = Feedback.objects.create(answer_id=flagged.answer_id, user=alice, kind="flag", reason="wrong",
                                   comment="The budget was cut to 30,000 in March.")
    Feedback.objects.create(answer_id=other.answer_id, user=alice, kind="up")
    done = Feedback.objects.create(answer_id=other.answer_id, user=alice, kind="flag", reason="other",
                                   comment="already handled", review_status="resolved")
    client.force_login(admin_user)

    queue = client.get("/admin/console/flaggedanswer/")
    assert queue.status_code == 200
    assert [f.id for f in queue.context["cl"].result_list] == [flag.id]
    page = queue.content.decode()
    assert BUDGET_QUESTION in page and "The budget was cut to 30,000 in March." in page and "alice" in page
    assert "already handled" not in page

    detail = client.get(f"/admin/console/flaggedanswer/{flag.id}/change/").content.decode()
    # The answer and the reason, read-only; the citation only as far as the admin may read it (they may not).
    assert "40,000" in detail and "Wrong or outdated" in detail and "You may not read this document" in detail
    assert 'name="comment"' not in detail  # read-only

    response = client.post("/admin/console/flaggedanswer/", {"action": "mark_resolved",
                                                             "_selected_action": [flag.id]})
    assert response.status_code == 302
    flag.refresh_from_db()
    done.refresh_from_db()
    assert flag.review_status == done.review_status == "resolved" and flag.resolved_by == admin_user
    assert list(client.get("/admin/console/flaggedanswer/").context["cl"].result_list) == []
    [change] = events("admin.change")
    assert (change.actor, change.object_type, change.detail["action"], change.detail["ids"]) == (
        admin_user, "console.flaggedanswer", "mark_resolved", [str(flag.id)])
    assert change.detail["allowed"] is True


def test_resolving_an_answers_flags_from_the_answer_admin(client, corpus, alice, admin_user):
    result = answering.ask(BUDGET_QUESTION, principals=principals_for(alice), user=alice)
    flag = Feedback.objects.create(answer_id=result.answer_id, user=alice, kind="flag", reason="harmful")
    client.force_login(admin_user)
    listing = client.get("/admin/answers/answer/", {"refused__exact": "0"})
    assert listing.status_code == 200 and BUDGET_QUESTION in listing.content.decode()
    response = client.post("/admin/answers/answer/", {"action": "mark_flags_resolved",
                                                     "_selected_action": [str(result.answer_id)]})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.review_status == "resolved"
    assert client.get("/admin/answers/answer/add/").status_code == 403
    assert client.post(f"/admin/answers/answer/{result.answer_id}/delete/", {"post": "yes"}).status_code == 403
    assert Answer.objects.filter(id=result.answer_id).exists()
    assert Permission.objects.filter(codename="view_auditevent").exists()
