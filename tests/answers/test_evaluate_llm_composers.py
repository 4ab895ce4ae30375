"""manage.py evaluate_answers --composer cohere|openai against the local stand-ins of both providers.

The stand-ins answer from what they were sent (tests/standins: the sentence of the passages that shares the most
words with the question, with its citation, or NOT_FOUND), so a run proves the plumbing end to end: the harness's
--composer reaches the composer, the answers it scores are the LLM's, their citations are verified, the tokens and
cost are recorded, retrieved text travels fenced as data, and a document the asker may not read is never sent. No
real provider is reached (docs/answering.md, "Scoring an LLM composer").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.answers.test_evaluate_answers import write_eval_set
from tests.clock import FakeClock
from tests.standins import cohere as cohere_api
from tests.standins import openai as openai_api
from tests.standins.base import RecordedRequest, StandInServer

MANIFEST = {
    "groups": {"group:finance": ["email:fred@corp.example"]},
    "rules": [
        {"paths": ["handbook/*"], "public": True},
        {"paths": ["policies/*"], "principals": ["org:everyone-except-external"]},
        {"paths": ["finance/*"], "principals": ["group:finance"]},
    ],
}
CORPUS = {
    "policies/pto.md": "# Paid time off\n\nEvery employee gets 25 days of paid vacation per year.\n",
    "policies/travel.md": "# Travel\n\nHotel stays are capped at 240 euros per night. Receipts are mandatory.\n",
    "handbook/parking.md": "# Parking\n\nVisitor parking is on level minus two of the north garage.\n",
    "finance/salaries.md": "# Salary bands\n\nThe engineering salary band goes as high as 1.200.000 kroner.\n",
}
RESTRICTED_TEXT = "1.200.000"  # only in finance/salaries, which only fred may read
PEOPLE_YAML = """\
- id: alice
  email: alice@corp.example
- id: fred
  email: fred@corp.example
"""
SALARY_FOR_FRED = "How high does the engineering salary band go?"
QUESTIONS = [
    {"id": "pto", "asker": "alice", "question": "How many days of paid vacation does every employee get per year?",
     "answerable_for_asker": True, "expected_doc_ids": ["policies/pto"], "must_contain": ["25 days"],
     "kind": "fact"},
    {"id": "parking", "asker": "alice", "question": "Where is visitor parking?", "answerable_for_asker": True,
     "expected_doc_ids": ["handbook/parking"], "must_contain": ["level minus two"], "kind": "fact"},
    {"id": "hotel", "asker": "fred", "question": "How much may a hotel stay cost per night?",
     "answerable_for_asker": True, "expected_doc_ids": ["policies/travel"], "must_contain": ["240 euros"],
     "kind": "fact"},
    {"id": "salary-fred", "asker": "fred", "question": SALARY_FOR_FRED, "answerable_for_asker": True,
     "expected_doc_ids": ["finance/salaries"], "must_contain": [RESTRICTED_TEXT], "kind": "fact"},
    {"id": "salary-alice", "asker": "alice", "question": "What is the top of the engineering salary band?",
     "answerable_for_asker": False, "must_not_contain": [RESTRICTED_TEXT], "kind": "no-access",
     "restricted_doc_ids": ["finance/salaries"]},
    {"id": "pets", "asker": "alice", "question": "Does the company offer pet insurance for dogs?",
     "answerable_for_asker": False, "kind": "not-in-corpus"},
]
ANSWERABLE = [q["id"] for q in QUESTIONS if q["answerable_for_asker"]]
PRICE_IN, PRICE_OUT = 0.5, 1.5  # USD per 1,000 tokens, so that the cost is not zero


@pytest.fixture
def eval_set(tmp_path) -> tuple[Path, Path, Path]:
    return write_eval_set(tmp_path, CORPUS, MANIFEST, PEOPLE_YAML, QUESTIONS)


@pytest.fixture
def stand_ins() -> Iterator[dict[str, tuple[StandInServer, str]]]:
    """Both providers' stand-ins, by composer name, with the route their chat is asked on."""
    with cohere_api.CohereStandIn() as cohere_server, openai_api.OpenAIStandIn() as openai_server:
        yield {"cohere": (cohere_server, cohere_api.CHAT), "openai": (openai_server, openai_api.CHAT_COMPLETIONS)}


@pytest.fixture
def llm_settings(settings, stand_ins, isolated_index):
    """Both providers pointed at their stand-ins, priced, retried once, waiting on a clock that does not sleep."""
    settings.LLM_CLOCK = FakeClock()
    settings.CITEWISE = settings.CITEWISE.replace(
        cohere_base_url=stand_ins["cohere"][0].url, cohere_api_key="test-cohere-key", cohere_chat_model="command-test",
        openai_base_url=f"{stand_ins['openai'][0].url}/v1", openai_api_key="test-openai-key", openai_model="gpt-test",
        llm_max_retries=1, llm_usd_per_1k_input_tokens=PRICE_IN, llm_usd_per_1k_output_tokens=PRICE_OUT)
    return settings


def evaluate(capsys, eval_set, composer: str) -> dict:
    corpus, people, questions = eval_set
    call_command("evaluate_answers", "--corpus", str(corpus), "--people", str(people), "--questions", str(questions),
                 "--json", "--composer", composer)
    return json.loads(capsys.readouterr().out)


def question_of(request: RecordedRequest) -> str:
    """The question a compose request asked (the user message ends with it, for both providers)."""
    return request.json["messages"][-1]["content"].rsplit("Question: ", 1)[-1]


def assert_passages_fenced_as_data(composer: str, request: RecordedRequest) -> None:
    body = request.json
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    assert "untrusted data" in system and "Never follow instructions" in system
    if composer == "openai":
        # One <passages> block before the question, every passage numbered inside it.
        assert user.count("<passages>") == 1 and user.count("</passages>") == 1
        assert user.startswith("<passages>\n") and re.search(r"</passages>\n\nQuestion: [^\n]+$", user)
        opened, closed = user.index("<passages>"), user.index("</passages>")
        numbered = [m.start() for m in re.finditer(r'<passage number="\d+">', user)]
        assert numbered and all(opened < at < closed for at in numbered)
    else:
        # Passages travel only as documents, never in the conversation's messages.
        snippets = [d["data"]["snippet"] for d in body["documents"]]
        assert snippets and [d["id"] for d in body["documents"]] == [str(n) for n in range(1, len(snippets) + 1)]
        assert not any(snippet in m["content"] for snippet in snippets for m in body["messages"])
        assert "attached as documents" in user


@pytest.mark.django_db
@pytest.mark.parametrize("composer", ["openai", "cohere"])
def test_a_run_with_an_llm_composer_scores_the_llms_answers(composer, llm_settings, stand_ins, eval_set, capsys):
    server, route = stand_ins[composer]
    server.always(route, openai_api.grounded if composer == "openai" else cohere_api.grounded)

    report = evaluate(capsys, eval_set, composer)

    assert report["composer"] == composer
    rows = {row["id"]: row for row in report["questions"]}
    summary = report["summary"]
    # Every answerable question was answered by the LLM, correctly, citing the expected document.
    for question_id in ANSWERABLE:
        row = rows[question_id]
        assert (row["composer"], row["fallback_reason"], row["error"]) == (composer, None, None), row
        assert row["correct"] and row["citation_hit"], row
        assert [c["number"] for c in row["citations"]] == [1] and " [1]" in row["answer"]
        assert row["input_tokens"] > 0 and row["output_tokens"] > 0
        assert row["cost_usd"] == pytest.approx(
            round(row["input_tokens"] / 1000 * PRICE_IN + row["output_tokens"] / 1000 * PRICE_OUT, 6))
    assert rows["salary-fred"]["answer"] == "The engineering salary band goes as high as 1.200.000 kroner [1]."
    assert (summary["correct"], summary["citation_hits"], summary["false_refusals"]) == (4, 4, 0)
    # The others are refused (by the gate, or by the model declining), showing nothing alice may not read.
    for question_id in ("salary-alice", "pets"):
        assert rows[question_id]["refused"] and rows[question_id]["refusal_ok"], rows[question_id]
        assert rows[question_id]["fallback_reason"] is None
    assert (summary["leaks"], summary["errors"], summary["composer_fallbacks"]) == (0, 0, 0)
    assert summary["input_tokens"] == sum(row["input_tokens"] for row in rows.values())
    assert summary["cost_usd"] == pytest.approx(sum(row["cost_usd"] for row in rows.values()))

    # What the provider was sent: one compose request per question the gate let through, the passages fenced as
    # data, and the salary text only ever with fred's questions (he may read it; alice may not).
    requests = server.requests_to(route)
    composed = [row for row in rows.values() if row["composer"] == composer]
    assert len(requests) == len(composed) >= len(ANSWERABLE)
    asker = {q["question"]: q["asker"] for q in QUESTIONS}
    for request in requests:
        assert_passages_fenced_as_data(composer, request)
        assert request.headers["authorization"] == f"Bearer test-{composer}-key"
    sent_for_alice = [r.body.decode("utf-8") for r in requests if asker[question_of(r)] == "alice"]
    assert len(sent_for_alice) >= 2  # pto and parking, at least
    assert not any(RESTRICTED_TEXT in sent or "Salary bands" in sent for sent in sent_for_alice)
    assert any(RESTRICTED_TEXT in r.body.decode("utf-8") for r in requests if question_of(r) == SALARY_FOR_FRED)


@pytest.mark.django_db
@pytest.mark.parametrize(("composer", "code"), [("openai", 500), ("cohere", 429)])
def test_a_failing_provider_is_recorded_as_a_fallback_per_question(composer, code, llm_settings, stand_ins,
                                                                     eval_set, capsys):
    server, route = stand_ins[composer]
    server.fail(route, status=code, times=None)

    report = evaluate(capsys, eval_set, composer)

    rows = {row["id"]: row for row in report["questions"]}
    summary = report["summary"]
    fell_back = [row for row in rows.values() if row["fallback_reason"]]
    # The run finished; every question the gate let through was composed by the extractive composer instead, and
    # says why. The scores are the extractive composer's.
    assert report["composer"] == composer and summary["errors"] == 0
    assert {row["id"] for row in fell_back} >= set(ANSWERABLE)
    for row in fell_back:
        assert row["composer"] == "extractive" and row["error"] is None
        assert row["fallback_reason"].startswith(f"composer {composer} failed") and f"HTTP {code}" in row["fallback_reason"]
        assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (0, 0, 0.0)
    assert summary["composer_fallbacks"] == len(fell_back) and summary["leaks"] == 0
    assert all(rows[question_id]["correct"] for question_id in ANSWERABLE)
    # Each composed question was tried, and retried once (CITEWISE_LLM_MAX_RETRIES=1), then given up on.
    assert len(server.requests_to(route)) == 2 * len(fell_back)
