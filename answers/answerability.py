"""The refusal gate: answer only when the passages hold an answer to the question.

Two gates, chosen by the `answerability` setting:

- **learned** (opt-in): a logistic regression over features of the question and its passages
  (answers/answerability_features.py: the best unit's similarity and word coverage, how specific the words no
  passage holds are, identifiers and numbers found or not, the kind of fact asked for and held). Its numbers live in
  answers/answerability_model.json, fitted by `manage.py train_answerability` on the visible evaluation set and near
  misses made from it (answers/answerability_training.py); `answerability_model` names another fitted file.
- **threshold** (the default): the best passage unit (a sentence, a table row with its header, a list item, a code block:
  retrieval/units.py) must score at least `answer_threshold`, and the passages must be able to hold the answer: an
  identifier the question names is in one of them, and a question asking a price gets a unit stating one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from answers.answerability_features import FEATURES, alphanumeric, features, held_identifiers
from answers.question_type import DATE, MONEY, classify
from answers.scoring import ScoredUnit, best_unit, score_units
from answers.types import Passage
from core.config import current
from search.analysis import identifiers

DEFAULT_THRESHOLD = 0.65
BUNDLED_MODEL = Path(__file__).resolve().parent / "answerability_model.json"


class ModelError(ValueError):
    """The fitted model file cannot be used (missing, malformed, or for other features)."""


@dataclass(frozen=True)
class Decision:
    answerable: bool
    score: float
    threshold: float

    def within(self, leeway: float) -> bool:
        """Whether the score clears the threshold less `leeway`: the bar for one part of a question the gate has
        already found answerable as a whole or in another part."""
        return self.score >= self.threshold - leeway


@dataclass(frozen=True)
class LearnedGate:
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float
    threshold: float

    @classmethod
    def load(cls, path: Path) -> LearnedGate:
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
            features = tuple(model["features"])
            mean, scale, coefficients = (tuple(float(v) for v in model[key])
                                         for key in ("mean", "scale", "coefficients"))
            intercept, threshold = float(model["intercept"]), float(model["threshold"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"cannot read the answerability model {path}: {exc}") from exc
        if features != FEATURES:
            raise ModelError(f"{path} was fitted on other features; retrain it (manage.py train_answerability)")
        if any(len(values) != len(FEATURES) for values in (mean, scale, coefficients)):
            raise ModelError(f"{path} does not have one number per feature")
        return cls(mean, scale, coefficients, intercept, threshold)

    def probability(self, values: dict[str, float]) -> float:
        z = self.intercept + sum(c * (values[name] - m) / (s or 1.0) for name, m, s, c
                                 in zip(FEATURES, self.mean, self.scale, self.coefficients, strict=True))
        return 1.0 / (1.0 + math.exp(-z))


@lru_cache(maxsize=4)
def _gate(path: str) -> LearnedGate:
    return LearnedGate.load(Path(path) if path else BUNDLED_MODEL)


# A question asking what something costs: "price", "fee", "budget", "salary"; not "paid leave" or "charge time".
_PRICE_ASKED = re.compile(r"\b(?:prices?|pricing|priced|costs?|fees?|budgets?|salary|salaries|stipends?|allowances?|"
                          r"how much money)\b|[$€£]\s?\d", re.IGNORECASE)
_YES_NO = re.compile(r"^\W*(?:is|are|was|were|does|do|did|can|could|will|would|should|has|have|may)\b", re.IGNORECASE)
# Words after a price word that leave it the thing asked for: a preposition or verb ("price of", "cost per robot",
# "fee is"), or a money noun ("salary band", "budget cap").
_PRICE_FOLLOWERS = frozenset({
    "of", "per", "for", "in", "on", "at", "to", "is", "are", "was", "were", "do", "does", "did", "will", "would",
    "and", "or", "if", "when", "with", "from", "this", "that", "these", "those", "a", "an", "the", "my", "our",
    "your", "their", "its", "be", "been", "band", "bands", "range", "ranges", "cap", "caps", "limit", "limits",
    "rate", "rates", "amount", "amounts", "total", "totals", "max", "maximum", "minimum", "min",
})
# The units the composer would quote first: one of them must state the price asked for.
PRICED_UNITS = 3


def unheld_identifier(question: str, passages: Sequence[Passage]) -> str:
    """An identifier the question names ("INC-2304", "NA-4471-Z") that no passage holds, however it is punctuated;
    "" when there is none. What the asker may not read is not among the passages, so it counts as not held."""
    asked = identifiers(question)
    if not asked:
        return ""
    held = held_identifiers(passages)
    return next((found for found in asked if alphanumeric(found) not in held), "")


def _asks_price(question: str) -> bool:
    """Whether the question asks what something costs: a price word that is what is asked for ("list price of the
    K2", "salary band"), not a modifier of something else ("the budget code", "the cost centre")."""
    for match in _PRICE_ASKED.finditer(question):
        following = re.match(r"\s+([^\W\d_]+)", question[match.end():])
        if following is None or following.group(1).lower() in _PRICE_FOLLOWERS:
            return True
    return False


def unpriced(question: str, ranked: Sequence[ScoredUnit]) -> bool:
    """Whether the question asks a price, cost, fee or budget and none of the units the composer would quote first
    states an amount of money: the spec sheet of the robot whose price is asked for is not an answer."""
    # "which day does my salary land" asks a date; "is there a fee for …" may be answered "there is no fee".
    if not _asks_price(question) or DATE in classify(question).wants or _YES_NO.match(question):
        return False
    return not any(MONEY.search(s.text) for s in ranked[:PRICED_UNITS])


def judge_by_threshold(question: str, passages: Sequence[Passage]) -> Decision:
    """Answerable when the best unit scores at least `answer_threshold`, unless the passages cannot hold the answer:
    an identifier the question names is in none of them, or a price is asked and the units that would be quoted
    name no amount."""
    threshold = current().answer_threshold
    ranked = score_units(question, passages)
    best = best_unit(question, ranked)
    score = best.relevance if best is not None else float("-inf")
    answerable = score >= threshold and not unheld_identifier(question, passages) and not unpriced(question, ranked)
    return Decision(answerable, score, threshold)


def judge(question: str, passages: Sequence[Passage]) -> Decision:
    config = current()
    if config.answerability == "threshold":
        return judge_by_threshold(question, passages)
    if not passages:
        return Decision(False, 0.0, 1.0)
    gate = _gate(config.answerability_model)
    probability = gate.probability(features(question, passages))
    return Decision(probability >= gate.threshold, probability, gate.threshold)
