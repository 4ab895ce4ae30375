"""The refusal gate: answer only when some passage unit (a sentence, a table row with its header, a list item, a code
block: retrieval/units.py) is close enough to the question.

The threshold is calibrated on the demo question sets (docs/answering.md explains how); it is a
setting, because a different corpus or embedding model moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from answers.question_type import classify
from answers.scoring import score_units
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
    # Bookkeeping lines ("Policy owner: …") answer only questions about the document itself.
    asks_metadata = classify(question).asks_metadata
    best = max((s.relevance for s in score_units(question, passages) if asks_metadata or not s.unit.metadata),
               default=float("-inf"))
    return Decision(best >= threshold, best, threshold)
