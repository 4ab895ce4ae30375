"""The refusal gate: answer only when the passages hold an answer to the question.

Two gates, chosen by the `answerability` setting:

- **learned** (opt-in): a logistic regression over features of the question and its passages
  (answers/answerability_features.py: the best unit's similarity and word coverage, how specific the words no
  passage holds are, identifiers and numbers found or not, the kind of fact asked for and held). Its numbers live in
  answers/answerability_model.json, fitted by `manage.py train_answerability` on the visible evaluation set and near
  misses made from it (answers/answerability_training.py); `answerability_model` names another fitted file.
- **threshold** (the default): the best passage unit (a sentence, a table row with its header, a list item, a code block:
  retrieval/units.py) must score at least `answer_threshold`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from answers.answerability_features import FEATURES, features
from answers.scoring import best_unit, score_units
from answers.types import Passage
from core.config import current

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


def judge_by_threshold(question: str, passages: Sequence[Passage]) -> Decision:
    threshold = current().answer_threshold
    best = best_unit(question, score_units(question, passages))
    score = best.relevance if best is not None else float("-inf")
    return Decision(score >= threshold, score, threshold)


def judge(question: str, passages: Sequence[Passage]) -> Decision:
    config = current()
    if config.answerability == "threshold":
        return judge_by_threshold(question, passages)
    if not passages:
        return Decision(False, 0.0, 1.0)
    gate = _gate(config.answerability_model)
    probability = gate.probability(features(question, passages))
    return Decision(probability >= gate.threshold, probability, gate.threshold)
