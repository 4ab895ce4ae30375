"""Sentence-level relevance of passages to a question, shared by the extractive composer and the refusal gate.

Each unit is embedded with its context (retrieval/units.py::embedding_texts). Indexing stores those vectors with the
chunk (search/unit_vectors.py), so answering normally embeds only the question; a unit whose vector is not stored
(an index built before they were, a passage that is not a chunk's text as indexed) is embedded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from answers.types import Passage
from retrieval.embeddings import Embedder, get_embedder
from retrieval.units import embedding_texts, unit_spans
from search.analysis import analyze
from search.unit_vectors import decode_unit_vectors, unit_key

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


def score_sentences(question: str, passages: Sequence[Passage], *,
                    embedder: Embedder | None = None) -> list[ScoredSentence]:
    """Every sentence of every passage, best first. Cached: the gate and the composer share one pass."""
    key = tuple((p.number, p.hit.chunk_id, p.text, p.hit.title, p.hit.heading_path, p.hit.unit_vectors)
                for p in passages)
    return list(_score(question, key, embedder or get_embedder()))


# The key holds each passage's stored vectors (a few kB); the gate and the composer of one question are what
# share an entry, so a short cache is enough.
@lru_cache(maxsize=64)
def _score(question: str, key: tuple[tuple[int, str, str, str, tuple[str, ...], bytes], ...],
           embedder: Embedder) -> tuple[ScoredSentence, ...]:
    wanted = content_terms(question)
    units: list[tuple[int, int, int, str, str]] = []
    found: dict[int, np.ndarray] = {}
    missing: dict[str, list[int]] = {}  # each string once, however many passages share it
    for number, _, text, title, heading_path, blob in key:
        context = " > ".join(p for p in (title, *heading_path) if p)
        stored = decode_unit_vectors(blob)
        for (start, end), embedded in zip(unit_spans(text), embedding_texts(title, heading_path, text), strict=True):
            vector = stored.get(unit_key(embedded))
            if vector is not None and vector.shape == (embedder.dimensions,):
                found[len(units)] = vector
            else:
                missing.setdefault(embedded, []).append(len(units))
            units.append((number, start, end, text[start:end], context))
    if not units:
        return ()
    vectors = np.zeros((len(units), embedder.dimensions), dtype=np.float32)
    for position, vector in found.items():
        vectors[position] = vector
    if missing:
        for positions, vector in zip(missing.values(), embedder.embed_documents(list(missing)), strict=True):
            vectors[positions] = vector
    similarities = vectors @ embedder.embed_query(question)
    scored = []
    for (number, start, end, sentence, context), similarity in zip(units, similarities, strict=True):
        terms = set(analyze(f"{context} {sentence}"))
        coverage = len(wanted & terms) / len(wanted) if wanted else 0.0
        score = float(similarity) + LEXICAL_WEIGHT * coverage - RANK_PENALTY * (number - 1)
        scored.append(ScoredSentence(number, sentence, start, end, float(similarity), coverage, score))
    scored.sort(key=lambda s: (-s.score, s.passage_number, s.start))
    return tuple(scored)
