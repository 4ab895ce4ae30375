"""The review queue: flags and thumbs-down with an assignee and a resolution, cited text shown to a reviewer only where
they may read it, ranking rules (boost, demote, hide; everywhere or for one question) that change what every search
returns on both backends, and corrected answers kept as cases the answer-level evaluation runs."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.management import call_command

from answers import services as answering
from answers.models import Answer, EvaluationCase, Feedback
from audit.models import AuditEvent
from connectors import services as connectors
from connectors.models import Document
from identity.selectors import principals_for
from retrieval import selectors
from retrieval.models import RankingRule
from retrieval.ranking import question_hash, question_key
from retrieval.services import add_ranking_rule, remove_ranking_rule
from tests.console.conftest import BUDGET_QUESTION, KITCHEN_QUESTION, make_user

pytestmark = pytest.mark.django_db

QUEUE = "/admin/console/flaggedanswer/"
PARKING_QUESTION = "Where can visitors park?"
BIKE_QUESTION = "Where do visitors leave their bikes?"
FILES = {
    "public/kitchen.md": "# Kitchen\n\nThe espresso machine is descaled every Friday by the facilities team.\n",
    "public/garage.md": "# Visitor parking\n\nVisitors park on level minus two of the north garage; visitor parking "
                        "passes are at reception.\n",
    "public/street.md": "# Street parking\n\nVisitors may park on Elm Street for two hours; street parking is free "
                        "for visitors.\n",
    "public/bikes.md": "# Bike parking\n\nVisitors leave their bikes in the courtyard racks; bike parking for "
                       "visitors is covered.\n",
    "finance/travel-budget.md": "# Travel budget\n\nThe company travel budget for 2025 is 40,000 euros, approved by "
                                "the finance committee in January. Visitors park for free when they visit finance.\n",
}
MANIFEST = {"groups": {"group:finance": ["email:alice@corp.example", "email:auditor@corp.example"]},
            "rules": [{"paths": ["public/*"], "public": True},
                      {"paths": ["finance/*"], "principals": ["group:finance"]}]}
BUDGET_SNIPPET = "approved by the finance committee"


def write_corpus(folder):
    for path, text in FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    (folder / ".citewise-acl.json").write_text(json.dumps(MANIFEST))
    return folder


def index(folder) -> dict[str, str]:
    """Ingest the corpus into the configured index: external path -> document id."""
    source = connectors.ensure_source("filesystem", folder, name=f"corpus-{uuid.uuid4().hex[:6]}")
    report = connectors.sync_source(source)
    assert (report.indexed, report.failed) == (len(FILES), 0), report.errors
    connectors.sync_permissions(source)
    return dict(Document.objects.filter(source=source).values_list("external_id", "id"))


@pytest.fixture
def documents(tmp_path, isolated_index) -> dict[str, str]:
    return index(write_corpus(tmp_path / "docs"))


@pytest.fixture
def backend_kind(configured_backend: str) -> str:
    """Each backend in turn, configured with a fresh index (tests/conftest.py)."""
    return configured_backend


@pytest.fixture
def auditor(db):
    """A staff reviewer in group:finance: may read every document of the corpus."""
    return make_user("auditor", is_staff=True, is_superuser=True)


@pytest.fixture
def outsider_admin(db):
    """A superuser in no group: may read the public documents only."""
    return make_user("root", is_staff=True, is_superuser=True)


def ask(user, question, surface="api"):
    return answering.ask(question, principals=principals_for(user), user=user, surface=surface)


def feedback(result, user, kind, reason="", comment=""):
    return Feedback.objects.create(answer_id=result.answer_id, user=user, kind=kind, reason=reason, comment=comment)


def order(question: str, user) -> list[str]:
    """The documents a search for the question returns to the user, best first."""
    hits = selectors.search(question, principals=principals_for(user), limit=10)
    return list(dict.fromkeys(hit.document_id for hit in hits))


def listed(client, **params) -> list[int]:
    response = client.get(QUEUE, params)
    assert response.status_code == 200
    return [item.id for item in response.context["cl"].result_list]


# -- the queue -----------------------------------------------------------------------------------------


def test_flags_and_thumbs_down_are_queued_assigned_resolved_dismissed_and_filtered(client, documents, alice, bob,
                                                                                    auditor, outsider_admin):
    flagged = feedback(ask(alice, BUDGET_QUESTION), alice, "flag", "wrong", "The budget was cut in March.")
    down = feedback(ask(bob, KITCHEN_QUESTION, surface="slack"), bob, "down", comment="Too vague")
    feedback(ask(bob, PARKING_QUESTION), bob, "up")
    client.force_login(auditor)

    assert listed(client) == [flagged.id, down.id]  # open ones, oldest first; a thumbs-up is no queue item
    page = client.get(QUEUE).content.decode()
    assert BUDGET_QUESTION in page and "The budget was cut in March." in page and "Too vague" in page
    assert listed(client, surface="slack") == [down.id] and listed(client, reason="wrong") == [flagged.id]
    assert listed(client, kind="down") == [down.id] and listed(client, queue="mine") == []

    item = client.get(f"{QUEUE}{flagged.id}/change/").content.decode()
    for shown in (BUDGET_QUESTION, "40,000", "Travel budget", BUDGET_SNIPPET, "alice", "api", "Wrong or outdated",
                  "The budget was cut in March.", "Assign to me", "Demote for this question", "Hide everywhere"):
        assert shown in item, shown

    assert client.post(f"{QUEUE}{flagged.id}/assign/").status_code == 302
    flagged.refresh_from_db()
    assert flagged.assignee == auditor and listed(client, queue="mine") == [flagged.id]

    def review(item, **fields):
        form = {"assignee": item.assignee_id or "", "review_status": "open", "resolution_note": "", **fields}
        response = client.post(f"{QUEUE}{item.id}/change/", {**form, "_save": "Save"})
        assert response.status_code == 302, response.content.decode()[:2000]
        item.refresh_from_db()

    review(flagged, review_status="resolved", resolution_note="Budget updated in the source; re-synced.")
    assert (flagged.review_status, flagged.resolved_by, flagged.resolution_note) == (
        "resolved", auditor, "Budget updated in the source; re-synced.")
    assert flagged.resolved_at is not None
    review(down, assignee=outsider_admin.id, review_status="dismissed", resolution_note="Answer was right.")
    assert (down.review_status, down.assignee, down.resolved_by) == ("dismissed", outsider_admin, auditor)
    assert listed(client) == [] and listed(client, queue="resolved") == [flagged.id]
    assert listed(client, queue="dismissed") == [down.id] and listed(client, queue="all") == [flagged.id, down.id]
    review(down, assignee=outsider_admin.id, review_status="open")  # reopened: no longer resolved by anyone
    assert (down.review_status, down.resolved_by, down.resolved_at) == ("open", None, None)

    actions = list(AuditEvent.objects.filter(actor=auditor, action__startswith="review.").order_by("id")
                   .values_list("action", "object_id"))
    assert actions == [("review.assign", str(flagged.id)), ("review.resolved", str(flagged.id)),
                       ("review.assign", str(down.id)), ("review.dismissed", str(down.id)),
                       ("review.open", str(down.id))]
    assert AuditEvent.objects.filter(actor=auditor, action="admin.view", object_type="console.flaggedanswer",
                                     object_id=str(flagged.id)).exists()
    # Only staff may be assigned.
    with pytest.raises(answering.ReviewError):
        answering.assign_review(flagged, bob, by=auditor)


# -- what a reviewer may see -------------------------------------------------------------------------------


def test_a_reviewer_sees_cited_text_only_where_they_may_read_the_document(client, documents, alice, auditor,
                                                                          outsider_admin):
    result = ask(alice, BUDGET_QUESTION)
    assert {c.document_id for c in result.citations} == {documents["finance/travel-budget.md"]}
    assert any(BUDGET_SNIPPET in c.snippet for c in result.citations)
    flag = feedback(result, alice, "flag", "wrong")
    pages = (f"/admin/answers/feedback/{flag.id}/change/", f"/admin/answers/answer/{result.answer_id}/change/",
             f"{QUEUE}{flag.id}/change/")

    client.force_login(outsider_admin)
    for url in pages:
        page = client.get(url).content.decode()
        assert "You may not read this document" in page, url
        # Neither the stored snippet, the title nor the link: the answer text is the admin's to see, the source not.
        assert "Travel budget" not in page and "travel-budget.md" not in page, url
        assert "Demote for this question" not in page, url  # nothing to act on that they cannot see
    # Not through the action either.
    client.post(f"{QUEUE}{flag.id}/ranking/", {"rule": f"{documents['finance/travel-budget.md']}|hide|global"})
    assert not RankingRule.objects.exists()
    assert AuditEvent.objects.filter(actor=outsider_admin, action="review.refused", object_id=str(flag.id)).exists()

    client.force_login(auditor)
    for url in pages:
        page = client.get(url).content.decode()
        assert "You may not read this document" not in page and "Travel budget" in page, url
        assert BUDGET_SNIPPET in page, url


# -- ranking rules --------------------------------------------------------------------------------------


def test_the_question_key_ignores_case_punctuation_and_spacing_only():
    assert question_key("  Where can   VISITORS park?! ") == "where can visitors park"
    assert question_key("Straße—parking, please…") == question_key("strasse parking please")
    assert question_hash("Where can visitors park?") == question_hash("where can visitors park")
    assert question_hash("Where can visitors park?") != question_hash("Where can visitors park today?")
    assert question_key("NA-4471-B") == "na 4471 b"


def test_ranking_rules_reorder_hide_and_undo_on_both_backends_and_never_widen_access(backend_kind, tmp_path, alice,
                                                                                     bob, auditor):
    documents = index(write_corpus(tmp_path / "docs"))
    garage, street, bikes = (documents[f"public/{name}.md"] for name in ("garage", "street", "bikes"))
    budget = documents["finance/travel-budget.md"]
    base, other = order(PARKING_QUESTION, bob), order(BIKE_QUESTION, bob)
    assert {garage, street, bikes} <= set(base) and budget not in base
    top, last = base[0], base[-1]

    # Demoted for this question (asked in other words): last; every other question as it was.
    rule = add_ranking_rule(top, "demote", user=auditor, question="  where can VISITORS park ")
    assert order(PARKING_QUESTION, bob) == [*(d for d in base if d != top), top]
    assert order(BIKE_QUESTION, bob) == other
    remove_ranking_rule(rule, user=auditor)
    assert order(PARKING_QUESTION, bob) == base  # undone: as before

    # Boosted everywhere: first in every search that finds it.
    rule = add_ranking_rule(last, "boost", user=auditor)
    assert order(PARKING_QUESTION, bob)[0] == last
    assert order(BIKE_QUESTION, bob)[0] == last
    remove_ranking_rule(rule, user=auditor)

    # Hidden for this question: gone from it, still found by others; hidden everywhere: gone from all.
    rule = add_ranking_rule(bikes, "hide", user=auditor, question=PARKING_QUESTION)
    assert order(PARKING_QUESTION, bob) == [d for d in base if d != bikes]
    assert bikes in order(BIKE_QUESTION, bob)
    # A rule for the question overrides the global one for that document.
    everywhere = add_ranking_rule(bikes, "hide", user=auditor)
    assert bikes not in order(BIKE_QUESTION, bob)
    remove_ranking_rule(everywhere, user=auditor)
    remove_ranking_rule(rule, user=auditor)
    assert order(PARKING_QUESTION, bob) == base and order(BIKE_QUESTION, bob) == other

    # A boost never shows a document the ACL hides: bob still does not get the finance document; alice gets it first.
    add_ranking_rule(budget, "boost", user=auditor)
    assert budget not in order(PARKING_QUESTION, bob)
    assert order(PARKING_QUESTION, alice)[0] == budget
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="ranking.").order_by("id")] == [
        "ranking.demote", "ranking.undo", "ranking.boost", "ranking.undo", "ranking.hide", "ranking.hide",
        "ranking.undo", "ranking.undo", "ranking.boost"]


def test_a_new_rule_replaces_the_one_in_force_for_the_same_document_and_scope(documents, auditor):
    garage = documents["public/garage.md"]
    first = add_ranking_rule(garage, "boost", user=auditor, question=PARKING_QUESTION)
    second = add_ranking_rule(garage, "demote", user=auditor, question="where can visitors park")
    everywhere = add_ranking_rule(garage, "hide", user=auditor)
    first.refresh_from_db()
    assert first.removed_at is not None and first.removed_by == auditor
    assert set(RankingRule.objects.filter(removed_at=None)) == {second, everywhere}


def test_the_queue_item_page_adds_and_undoes_rules_and_a_hidden_document_leaves_answers_and_the_cache(
        client, documents, alice, auditor):
    budget = documents["finance/travel-budget.md"]
    first = ask(alice, BUDGET_QUESTION)
    assert {c.document_id for c in first.citations} == {budget}
    assert Answer.objects.get(id=ask(alice, BUDGET_QUESTION).answer_id).timings["cache"] == "hit"
    flag = feedback(first, alice, "flag", "wrong")
    client.force_login(auditor)

    response = client.post(f"{QUEUE}{flag.id}/ranking/", {"rule": f"{budget}|hide|question", "ranking_note": "stale"})
    assert response.status_code == 302
    rule = RankingRule.objects.get(removed_at=None)
    assert (rule.document_id, rule.effect, rule.question, rule.note, rule.created_by, rule.source_feedback) == (
        budget, "hide", BUDGET_QUESTION, "stale", auditor, flag)
    page = client.get(f"{QUEUE}{flag.id}/change/").content.decode()
    assert "Hide" in page and f'name="rule_id" value="{rule.pk}"' in page

    hidden = ask(alice, BUDGET_QUESTION)
    record = Answer.objects.get(id=hidden.answer_id)
    assert record.timings["cache"] == "miss"  # the rule invalidated the cached answer
    assert budget not in {c.document_id for c in hidden.citations} | {c.document_id for c in hidden.nearest}
    assert budget not in {r["document_id"] for r in record.retrieved}

    assert client.post(f"{QUEUE}{flag.id}/ranking/undo/", {"rule_id": rule.pk}).status_code == 302
    restored = ask(alice, BUDGET_QUESTION)
    assert Answer.objects.get(id=restored.answer_id).timings["cache"] == "miss"
    assert {c.document_id for c in restored.citations} == {budget}
    assert [(e.action, e.actor) for e in AuditEvent.objects.filter(action__startswith="ranking.").order_by("id")] == [
        ("ranking.hide", auditor), ("ranking.undo", auditor)]
    rules = client.get("/admin/retrieval/rankingrule/")  # every rule, undone ones too, audited
    assert rules.status_code == 200 and [r.pk for r in rules.context["cl"].result_list] == [rule.pk]
    assert AuditEvent.objects.filter(actor=auditor, action="admin.view", object_type="retrieval.rankingrule").exists()


# -- corrected answers as evaluation cases ----------------------------------------------------------------


PEOPLE_YAML = "- id: alice\n  email: Alice@corp.example\n- id: bob\n  email: bob@corp.example\n"


def test_a_corrected_answer_saved_from_the_queue_is_run_and_judged_by_the_evaluation(client, documents, tmp_path,
                                                                                     capsys, alice, auditor):
    kitchen = documents["public/kitchen.md"]
    flag = feedback(ask(alice, KITCHEN_QUESTION), alice, "flag", "wrong")
    client.force_login(auditor)

    def save(**fields):
        response = client.post(f"{QUEUE}{flag.id}/evaluation-case/", fields)
        assert response.status_code == 302

    save(case_answer="Every Friday, by the facilities team.", case_facts="every Friday\nfacilities team\n",
         case_documents=[kitchen], case_asker_email="alice@corp.example")
    save(case_answer="Every Monday.", case_facts="every Monday", case_documents=[kitchen],
         case_asker_email="alice@corp.example")
    save(case_answer="Every Friday.", case_facts="every Friday", case_documents=[kitchen],
         case_asker_email="nobody@corp.example")
    save(case_answer="", case_facts="x", case_documents=[kitchen])  # refused: no answer written
    right, wrong, stranger = EvaluationCase.objects.order_by("pk")
    assert (right.question, right.expected_doc_ids, right.must_contain, right.created_by, right.source_feedback) == (
        KITCHEN_QUESTION, ["public/kitchen"], ["every Friday", "facilities team"], auditor, flag)
    assert AuditEvent.objects.filter(action="review.evaluation_case", actor=auditor).count() == 3
    assert AuditEvent.objects.filter(action="review.refused", actor=auditor).count() == 1
    assert client.get("/admin/answers/evaluationcase/").context["cl"].result_count == 3

    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({
        "id": "park", "asker": "bob", "question": PARKING_QUESTION, "answerable_for_asker": True,
        "expected_doc_ids": ["public/garage"], "must_contain": ["level minus two"], "kind": "fact"}) + "\n")
    people = tmp_path / "people.yaml"
    people.write_text(PEOPLE_YAML)
    call_command("evaluate_answers", "--corpus", str(tmp_path / "docs"), "--people", str(people), "--questions",
                 str(questions), "--include-reviewed", "--json")
    captured = capsys.readouterr()
    rows = {row["id"]: row for row in json.loads(captured.out)["questions"]}
    assert set(rows) == {"park", f"reviewed-{right.pk}", f"reviewed-{wrong.pk}"}
    assert f"reviewed case {stranger.pk}: asker nobody@corp.example is not in the people file" in captured.err
    judged_right, judged_wrong = rows[f"reviewed-{right.pk}"], rows[f"reviewed-{wrong.pk}"]
    assert (judged_right["asker"], judged_right["kind"], judged_right["correct"]) == ("alice", "reviewed", True)
    assert judged_wrong["correct"] is False and judged_wrong["missing_facts"] == ["every Monday"]
    assert judged_wrong["citation_hit"] is True
