"""The default composer: no LLM; picks the passage sentences that answer the question and cites them."""

from __future__ import annotations

from collections.abc import Sequence

from answers.scoring import ScoredSentence, score_sentences
from answers.types import Composition, Passage, Turn
from search.analysis import analyze

MAX_SENTENCES = 3
# Further sentences must score nearly as well as the best one to be worth the reader's time.
SCORE_MARGIN = 0.08


def _redundant(candidate: str, chosen: list[str]) -> bool:
    terms = set(analyze(candidate))
    for other in chosen:
        other_terms = set(analyze(other))
        if terms and len(terms & other_terms) / len(terms) > 0.8:
            return True
    return False


class ExtractiveComposer:
    name = "extractive"

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        scored = score_sentences(question, passages)
        if not scored:
            return Composition(text="", composer=self.name, declined=True)
        best = scored[0].score
        chosen: list[ScoredSentence] = []
        for sentence in scored:
            if len(chosen) == MAX_SENTENCES or sentence.score < best - SCORE_MARGIN:
                break
            if not _redundant(sentence.text, [c.text for c in chosen]):
                chosen.append(sentence)
        # Read in document order within a passage, passages in rank order.
        chosen.sort(key=lambda s: (s.passage_number, s.start))
        parts = []
        for sentence in chosen:
            text = sentence.text.strip()
            ending = text[-1] if text[-1] in ".!?" else "."
            body = text[:-1].rstrip() if text[-1] in ".!?" else text
            parts.append(f"{body} [{sentence.passage_number}]{ending}")
        return Composition(text=" ".join(parts), composer=self.name)
