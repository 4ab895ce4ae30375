"""Fit the refusal gate (answers/answerability.py) on an evaluation set: `manage.py train_answerability`.

Examples come from asking the set's questions through the real answer path, as their askers, of a throwaway copy of
the corpus (answers/evaluation.py), and recording what the gate sees (answers/answerability_features.py):

- an answerable question whose passages include an expected document is a positive (one whose passages miss it
  says nothing about the gate: retrieval failed first);
- an unanswerable question (not in the corpus, or not readable by its asker) is a negative;
- **near misses** are negatives made from the answerable questions: the question's most specific word that the
  corpus holds is swapped for an English word of about the same rarity that the corpus never uses ("how many
  seats in Robotics for Everyone" → "… in Pottery for Everyone"), and a named identifier for one the corpus lacks
  ("due date on INC-2294" → "INC-2794"). They look like the questions a corpus almost answers, which are the ones a
  similarity threshold lets through.

The model is a logistic regression on standardised features, stored as plain numbers in JSON (no pickle), with the
probability threshold chosen on cross-validated predictions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import mimetypes
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from answers import evaluation
from answers.answerability import judge_by_threshold
from answers.answerability_features import FEATURES, english_rarity, features, vector
from answers.pipeline import DEFAULT_STEPS
from answers.question_type import stem
from answers.scoring import QUESTION_WORDS
from answers.types import Passage
from connectors import parsing
from connectors.models import Document
from retrieval.embeddings import Embedder, get_embedder
from search.analysis import analyze, identifiers

logger = logging.getLogger("citewise.answering.training")

# Rarity band a substitute word is drawn from, around the word it replaces.
RARITY_BAND = 0.04
# Related but not a synonym: a synonym the corpus never uses may still be answered by the word it does use.
SIMILAR = (0.3, 0.6)
SUBSTITUTE_POOL = 4000
# What a false answer (a confident quote that answers something else) costs against a false refusal (which still
# lists the nearest documents). Even: the targets bound both rates, and with the features at hand, a dearer
# false answer buys little refusal accuracy with many false refusals (docs/answering.md).
FALSE_ANSWER_COST = 1.0
_WORD = re.compile(r"[^\W\d_]{4,}")


@dataclass
class Example:
    question_id: str
    question: str
    search_query: str
    label: int
    origin: str  # "answerable", "unanswerable" or "near-miss"
    features: dict[str, float] = field(default_factory=dict)


def corpus_vocabulary(corpus: Path) -> tuple[set[str], set[str]]:
    """Every stem and every identifier the corpus's files hold (parsed as ingestion parses them)."""
    stems: set[str] = set()
    found: set[str] = set()
    for path in sorted(corpus.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        mime_type, _ = mimetypes.guess_type(path.name)
        try:
            parsed = parsing.parse(path.read_bytes(), mime_type or "", max_bytes=50_000_000)
        except parsing.ParseError:
            continue
        text = " ".join([parsed.title, *(section.text for section in parsed.sections)])
        stems.update(analyze(text))
        found.update(identifiers(text))
    return stems, found


def _substitutes(corpus_stems: set[str]) -> list[tuple[float, str]]:
    rarity, _ = english_rarity()
    pool = []
    for word, value in rarity.items():
        if not word.isalpha() or len(word) < 4:
            continue
        word_stem = stem(word)
        if word_stem and word_stem not in corpus_stems and word_stem not in QUESTION_WORDS:
            pool.append((value, word))
    pool.sort()
    return pool


def _swap_identifier(identifier: str, corpus_identifiers: set[str], rng: random.Random) -> str | None:
    digits = [m for m in re.finditer(r"\d", identifier)]
    for _ in range(20):
        chars = list(identifier)
        for match in rng.sample(digits, k=min(2, len(digits))):
            chars[match.start()] = str((int(chars[match.start()]) + rng.randint(1, 9)) % 10)
        candidate = "".join(chars)
        if candidate.lower() not in corpus_identifiers:
            return candidate
    return None


class _Substitutes:
    """Words the corpus never uses, to put in place of one it does: of about the same rarity, and related to it but
    not a synonym (cosine similarity in SIMILAR), so the variant reads like a question about a neighbouring thing
    ("rear bumper" for "drive wheel") rather than nonsense."""

    def __init__(self, corpus_stems: set[str], rng: random.Random, embedder: Embedder, size: int) -> None:
        pool = _substitutes(corpus_stems)
        if len(pool) > size:
            pool = sorted(rng.sample(pool, size))
        self.pool, self.rng, self.embedder = pool, rng, embedder
        self.values = [value for value, _ in pool]
        self.vectors = np.asarray(embedder.embed_documents([word for _, word in pool]), dtype=np.float32)

    def near(self, word: str, value: float) -> str | None:
        low = int(np.searchsorted(self.values, value - RARITY_BAND))
        high = int(np.searchsorted(self.values, value + RARITY_BAND))
        if high <= low:
            return None
        similarity = self.vectors[low:high] @ np.asarray(self.embedder.embed_query(word), dtype=np.float32)
        related = [low + int(i) for i in np.flatnonzero((similarity >= SIMILAR[0]) & (similarity <= SIMILAR[1]))]
        if related:
            return self.pool[self.rng.choice(related)][1]
        return self.pool[self.rng.randrange(low, high)][1]


def near_misses(questions: Sequence[evaluation.Question], corpus_stems: set[str], corpus_identifiers: set[str], *,
                seed: int = 0, embedder: Embedder | None = None,
                pool_size: int = SUBSTITUTE_POOL) -> list[evaluation.Question]:
    """An unanswerable variant of each standalone answerable question (see the module's docstring)."""
    rng = random.Random(seed)
    rarity, _ = english_rarity()
    substitutes = _Substitutes(corpus_stems, rng, embedder or get_embedder(), pool_size)
    made = []
    for question in questions:
        if not question.answerable_for_asker or question.follows:
            continue
        text = question.question
        named = [m for m in re.finditer(r"[\w][\w\-./]*[\w]", text) if identifiers(m.group(0))]
        if named and rng.random() < 0.5:
            target = rng.choice(named)
            swapped = _swap_identifier(target.group(0), corpus_identifiers, rng)
            if swapped:
                made.append(_variant(question, text[:target.start()] + swapped + text[target.end():], "identifier"))
                continue
        anchors = []
        for match in _WORD.finditer(text):
            word = match.group(0).lower()
            word_stem = stem(word)
            if word in rarity and word_stem in corpus_stems and word_stem not in QUESTION_WORDS:
                anchors.append((rarity[word], match))
        if not anchors:
            continue
        value, anchor = max(anchors, key=lambda pair: pair[0])
        substitute = substitutes.near(anchor.group(0).lower(), value)
        if substitute is None:
            continue
        made.append(_variant(question, text[:anchor.start()] + substitute + text[anchor.end():], "word"))
    return made


def _variant(question: evaluation.Question, text: str, how: str) -> evaluation.Question:
    return evaluation.Question(id=f"{question.id}~near-{how}", asker=question.asker, question=text,
                               answerable_for_asker=False, kind="not-in-corpus")


class _Recorder:
    """Pipeline steps that record, per question asked, the search query, its passages' documents and the gate's
    features; the decision itself is the threshold gate's, so the conversations go as they would untrained."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def rewrite(self, question: str, history: Sequence[Any]) -> str:
        self.seen.append({"question": question})
        return DEFAULT_STEPS.rewrite(question, history)

    def judge(self, search_query: str, passages: Sequence[Passage]) -> Any:
        documents = dict(Document.objects.filter(id__in=[p.hit.document_id for p in passages])
                         .values_list("id", "external_id"))
        self.seen[-1].update(search_query=search_query, features=features(search_query, passages),
                             documents={evaluation.doc_id(documents[p.hit.document_id]) for p in passages
                                        if p.hit.document_id in documents})
        return judge_by_threshold(search_query, passages)


def collect(corpus: Path, people: Sequence[evaluation.Person], questions: Sequence[evaluation.Question], *,
            backend: str = "embedded", progress: bool = False, seed: int = 0,
            pool_size: int = SUBSTITUTE_POOL) -> list[Example]:
    """Ask the set's questions and their near misses, and label what the gate saw for each."""
    stems, corpus_identifiers = corpus_vocabulary(corpus)
    asked = [*questions, *near_misses(questions, stems, corpus_identifiers, seed=seed, pool_size=pool_size)]
    recorder = _Recorder()
    steps = dataclasses.replace(DEFAULT_STEPS, rewrite=recorder.rewrite, judge=recorder.judge)
    result = evaluation.run(corpus, people, asked, backend=backend, progress=progress, steps=steps)
    seen = iter(recorder.seen)
    examples = []
    for row in result.rows:
        question = row.question
        if row.answer.error and not row.answer.conversation_id:
            continue
        record = next(seen)
        if record["question"] != question.question or "features" not in record:
            raise RuntimeError(f"lost track of the questions asked at {question.id}")
        if question.answerable_for_asker:
            if not set(question.expected_doc_ids) & record["documents"]:
                continue
            label, origin = 1, "answerable"
        else:
            label, origin = 0, "near-miss" if "~near-" in question.id else "unanswerable"
        examples.append(Example(question.id, question.question, record["search_query"], label, origin,
                                record["features"]))
    return examples


def _weighted_error(labels: np.ndarray, origins: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    """False refusals plus FALSE_ANSWER_COST × false answers, each a rate; the false-answer rate is averaged over
    the negatives' origins, so the many near misses do not drown out the real unanswerable questions."""
    answered = probabilities >= threshold
    false_refusals = np.mean(~answered[labels == 1]) if np.any(labels == 1) else 0.0
    rates = [np.mean(answered[(labels == 0) & (origins == origin)]) for origin in set(origins[labels == 0])]
    return float(false_refusals + FALSE_ANSWER_COST * (np.mean(rates) if rates else 0.0))


def fit(examples: Sequence[Example], *, seed: int = 0) -> dict[str, Any]:
    """A logistic regression on the examples, its threshold and its cross-validated error rates, as JSON-ready
    numbers."""
    from sklearn.linear_model import LogisticRegression  # training only: answering reads the numbers
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.array([vector(e.features) for e in examples], dtype=np.float64)
    y = np.array([e.label for e in examples])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    smallest_class = int(min(np.sum(y == 0), np.sum(y == 1)))
    if smallest_class < 2:
        raise ValueError("fitting needs at least two examples of each label (answerable and unanswerable)")
    folds = StratifiedKFold(n_splits=min(5, smallest_class), shuffle=True, random_state=seed)
    held_out = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    origins = np.array([e.origin for e in examples])
    threshold = float(min(grid, key=lambda t: (_weighted_error(y, origins, held_out, t), -t)))
    model.fit(x, y)
    scaler, regression = model[0], model[1]
    answered = held_out >= threshold

    def rate(mask: np.ndarray) -> float | None:
        return round(float(np.mean(mask)), 4) if mask.size else None

    return {
        "kind": "logistic-regression",
        "features": list(FEATURES),
        "mean": scaler.mean_.round(6).tolist(),
        "scale": scaler.scale_.round(6).tolist(),
        "coefficients": regression.coef_[0].round(6).tolist(),
        "intercept": round(float(regression.intercept_[0]), 6),
        "threshold": threshold,
        "trained": {
            "examples": len(examples),
            "by_origin": {origin: int(np.sum(origins == origin)) for origin in sorted(set(origins))},
            "cross_validated": {
                "false_refusal_rate": rate(~answered[y == 1]),
                "false_answer_rate_unanswerable": rate(answered[origins == "unanswerable"]),
                "false_answer_rate_near_miss": rate(answered[origins == "near-miss"]),
            },
            "date": datetime.now(UTC).date().isoformat(),
        },
    }


def write_model(model: dict[str, Any], path: Path, command: str) -> None:
    model = {**model, "trained": {**model["trained"], "command": command}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
