"""Follow-up questions reuse the conversation: the heuristic rewrite, and conversations owned by their asker."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from answers.models import Answer
from answers.rewrite import rewrite_query
from answers.services import InvalidQuestion, ask
from answers.types import Turn
from connectors import services as connector_services

pytestmark = pytest.mark.django_db


def test_a_standalone_question_is_not_rewritten():
    history = [Turn("How many PTO days do new employees get?", "15 days [1].")]
    question = "Which VPN gateway should engineers in Europe use when travelling?"
    assert rewrite_query(question, history) == question
    assert rewrite_query("What about contractors?", []) == "What about contractors?"


def test_a_follow_up_borrows_the_key_words_of_the_previous_question():
    history = [Turn("How many PTO days do new employees get?", "15 days [1].")]
    rewritten = rewrite_query("And after three years?", history)
    assert rewritten.startswith("And after three years?")
    assert "PTO" in rewritten and "employees" in rewritten


def test_follow_ups_are_answered_in_context_and_recorded(isolated_index, tmp_path):
    (tmp_path / "pto.md").write_text(
        "# PTO\n\n## Accrual\n\nNew employees accrue fifteen PTO days per year. After three years of service, "
        "employees accrue twenty PTO days per year.\n\n## Carry-over\n\nUp to five unused days carry over.\n")
    (tmp_path / "parking.md").write_text("# Parking\n\nThe garage on Lovejoy Street has forty bike racks.\n")
    connector_services.sync_source(connector_services.ensure_source("filesystem", tmp_path, config={"public": True}))
    user = get_user_model().objects.create_user("ana")
    first = ask("How many PTO days do new employees get per year?", principals=frozenset(), user=user)
    assert not first.refused and "fifteen" in first.text
    follow_up = ask("And after three years?", principals=frozenset(), user=user,
                    conversation_id=first.conversation_id)
    assert follow_up.conversation_id == first.conversation_id
    assert "PTO" in follow_up.search_query
    assert not follow_up.refused and "twenty" in follow_up.text
    assert Answer.objects.filter(conversation_id=first.conversation_id).count() == 2

    stranger = get_user_model().objects.create_user("bo")
    with pytest.raises(InvalidQuestion, match="unknown conversation"):
        ask("And carry-over?", principals=frozenset(), user=stranger, conversation_id=first.conversation_id)
