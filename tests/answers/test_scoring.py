"""Answering embeds the question only (and, with int8 documents, re-embeds the few units closest to it at full
precision): the passages it scores carry their units' vectors from the index."""

from __future__ import annotations

import pytest

from answers.answerability import judge
from answers.pipeline import Steps
from answers.scoring import score_units
from answers.services import ask
from core.config import current
from retrieval.embeddings import get_embedder
from tests.api.test_api import QUESTION, corpus  # noqa: F401 - fixtures
from tests.search.test_backend_contract import CountingEmbedder

pytestmark = pytest.mark.django_db


def test_the_passages_an_answer_is_judged_and_composed_from_need_only_the_question_embedded(corpus):
    judged = []

    def recording_judge(question, passages):
        judged.append((question, passages))
        return judge(question, passages)

    result = ask(QUESTION, principals=frozenset({"public"}), steps=Steps(judge=recording_judge))
    assert not result.refused and "Friday" in result.text
    [(question, passages)] = judged
    assert passages and all(p.hit.unit_vectors for p in passages)
    counting = CountingEmbedder(get_embedder())
    assert score_units(question, passages, embedder=counting)[0].text.startswith("The espresso machine")
    # The question, at full precision; with int8 documents, the few units closest to it are re-embedded there too.
    assert counting.documents == [] and counting.full_precision().queries == [question]
    assert len(counting.rescored) <= 2 * current().answer_rescored_units
