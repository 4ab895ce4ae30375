"""The refusal gate: answer only when some passage sentence is close enough to the question.

The threshold is calibrated on the demo question sets (docs/answering.md explains how); it is a
setting, because a different corpus or embedding model moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from answers.scoring import score_sentences
from answers.types import Passage
from core.config import current

DEFAULT_THRESHOLD = 0.65


@dataclass(frozen=True)
class Decision:
    answerable: bool
    score: float
    threshold: float


def judge(question: str, passages: Sequence[Passage]) -> Decision:
    threshold = current().answer_threshold
    scored = score_sentences(question, passages)
    best = scored[0].score if scored else float("-inf")
    return Decision(best >= threshold, best, threshold)
