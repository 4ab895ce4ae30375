"""Follow-up questions reuse the conversation: when a question depends on the turn before it, how it is rewritten
from that turn's topic, and conversations owned by their asker."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from django.contrib.auth import get_user_model

from answers.models import Answer
from answers.rewrite import (
    depends_on_conversation,
    embedding_similarity,
    in_context,
    resolve_follow_up,
    rewrite_query,
    topic,
    topic_switch,
)
from answers.selectors import recent_turns
from answers.services import InvalidQuestion, ask
from answers.types import Turn
from connectors import services as connector_services
from identity.selectors import principals_for

PTO = Turn("How many PTO days do new employees get per year?", "15 days [1].",
           sources=("Paid Time Off (PTO) Policy", "Paid Time Off (PTO) Policy > How much PTO you earn"))
PARKING = Turn("Where can I park at the Portland HQ?", "There is no car park [1].",
               sources=("Portland HQ", "Portland HQ > Getting here > Parking"))
MEALS = Turn("What is the daily meal limit when traveling?", "$85 a day [1].",
             sources=("Business Expense Reimbursement Policy",
                      "Business Expense Reimbursement Policy > Meals > Meals while traveling"))
HOLIDAYS = Turn("When are the company holidays in 2024?", "I couldn't find an answer to that.")


def alternatives(*pairs: tuple[str, str]):
    """A similarity under which each (fragment, phrase) pair given is a clear alternative, and nothing else is."""
    def similarity(text: str, phrases: Sequence[str]) -> list[float]:
        return [0.9 if (text.lower(), phrase.lower()) in pairs else 0.1 for phrase in phrases]
    return similarity


def index_public(folder, files: dict[str, str]) -> None:
    """Write the files into the folder and index it as a source everyone may read."""
    for name, text in files.items():
        (folder / name).write_text(text)
    connector_services.sync_source(connector_services.ensure_source("filesystem", folder, config={"public": True}))


def unrelated(text: str, phrases: Sequence[str]) -> list[float]:
    return [0.1 for _ in phrases]


# -- when a question depends on the conversation ------------------------------------------------------------------

@pytest.mark.parametrize("question", [
    "And can I carry them over?", "Do I need receipts for it?", "How do I request it in Workday?",
    "What happens to them when I leave?", "Who approves that?", "Does this policy apply to contractors?",
    "How do I get there from the airport?", "What is its carryover limit?", "The 2025 one?",
    "and for contractors?", "what about austin?", "What about Austin", "same for managers",
    "how about the 2025 one", "And after three years?", "for contractors?", "What if I'm part-time?",
])
def test_pronouns_without_a_referent_and_fragments_depend_on_the_conversation(question):
    assert depends_on_conversation(question)


@pytest.mark.parametrize("question", [
    "Which VPN gateway should engineers in Europe use when travelling?",
    "What is the daily meal limit when traveling?",
    "Is it possible to borrow PTO against future accrual?",  # "it" stands for nothing: a placeholder subject
    "How long does it take to get reimbursed?",
    "Is it true that contractors get PTO?",
    "If my laptop breaks, who fixes it?",  # "it" is the laptop, named in the question
    "When new employees start, do they get a laptop?",  # "they" are the new employees
    "Are there any blackout periods for PTO?",  # existential "there"
    "Is there a policy that covers remote work?",  # relative "that"
    "How many PTO days can I take this year?",  # "this year" points at the calendar, not the conversation
    "Also, how do I submit an expense report?",  # an opener, but a whole question of its own
    "And how many PTO days do contractors in Austin get per year?",
    "Who is Hannah Becker and what does she approve?",
    "What is a sabbatical?", "expenses",
])
def test_questions_with_their_own_subject_stand_alone(question):
    assert not depends_on_conversation(question)
    assert resolve_follow_up(question, PTO, unrelated) == question


# -- the previous turn's topic -----------------------------------------------------------------------------------

def test_the_topic_is_the_previous_querys_phrases_that_its_cited_sources_share():
    assert topic(PTO) == ["PTO days"]  # "new employees" was not what the answer was about
    assert topic(MEALS) == ["daily meal limit", "traveling"]
    assert topic(HOLIDAYS) == ["company holidays", "2024"]  # refused: nothing cited, every phrase counts
    # A follow-up of a follow-up: the topic comes from the query the previous turn was resolved to.
    resolved = Turn("Can I carry them over?", "Up to 40 hours [1].", search_query="Can I carry PTO days over?",
                    sources=("Paid Time Off (PTO) Policy", "Paid Time Off (PTO) Policy > Carryover and balance cap"))
    assert topic(resolved) == ["carry PTO days"]


# -- rewriting a follow-up ---------------------------------------------------------------------------------------

def test_a_pronoun_is_replaced_by_the_previous_topic():
    assert resolve_follow_up("And can I carry them over?", PTO, unrelated) == "And can I carry PTO days over?"
    assert resolve_follow_up("How do I request it in Workday?", PTO, unrelated) == \
        "How do I request PTO days in Workday?"
    assert resolve_follow_up("What happens to them when I leave?", PTO, unrelated) == \
        "What happens to PTO days when I leave?"
    assert resolve_follow_up("How do I get there from the airport?", PARKING, unrelated) == \
        "How do I get Portland HQ from the airport (park)"


def test_a_demonstrative_before_a_noun_keeps_the_noun_and_gains_the_topic():
    assert resolve_follow_up("Does this policy apply to contractors?", PTO, unrelated) == \
        "Does this policy apply to contractors (PTO days)"


def test_a_fragment_without_an_alternative_gets_the_topic_beside_it():
    assert resolve_follow_up("And after three years?", PTO, unrelated) == "PTO days, after three years"
    assert resolve_follow_up("What about outside the US?", MEALS, unrelated) == \
        "daily meal limit, traveling, outside the US"


def test_a_fragment_naming_an_alternative_asks_the_previous_query_again_about_it():
    assert resolve_follow_up("what about austin?", PARKING, alternatives(("austin", "portland hq"))) == \
        "Where can I park at austin?"
    assert resolve_follow_up("and for contractors?", PTO, alternatives(("contractors", "new employees"))) == \
        "How many PTO days do contractors get per year?"
    assert resolve_follow_up("same for managers", PTO, alternatives(("managers", "new employees"))) == \
        "How many PTO days do managers get per year?"
    assert resolve_follow_up("how about the 2025 one", HOLIDAYS, alternatives(("2025", "2024"))) == \
        "When are the company holidays in 2025?"


def test_a_refinement_of_a_phrase_is_not_an_alternative_to_it():
    # "three years" shares its noun with "per year": it narrows the question, it does not replace a phrase.
    assert resolve_follow_up("And after three years?", PTO, alternatives(("three years", "year"))) == \
        "PTO days, after three years"


def test_alternatives_are_found_with_the_embedding_model():
    assert resolve_follow_up("what about austin?", PARKING, embedding_similarity) == "Where can I park at austin?"
    assert resolve_follow_up("What about sick days?", PTO, embedding_similarity) == \
        "How many sick days do new employees get per year?"
    assert resolve_follow_up("And after three years?", PTO, embedding_similarity) == "PTO days, after three years"
    assert resolve_follow_up("how about the 2025 one", HOLIDAYS, embedding_similarity) == \
        "When are the company holidays in 2025?"


def test_a_follow_up_of_a_follow_up_resolves_against_the_latest_resolved_query():
    second = Turn("what about austin?", "Monthly parking up to $180 [1].", search_query="Where can I park at austin?",
                  sources=("Austin Office", "Austin Office > Parking and commuting"))
    assert resolve_follow_up("and hillsboro?", second, alternatives(("hillsboro", "austin"))) == \
        "Where can I park at hillsboro?"
    assert resolve_follow_up("Is it validated for visitors?", second, unrelated) == \
        "Is park validated for visitors (austin)"


def test_rewrite_query_reads_the_latest_turn_only_and_leaves_a_first_question_alone():
    assert rewrite_query("What about contractors?", []) == "What about contractors?"
    assert rewrite_query("And can I carry them over?", [MEALS, PTO]) == "And can I carry PTO days over?"
    assert rewrite_query("Which VPN gateway should engineers in Europe use?", [PTO]) == \
        "Which VPN gateway should engineers in Europe use?"


# -- conversations, end to end -----------------------------------------------------------------------------------

def cited(result) -> list[str]:
    return [c.url.split("/corpus/", 1)[1].split("#", 1)[0] for c in result.citations]


@pytest.mark.parametrize(("question", "alone"), [
    ("switching topics - whats the bike parking like at hq", "whats the bike parking like at hq"),
    ("totally different q - when's the next all hands", "when's the next all hands"),
    ("unrelated - how much is my learning budget", "how much is my learning budget"),
    ("new topic: whats the austin address", "whats the austin address"),
    ("ok, on another note, who runs IT?", "who runs IT?"),
    ("btw is there a gym", "is there a gym"),
])
def test_a_marker_changing_the_subject_is_dropped_and_the_question_stands_alone(question, alone):
    assert topic_switch(question) == alone
    assert rewrite_query(question, [PTO]) == alone
    assert rewrite_query(question, []) == alone
    assert in_context(question, [PTO]) is None


@pytest.mark.parametrize("question", [
    "different laptop models for engineers?", "new hire checklist", "is a random drug test allowed", "another laptop?",
])
def test_words_that_only_look_like_a_topic_switch_are_kept(question):
    assert topic_switch(question) is None


def test_a_measure_asked_for_is_not_the_topic():
    assert topic(Turn("how long is a pip", "60 days [1].", "how long is a pip")) == ["pip"]
    assert topic(Turn("how many ppl fit in aerie", "120 [1].", "how many ppl fit in aerie")) == ["ppl fit", "aerie"]


def test_a_question_that_seemed_to_stand_alone_can_be_asked_with_the_topic_beside_it():
    laptops = Turn("engineering laptop refresh cycle", "Every three years [1].", "engineering laptop refresh cycle",
                   ("IT Equipment", "IT Equipment > Refresh cycle"))
    question = "how long do i have to hand the old one back"
    assert rewrite_query(question, [laptops]) == question  # nothing in it refers back
    assert in_context(question, [laptops]) == f"{question} (engineering laptop refresh cycle)"
    assert in_context(question, []) is None
    assert in_context("And can I carry them over?", [PTO]) is None  # already resolved against the turn


@pytest.mark.django_db
def test_a_follow_up_nothing_answers_alone_is_answered_with_the_conversations_topic(isolated_index, tmp_path):
    index_public(tmp_path, {
        "laptops.md": "# Laptop refresh\n\nEngineering laptops are replaced every three years. Return the old laptop "
                      "to the Tech Bar within ten business days of receiving the new one.\n",
        "printers.md": "# Printers\n\nThe printer on floor 2 takes A3 paper.\n"})
    user = get_user_model().objects.create_user("ana")
    first = ask("engineering laptop refresh cycle", principals=frozenset(), user=user)
    assert not first.refused and "three years" in first.text
    alone = ask("how many days to hand the old one back", principals=frozenset(), user=user)
    assert alone.refused  # asked without the conversation, nothing says what "the old one" is
    follow_up = ask("how many days to hand the old one back", principals=frozenset(), user=user,
                    conversation_id=first.conversation_id)
    assert not follow_up.refused and "ten business days" in follow_up.text
    assert follow_up.search_query.endswith(" (engineering laptop refresh cycle)")


@pytest.mark.django_db
def test_recent_turns_carry_the_resolved_query_and_the_cited_sources(isolated_index, tmp_path):
    (tmp_path / "pto.md").write_text("# PTO\n\n## Carry-over\n\nUp to five unused PTO days carry over.\n")
    connector_services.sync_source(connector_services.ensure_source("filesystem", tmp_path, config={"public": True}))
    first = ask("How many unused PTO days carry over?", principals=frozenset())
    turn, = recent_turns(Answer.objects.get(id=first.answer_id).conversation, 3)
    assert turn.search_query == "How many unused PTO days carry over?"
    assert turn.sources == ("PTO", "PTO > Carry-over")


@pytest.mark.django_db
def test_follow_ups_are_answered_in_context_and_recorded(isolated_index, tmp_path):
    index_public(tmp_path, {
        "pto.md": "# PTO\n\n## Accrual\n\nNew employees accrue fifteen PTO days per year. After three years of "
                  "service, employees accrue twenty PTO days per year.\n\n## Carry-over\n\nUp to five unused days "
                  "carry over.\n",
        "parking.md": "# Parking\n\nThe garage on Lovejoy Street has forty bike racks.\n"})
    user = get_user_model().objects.create_user("ana")
    first = ask("How many PTO days do new employees get per year?", principals=frozenset(), user=user)
    assert not first.refused and "fifteen" in first.text
    follow_up = ask("And after three years?", principals=frozenset(), user=user,
                    conversation_id=first.conversation_id)
    assert follow_up.conversation_id == first.conversation_id
    assert follow_up.search_query == "PTO days, after three years"
    assert not follow_up.refused and "twenty" in follow_up.text
    assert Answer.objects.filter(conversation_id=first.conversation_id).count() == 2

    stranger = get_user_model().objects.create_user("bo")
    with pytest.raises(InvalidQuestion, match="unknown conversation"):
        ask("And carry-over?", principals=frozenset(), user=stranger, conversation_id=first.conversation_id)


@pytest.mark.django_db
def test_a_topic_switch_is_answered_from_the_new_topic_and_a_follow_up_from_the_topic_before_it(load_demo):
    load_demo()
    alice = get_user_model().objects.get(username="alice")
    principals = principals_for(alice)

    def asked(question: str, after=None):
        return ask(question, principals=principals, user=alice,
                   conversation_id=after.conversation_id if after else None)

    pto = asked("How many PTO days do I get per year?")
    assert cited(pto)[0] == "policies/pto.md"
    # Floating holidays "do not carry over" either: the old rewrite answered from them.
    carry = asked("And can I carry them over?", pto)
    assert carry.search_query == "And can I carry PTO days over?"
    assert cited(carry)[0] == "policies/pto.md" and "40 hours" in carry.text

    meals = asked("What is the daily meal limit when traveling?", carry)
    assert meals.search_query == meals.question  # a new topic is searched as asked
    # The 2026 expense policy supersedes the 2025 one (the same limits): it is the one cited.
    assert cited(meals) == ["policies/expenses-2026.md"] and "$85" in meals.text
    abroad = asked("What about outside the US?", meals)
    assert "meal limit" in abroad.search_query
    # The context is kept (the expense policy, not the remote-work one). Which sentence answers is the composer's:
    # it quotes the US limit here instead of the $125 one (a known miss the answer harness counts).
    assert cited(abroad)[0] == "policies/expenses-2026.md" and "limit" in abroad.text

    parking = asked("Where can I park at the Portland HQ?", abroad)
    assert cited(parking) == ["facilities/portland-hq.md"]
    austin = asked("what about austin?", parking)
    assert austin.search_query == "Where can I park at austin?"
    assert cited(austin)[0] == "facilities/austin-office.txt" and "parking" in austin.text.lower()
