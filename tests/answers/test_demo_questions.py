"""The demo question sets, asked end to end with the default (extractive, no LLM) pipeline.

The issue's target is ≥ 90 % of answerable questions answered with a citation to the expected
document and ≥ 95 % of unanswerable ones refused. Without a reading model (cross-encoder or LLM,
neither of which can be fetched on this offline machine) the extractive pipeline does not reach it;
docs/answering.md records the measured rates. This test pins those rates as a floor so that a
regression fails, and prints them.
"""

from __future__ import annotations

import json

import pytest

from answers.services import ask
from connectors import services as connector_services
from connectors.management.commands.load_demo import DEMO_CORPUS

pytestmark = pytest.mark.django_db
QUESTIONS = DEMO_CORPUS.parent / "questions"
ANSWERED_FLOOR = 0.65
REFUSED_FLOOR = 0.50


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (QUESTIONS / name).read_text().splitlines() if line.strip()]


def cited_paths(result) -> set[str]:
    return {c.url.split("/corpus/", 1)[1].split("#", 1)[0] for c in result.citations}


def test_demo_questions_are_answered_with_the_right_citation_or_refused(isolated_index, capsys):
    # Answer quality, not access control: every demo document is readable here.
    connector_services.sync_source(connector_services.ensure_source("filesystem", DEMO_CORPUS,
                                                                    config={"public": True}))
    answerable, unanswerable = load("answerable.jsonl"), load("unanswerable.jsonl")
    assert len(answerable) >= 30 and len(unanswerable) >= 30

    answered_right = 0
    for item in answerable:
        result = ask(item["question"], principals=frozenset())
        if not result.refused:
            assert result.citations and "[1]" in result.text
        answered_right += (not result.refused) and item["expected_document"] in cited_paths(result)
    refused = 0
    for item in unanswerable:
        result = ask(item["question"], principals=frozenset())
        if result.refused:
            refused += 1
            assert result.citations == [] and result.nearest
    answered_rate, refused_rate = answered_right / len(answerable), refused / len(unanswerable)
    with capsys.disabled():
        print(f"\ndemo questions: answered with the expected citation {answered_right}/{len(answerable)} "
              f"({answered_rate:.0%}); refused {refused}/{len(unanswerable)} ({refused_rate:.0%})")
    assert answered_rate >= ANSWERED_FLOOR
    assert refused_rate >= REFUSED_FLOOR
