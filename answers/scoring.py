"""Sentence-level relevance of passages to a question, shared by the extractive composer and the refusal gate."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from answers.types import Passage
from retrieval.chunking import split_sentences
from retrieval.embeddings import get_embedder
from search.analysis import analyze

# Words that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = frozenset(analyze(
    "what which who whom whose when where why how much many long often does do did can could should would may "
    "might will i me my mine we our ours you your yours they their them he she his her its am is are was were "
    "been being have has had get got need want know tell please there here any some"
))
LEXICAL_WEIGHT = 0.25
RANK_PENALTY = 0.01


@dataclass(frozen=True)
class ScoredSentence:
    passage_number: int
    text: str
    start: int
    end: int
    semantic: float
    coverage: float
    score: float


def content_terms(question: str) -> set[str]:
    return set(analyze(question)) - QUESTION_WORDS


def _context(passage: Passage) -> str:
    return " > ".join(p for p in (passage.hit.title, *passage.hit.heading_path) if p)


def score_sentences(question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
    """Every sentence of every passage, best first. Cached: the gate and the composer share one pass."""
    key = tuple((p.number, p.hit.chunk_id, p.text, _context(p)) for p in passages)
    return list(_score(question, key))


@lru_cache(maxsize=256)
def _score(question: str, key: tuple[tuple[int, str, str, str], ...]) -> tuple[ScoredSentence, ...]:
    wanted = content_terms(question)
    spans: list[tuple[int, int, int, str, str]] = []
    for number, _, text, context in key:
        for start, end in split_sentences(text):
            sentence = text[start:end]
            if re.search(r"\w", sentence):
                spans.append((number, start, end, sentence, context))
    if not spans:
        return ()
    embedder = get_embedder()
    # A sentence is embedded with its title and headings: "15 days" alone says nothing.
    vectors = embedder.embed_documents([f"{context}: {sentence}" if context else sentence
                                        for _, _, _, sentence, context in spans])
    similarities = vectors @ embedder.embed_query(question)
    scored = []
    for (number, start, end, sentence, context), similarity in zip(spans, similarities, strict=True):
        terms = set(analyze(f"{context} {sentence}"))
        coverage = len(wanted & terms) / len(wanted) if wanted else 0.0
        score = float(similarity) + LEXICAL_WEIGHT * coverage - RANK_PENALTY * (number - 1)
        scored.append(ScoredSentence(number, sentence, start, end, float(similarity), coverage, score))
    scored.sort(key=lambda s: (-s.score, s.passage_number, s.start))
    return tuple(scored)
