"""The refusal gate: its features read near misses, identifiers, numbers and answer types; the learned gate loads
only a model fitted on its features; the bundled model answers what passages hold and refuses their near misses."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from answers import answerability
from answers.answerability import BUNDLED_MODEL, LearnedGate, ModelError, judge
from answers.answerability_features import FEATURES, features
from answers.scoring import score_units
from core.config import current
from tests.answers.test_citations import passage

SPEC = passage(1, "| Property | K2 | K2-XL |\n| --- | --- | --- |\n| Rated payload | 600 kg | 1,200 kg |\n"
                  "| Ingress protection | IP54 | IP54 |", title="K2 specification", headings=("K2 specification",))
INCIDENTS = passage(2, "Jamal Carter was the incident commander for INC-2291, a retry storm caused when "
                       "wms_client.max_retries had been raised to 12.", title="Incident log", headings=("Incident log",))
PRICES = passage(3, "The PowerDock 3 list price is $5,200 per dock, including installation hardware.",
                 title="Price list", headings=("Price list",))


def test_a_near_miss_leaves_its_specific_word_uncovered_and_an_answerable_question_does_not():
    answered = features("k2 payload", [SPEC])
    near_miss = features("k2 caster wheel payload", [SPEC])
    assert answered["specific_missing_any"] == 0.0
    assert near_miss["specific_missing_any"] > 0.5  # "caster" is a rare English word no passage holds
    assert near_miss["idf_coverage_passage"] < answered["idf_coverage_passage"]
    # Slang and typos are not English words: they count apart, not as something specific that is missing.
    informal = features("k2 payload pls", [SPEC])
    assert informal["specific_missing_any"] == 0.0 and informal["unknown_missing"] == 0.5


def test_a_word_the_passage_writes_in_two_is_held():
    helpline = passage(4, "Call the IT help line on +1 503 555 0170; orders placed before the cut-off ship today.")
    values = features("it helpline and the shipping cutoff", [helpline])
    assert values["specific_missing_any"] == 0.0 and values["idf_coverage_passage"] == 1.0


def test_identifiers_and_numbers_the_question_names_must_be_in_the_passages():
    held = features("what caused INC-2291", [INCIDENTS, SPEC])
    assert (held["identifier_found"], held["identifier_missing"]) == (1.0, 0.0)
    missing = features("what caused INC-2304", [INCIDENTS, SPEC])
    assert (missing["identifier_found"], missing["identifier_missing"]) == (0.0, 1.0)
    assert features("was max_retries raised to 12", [INCIDENTS])["number_missing"] == 0.0
    assert features("was max_retries raised to 40", [INCIDENTS])["number_missing"] == 1.0


def test_answer_types_a_price_needs_money_and_who_needs_a_name():
    priced = features("powerdock 3 list price", [PRICES, SPEC])
    assert (priced["money_asked"], priced["money_held"]) == (1.0, 1.0)
    unpriced = features("k2 list price", [SPEC])
    assert (unpriced["money_asked"], unpriced["money_held"]) == (1.0, 0.0)
    who = features("who was incident commander for INC-2291", [INCIDENTS])
    assert (who["person_asked"], who["name_held"]) == (1.0, 1.0)


def test_without_passages_every_feature_is_zero_and_the_gate_refuses(learned_gate):
    assert set(features("anything", [])) == set(FEATURES) and not any(features("anything", []).values())
    assert not judge("anything", []).answerable


def test_the_learned_gate_loads_only_a_model_fitted_on_its_features(tmp_path):
    model = json.loads(BUNDLED_MODEL.read_text())
    assert tuple(model["features"]) == FEATURES and 0 < model["threshold"] < 1
    assert model["trained"]["command"].startswith("python manage.py train_answerability")
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**model, "features": model["features"][:-1]}))
    with pytest.raises(ModelError, match="other features"):
        LearnedGate.load(stale)
    short = tmp_path / "short.json"
    short.write_text(json.dumps({**model, "coefficients": model["coefficients"][:-1]}))
    with pytest.raises(ModelError, match="one number per feature"):
        LearnedGate.load(short)
    with pytest.raises(ModelError, match="cannot read"):
        LearnedGate.load(tmp_path / "missing.json")


def test_the_gate_setting_chooses_the_learned_model_or_the_threshold(tmp_path):
    # A model whose only say is the best unit's semantic similarity, with its bar at 0.5 probability.
    model = json.loads(BUNDLED_MODEL.read_text())
    only_semantic = {**model, "mean": [0.0] * len(FEATURES), "scale": [1.0] * len(FEATURES),
                     "coefficients": [10.0 if name == "semantic" else 0.0 for name in FEATURES],
                     "intercept": -5.0, "threshold": 0.5}
    path = tmp_path / "semantic.json"
    path.write_text(json.dumps(only_semantic))
    answerability._gate.cache_clear()
    with override_settings(CITEWISE=current().replace(answerability="learned", answerability_model=str(path))):
        decision = judge("k2 payload", [SPEC])
        assert decision.threshold == 0.5
        assert decision.answerable == (features("k2 payload", [SPEC])["semantic"] > 0.5)
    with override_settings(CITEWISE=current().replace(answerability="threshold", answer_threshold=-10.0)):
        assert judge("k2 payload", [SPEC]) == answerability.Decision(True, judge("k2 payload", [SPEC]).score, -10.0)
    answerability._gate.cache_clear()


@pytest.fixture
def learned_gate(settings):
    settings.CITEWISE = settings.CITEWISE.replace(answerability="learned", answerability_model="")


@pytest.mark.usefixtures("learned_gate")
@pytest.mark.parametrize(("question", "passages"), [
    ("whats the k2 payload", [SPEC]),
    ("who was IC for INC-2291", [INCIDENTS]),
    ("list price of a powerdock 3?", [PRICES]),
])
def test_the_bundled_gate_answers_what_the_passages_hold(question, passages):
    assert judge(question, passages).answerable


@pytest.mark.usefixtures("learned_gate")
@pytest.mark.parametrize(("question", "passages"), [
    ("what caused INC-2304", [INCIDENTS]),  # another incident
    ("list price of a k2 robot", [SPEC]),  # the spec sheet has no prices
    ("k2 caster wheel part number", [SPEC]),  # nothing about casters
])
def test_the_bundled_gate_refuses_near_misses(question, passages):
    assert not judge(question, passages).answerable


# -- the threshold gate (the default) ------------------------------------------------------------------------------

def test_the_threshold_gate_refuses_an_identifier_no_passage_holds_however_close_the_rest_is():
    with override_settings(CITEWISE=current().replace(answerability="threshold")):
        assert judge("who was incident commander for INC-2291", [INCIDENTS, SPEC]).answerable
        refused = judge("who was incident commander for INC-2304", [INCIDENTS, SPEC])
        assert not refused.answerable and refused.score >= refused.threshold  # close enough, but not about it
    # Punctuation does not make an identifier another one.
    assert answerability.unheld_identifier("who was commander for inc2291", [INCIDENTS]) == ""
    assert answerability.unheld_identifier("who was commander for INC-2304", [INCIDENTS]) == "inc-2304"


def test_the_threshold_gate_refuses_a_price_question_answered_by_no_amount():
    with override_settings(CITEWISE=current().replace(answerability="threshold")):
        assert judge("powerdock 3 list price", [PRICES, SPEC]).answerable
        unpriced = judge("list price of a k2-xl robot?", [SPEC])
        assert not unpriced.answerable
    # "paid leave", "charge time": words near money that do not ask a price.
    assert not answerability.unpriced("how long does a k2 take to charge", [])
    assert not answerability.unpriced("how much paid leave do i get", [])
    assert not answerability.unpriced("which days of the month does my salary land in my account", [])
    assert answerability.unpriced("how much does a k2 cost", [])
    assert not answerability.unpriced("is there a fee for a second badge", [])  # "no fee" answers it
    assert not answerability.unpriced("What is the tabonymo budget code?", [])  # a code, not an amount
    assert answerability.unpriced("salary band for a p5 in zone b", [])
    salary = passage(5, "The engineering salary band goes as high as 1.200.000 kroner.", title="Salary bands")
    assert not answerability.unpriced("how high does the engineering salary band go", score_units(
        "how high does the engineering salary band go", [salary]))
