"""Unit-level relevance of passages to a question, shared by the extractive composer and the refusal gate.

A unit (retrieval/units.py) is a sentence, a table row with its header, a small table, a list item or list, or a
code block. Each is embedded with its title and headings, exactly as `retrieval.units.embedding_texts` spells it.
Indexing stores those vectors with the chunk (search/unit_vectors.py), so answering normally embeds only the
question; a unit whose vector is not stored (an index built before they were, a passage that is not a chunk's text
as indexed) is embedded here.

With int8 embeddings (`CITEWISE_EMBEDDING_BACKEND=onnx-int8`, the default) documents, and so the stored unit
vectors, come from int8 weights, questions from the fp32 ones, and the units closest to the question are scored
again at full precision (`answer_rescored_units`), as Elasticsearch rescores an int8_hnsw search with the raw
vectors: int8 weights make ingestion ~2x faster but lower a unit's cosine by ~0.01, enough to move an answer across
the refusal gate's bar, which was set on the model's own vectors. Re-embedding the unit the gate reads and the one
the composer starts from cost 6 ms at p50 on the answer harness (a unit can be a 256-token table, so more cost
more, for the same answers: docs/benchmarks.md, "Embedding backends"); storing fp32 unit vectors would have cost
most of int8's gain at index time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from answers.question_type import classify
from answers.types import Passage
from core.config import current
from retrieval.embeddings import Embedder, get_embedder
from retrieval.units import Unit, context, split_units, unit_embedding_text
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
# The composer's preferences, on top of relevance: a unit holding the kind of fact asked for ("how much" → an
# amount), one naming the identifier asked about, and away from bookkeeping lines nobody asked for.
TYPE_BONUS = 0.05
MEASURED_BONUS = 0.10
IDENTIFIER_BONUS = 0.10
METADATA_PENALTY = 0.20
# The retriever's order is evidence too: a little more weight than the gate's rank penalty gives it.
RANK_PREFERENCE = 0.02


@dataclass(frozen=True)
class ScoredUnit:
    passage_number: int
    unit: Unit
    semantic: float
    coverage: float
    # What the refusal gate reads: closeness to the question. `score` adds the composer's preferences.
    relevance: float
    score: float

    @property
    def text(self) -> str:
        return self.unit.text

    @property
    def start(self) -> int:
        return self.unit.start

    @property
    def kind(self) -> str:
        return self.unit.kind


def best_unit(question: str, ranked: Sequence[ScoredUnit]) -> ScoredUnit | None:
    """The unit closest to the question (by relevance); bookkeeping lines ("Policy owner: …") count only when the
    question asks about the document itself."""
    asks_metadata = classify(question).asks_metadata
    return max((s for s in ranked if asks_metadata or not s.unit.metadata), key=lambda s: s.relevance, default=None)


def content_terms(question: str) -> set[str]:
    return set(analyze(question)) - QUESTION_WORDS


def _context(passage: Passage) -> str:
    return context(passage.hit.title, passage.hit.heading_path)


PassageKey = tuple[tuple[int, str, str, str, bytes], ...]


def score_units(question: str, passages: Sequence[Passage], *, embedder: Embedder | None = None) -> list[ScoredUnit]:
    """Every unit of every passage, best first. Cached: the gate and the composer share one pass."""
    key = tuple((p.number, p.hit.chunk_id, p.text, _context(p), p.hit.unit_vectors) for p in passages)
    return list(_score(question, key, embedder or get_embedder(), current().answer_rescored_units))


# The key holds each passage's stored vectors (a few kB); the gate, the composer and a question's parts are what
# share an entry, so a short cache is enough.
@lru_cache(maxsize=64)
def _unit_vectors(key: PassageKey, embedder: Embedder) -> tuple[tuple[tuple[int, Unit, str], ...], np.ndarray]:
    """The units of the passages with their contexts, and their vectors: stored ones where the index holds them,
    the rest embedded now (each string once, however many passages share it)."""
    entries: list[tuple[int, Unit, str]] = []
    vectors_found: dict[int, np.ndarray] = {}
    missing: dict[str, list[int]] = {}
    for number, _, text, unit_context, blob in key:
        stored = decode_unit_vectors(blob)
        for unit in split_units(text):
            embedded = unit_embedding_text(unit_context, unit)
            vector = stored.get(unit_key(embedded))
            if vector is not None and vector.shape == (embedder.dimensions,):
                vectors_found[len(entries)] = vector
            else:
                missing.setdefault(embedded, []).append(len(entries))
            entries.append((number, unit, unit_context))
    vectors = np.zeros((len(entries), embedder.dimensions), dtype=np.float32)
    for position, vector in vectors_found.items():
        vectors[position] = vector
    if missing:
        for positions, vector in zip(missing.values(), embedder.embed_documents(list(missing)), strict=True):
            vectors[positions] = vector
    return tuple(entries), vectors


@lru_cache(maxsize=256)
def _score(question: str, key: PassageKey, embedder: Embedder, rescored_units: int) -> tuple[ScoredUnit, ...]:
    entries, vectors = _unit_vectors(key, embedder)
    if not entries:
        return ()
    wanted = content_terms(question)
    asked = classify(question)
    precise = embedder.full_precision()
    question_vector = precise.embed_query(question)
    similarities = vectors @ question_vector
    coverages: list[float] = []
    closeness: list[float] = []  # relevance less the similarity
    preferences: list[float] = []  # score less the relevance
    for number, unit, unit_context in entries:
        terms = set(analyze(f"{unit_context} {unit.embedding_text}"))
        coverage = len(wanted & terms) / len(wanted) if wanted else 0.0
        coverages.append(coverage)
        closeness.append(LEXICAL_WEIGHT * coverage - RANK_PENALTY * (number - 1))
        preference = -RANK_PREFERENCE * (number - 1)
        if asked.holds_measured(unit.text):
            preference += MEASURED_BONUS
        elif any(asked.holds(kind, unit.text, unit.kind) for kind in asked.wants):
            preference += TYPE_BONUS
        if asked.identifiers and asked.holds_identifier(unit.text):
            preference += IDENTIFIER_BONUS
        if unit.metadata and not asked.asks_metadata:
            preference -= METADATA_PENALTY
        preferences.append(preference)
    if precise is not embedder and rescored_units:
        relevance = similarities + np.asarray(closeness)
        leaders = set(np.argsort(-relevance)[:rescored_units]) | set(
            np.argsort(-(relevance + np.asarray(preferences)))[:rescored_units])
        chosen = sorted(int(i) for i in leaders)
        texts = [unit_embedding_text(entries[i][2], entries[i][1]) for i in chosen]
        similarities = similarities.copy()
        similarities[chosen] = precise.embed_documents(texts) @ question_vector
    scored = []
    for position, (number, unit, _) in enumerate(entries):
        similarity = float(similarities[position])
        relevance_of_unit = similarity + closeness[position]
        scored.append(ScoredUnit(number, unit, similarity, coverages[position], relevance_of_unit,
                                 relevance_of_unit + preferences[position]))
    scored.sort(key=lambda s: (-s.score, s.passage_number, s.unit.start))
    return tuple(scored)
