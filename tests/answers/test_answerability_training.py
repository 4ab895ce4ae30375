"""manage.py train_answerability: near misses the corpus cannot answer, examples labelled from real runs of the
answer path, and a model the learned gate loads."""

from __future__ import annotations

import json
import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from answers.answerability import LearnedGate
from answers.answerability_features import FEATURES
from answers.answerability_training import _swap_identifier, corpus_vocabulary, near_misses
from answers.evaluation import Question, load_evaluation_set
from search.analysis import analyze, identifiers
from tests.answers.test_evaluate_answers import eval_set  # noqa: F401 - fixture


def test_a_near_miss_swaps_a_word_for_one_the_corpus_never_uses(eval_set):
    corpus, people, questions_file = eval_set
    _, questions = load_evaluation_set(corpus, people, questions_file)
    stems, corpus_identifiers = corpus_vocabulary(corpus)
    assert {"vacat", "garag", "kroner"} <= stems  # parsed as ingestion parses
    made = near_misses(questions, stems, corpus_identifiers, pool_size=300)
    originals = {q.id: q for q in questions}
    standalone = [q for q in questions if q.answerable_for_asker and not q.follows]
    assert {m.id.split("~")[0] for m in made} <= {q.id for q in standalone} and made
    for variant in made:
        original = originals[variant.id.split("~")[0]]
        assert not variant.answerable_for_asker and variant.kind == "not-in-corpus"
        assert variant.asker == original.asker and not variant.follows
        new_words = set(analyze(variant.question)) - set(analyze(original.question))
        assert len(new_words) == 1 and not new_words & stems


def test_an_identifier_is_swapped_for_one_the_corpus_lacks():
    rng = random.Random(1)
    swapped = {_swap_identifier("INC-2291", {"inc-2291", "inc-2292"}, rng) for _ in range(20)}
    assert all(s and identifiers(s) and s.lower() not in {"inc-2291", "inc-2292"} for s in swapped)
    question = Question(id="q", asker="a", question="who owns INC-2291?", answerable_for_asker=True, kind="fact")
    made = near_misses([question] * 8, {"own"}, {"inc-2291"}, pool_size=50)
    assert any("INC-2291" not in m.question and identifiers(m.question) for m in made)


@pytest.mark.django_db
def test_training_writes_a_model_the_learned_gate_loads(eval_set, tmp_path, capsys, isolated_index):
    corpus, people, questions = eval_set
    out, examples = tmp_path / "gate.json", tmp_path / "examples.jsonl"
    call_command("train_answerability", "--corpus", str(corpus), "--people", str(people), "--questions",
                 str(questions), "--out", str(out), "--examples", str(examples), "--substitutes", "300")
    model = json.loads(out.read_text())
    assert model["features"] == list(FEATURES) and 0 < model["threshold"] < 1
    assert model["trained"]["by_origin"]["near-miss"] >= 1 and model["trained"]["by_origin"]["answerable"] >= 2
    assert "--substitutes 300" in model["trained"]["command"]
    gate = LearnedGate.load(out)
    rows = [json.loads(line) for line in examples.read_text().splitlines()]
    # The unanswerable salary question (alice may not read the salaries) is a negative; fred's is a positive.
    labels = {row["question_id"]: row["label"] for row in rows}
    assert labels["salary-alice"] == 0 and labels["salary-fred"] == 1 and labels["pto"] == 1
    assert all(set(row["features"]) == set(FEATURES) for row in rows)
    positives = [gate.probability(r["features"]) for r in rows if r["label"] == 1]
    negatives = [gate.probability(r["features"]) for r in rows if r["label"] == 0]
    assert sum(positives) / len(positives) > sum(negatives) / len(negatives)


@pytest.mark.django_db
def test_a_set_without_both_labels_cannot_be_fitted(eval_set, tmp_path, isolated_index):
    corpus, people, questions = eval_set
    only_one = tmp_path / "only-unanswerable.jsonl"
    only_one.write_text("\n".join(line for line in questions.read_text().splitlines()
                                  if '"answerable_for_asker": false' in line) + "\n")
    with pytest.raises(CommandError, match="two examples of each label"):
        call_command("train_answerability", "--corpus", str(corpus), "--people", str(people), "--questions",
                     str(only_one), "--out", str(tmp_path / "gate.json"), "--substitutes", "300")
