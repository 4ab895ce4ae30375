"""What the refusal gate reads about a question and the passages retrieved for it.

Semantic closeness alone cannot tell "the K2's IP rating" (answered) from "the K2's list price" (a near miss: every
word but one is in the spec sheet). So besides the best unit's similarity and word coverage, the features say how
*specific* the question's uncovered words are (a rare English word such as "caster" or "Singapore" that no passage
holds is the thing asked about; "stuff" or "folks" is not), whether identifiers and numbers the question names are
in the passages at all, and whether the best unit holds the kind of fact asked for. Every feature is bounded and
corpus-independent, so a gate fitted on one corpus carries over to another (answers/answerability.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

from answers.question_type import MONEY, classify, stem
from answers.scoring import QUESTION_WORDS, best_unit, score_units
from answers.types import Passage
from retrieval.spelling import english_word_counts
from search.analysis import analyze, identifiers

FEATURES = (
    "relevance",            # the best unit's relevance (similarity + word coverage)
    "semantic",             # the best unit's cosine similarity to the question
    "unit_coverage",        # share of the question's content words in the best unit (with its title and headings)
    "idf_coverage_unit",    # the same, each word weighted by how rare it is in English
    "idf_coverage_passage",  # ... in the best unit's whole passage
    "specific_missing_any",  # the rarest English word of the question that no passage holds (0..1, rarer = higher)
    "specific_missing_passage",  # ... that the best unit's passage does not hold
    "unknown_missing",      # words unknown to English (slang, codes, typos) that no passage holds (0, 0.5, 1)
    "identifier_missing",   # an identifier the question names is in no passage
    "identifier_found",     # every identifier the question names is in some passage
    "number_missing",       # a number the question names is in no passage
    "type_asked",           # the question asks for a kind of fact (an amount, a date, a person, steps, a list)
    "type_held",            # ... and the best unit holds one
    "money_asked",          # the question asks for a price, cost, fee or budget
    "money_held",           # ... and the best unit states an amount of money
    "person_asked",         # the question asks who
    "name_held",            # ... and the best unit names someone (a full name, an email address, a handle)
    "specific_missing_unit",  # the rarest English word of the question the best unit (with its headings) lacks
    "best_unit_coverage_any",  # the largest share of the question's words (rarity-weighted) any one unit holds
    "best_passage_rank",    # 1 / the rank of the passage holding the best unit
    "lexical_top",          # the first passage was also found by keyword search
)

# Units compared for the widest coverage: the best-scoring ones, enough to include each passage's best few.
MAX_UNITS_COMPARED = 40
MIN_COMPOUND_PART = 3
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NUMBER = re.compile(r"(?<![\w.-])\d+(?:[.,]\d+)*(?![\w-])")
_MONEY_ASKED = re.compile(r"\b(?:price[sd]?|pricing|costs?|fees?|charges?|budget|pay|paid|salary|stipend|allowance|"
                          r"reimburs\w*|bonus|how much (?:is|are|does|do|will|would|money))\b|[$€£]", re.IGNORECASE)
_PERSON_ASKED = re.compile(r"\bwho(?:'s|se|m)?\b", re.IGNORECASE)
_NAMED = re.compile(r"\b[A-Z][a-z]+(?:[- ][A-Z][a-z]+)+\b|[\w.+-]+@[\w-]+\.[\w.]+|(?<!\w)[#@][\w-]{2,}")


@lru_cache(maxsize=1)
def english_rarity() -> tuple[dict[str, float], float]:
    """Each English word's rarity in [0, 1] (log inverse frequency in symspellpy's dictionary, scaled by the rarest
    word's), and the rarity given to a word the dictionary lacks."""
    counts = english_word_counts()
    total = sum(counts.values())
    rarest = math.log(total / min(counts.values()))
    return {word: math.log(total / count) / rarest for word, count in counts.items()}, 1.0


def _content_words(question: str) -> list[tuple[str, str, float, bool]]:
    """The question's words that say what it is about: (word, stem, rarity, known to English), numbers and
    identifiers left to their own features."""
    rarity, unknown = english_rarity()
    named = {part.lower() for identifier in identifiers(question) for part in _WORD.findall(identifier)}
    words = []
    for word in dict.fromkeys(w.lower() for w in _WORD.findall(question)):
        if any(ch.isdigit() for ch in word) or word in named:
            continue
        word_stem = stem(word)
        if not word_stem or word_stem in QUESTION_WORDS:
            continue
        words.append((word, word_stem, rarity.get(word, unknown), word in rarity))
    return words


def _held(word: str, word_stem: str, stems: set[str]) -> bool:
    """Whether text with these stems holds the word: as itself, or written in two ("helpline" as "help line",
    "cutoff" as "cut-off")."""
    if word_stem in stems:
        return True
    return any(stem(word[:i]) in stems and stem(word[i:]) in stems
               for i in range(MIN_COMPOUND_PART, len(word) - MIN_COMPOUND_PART + 1))


def _weighted_share(words: Sequence[tuple[str, str, float, bool]], stems: set[str]) -> float:
    total = sum(weight for _, _, weight, _ in words)
    return sum(weight for word, word_stem, weight, _ in words if _held(word, word_stem, stems)) / total if total else 0.0


def alphanumeric(identifier: str) -> str:
    """An identifier with its punctuation dropped: "INC-2291", "inc2291" and "INC_2291" are one."""
    return "".join(ch for ch in identifier.lower() if ch.isalnum())


def held_identifiers(passages: Sequence[Passage]) -> set[str]:
    """The identifiers the passages' titles and texts name (`alphanumeric`): only what the asker may read, since
    nothing else is among the passages."""
    return {alphanumeric(found) for p in passages for found in identifiers(f"{p.hit.title}\n{p.text}")}


def _passage_stems(passage: Passage) -> set[str]:
    return set(analyze(" ".join((passage.hit.title, *passage.hit.heading_path, passage.text))))


def features(question: str, passages: Sequence[Passage]) -> dict[str, float]:
    """The gate's features for a question and its passages (FEATURES, in that order); all zero without passages."""
    values = dict.fromkeys(FEATURES, 0.0)
    ranked = score_units(question, passages)
    best = best_unit(question, ranked)
    if best is None:
        return values
    asked = classify(question)
    words = _content_words(question)
    by_number = {p.number: p for p in passages}
    best_passage = by_number[best.passage_number]
    passage_stems = {p.number: _passage_stems(p) for p in passages}
    every_stem = set().union(*passage_stems.values())
    unit_stems = set(analyze(" ".join((best_passage.hit.title, *best_passage.hit.heading_path,
                                       best.unit.embedding_text))))
    missing_any = [(weight, known) for word, stem, weight, known in words if not _held(word, stem, every_stem)]
    values.update(
        relevance=best.relevance,
        semantic=best.semantic,
        unit_coverage=best.coverage,
        idf_coverage_unit=_weighted_share(words, unit_stems),
        idf_coverage_passage=_weighted_share(words, passage_stems[best.passage_number]),
        specific_missing_any=max((w for w, known in missing_any if known), default=0.0),
        specific_missing_passage=max((w for word, stem, w, known in words
                                      if known and not _held(word, stem, passage_stems[best.passage_number])),
                                     default=0.0),
        unknown_missing=min(sum(1 for _, known in missing_any if not known), 2) / 2,
    )
    asked_identifiers = {found.lower() for identifier in asked.identifiers for found in identifiers(identifier)}
    asked_identifiers |= {found.lower() for found in identifiers(question)}
    if asked_identifiers:
        held = held_identifiers(passages)
        missing = {alphanumeric(found) for found in asked_identifiers} - held
        values["identifier_missing"] = float(bool(missing))
        values["identifier_found"] = float(not missing)
    numbers = {n.replace(",", "") for n in _NUMBER.findall(question)}
    if numbers:
        held_numbers = {n.replace(",", "") for p in passages for n in _NUMBER.findall(p.text)}
        values["number_missing"] = float(bool(numbers - held_numbers))
    if asked.wants or asked.measure:
        values["type_asked"] = 1.0
        values["type_held"] = float(asked.holds_measured(best.text) or any(
            asked.holds(kind, best.text, best.kind) for kind in asked.wants))
    values["lexical_top"] = float(passages[0].hit.bm25_rank is not None)
    if _MONEY_ASKED.search(question):
        values["money_asked"] = 1.0
        values["money_held"] = float(bool(MONEY.search(best.text)))
    if _PERSON_ASKED.search(question):
        values["person_asked"] = 1.0
        values["name_held"] = float(bool(_NAMED.search(best.text)))
    values["specific_missing_unit"] = max((w for word, stem, w, known in words
                                           if known and not _held(word, stem, unit_stems)), default=0.0)
    values["best_unit_coverage_any"] = max(
        (_weighted_share(words, set(analyze(" ".join((by_number[s.passage_number].hit.title,
                                                      *by_number[s.passage_number].hit.heading_path,
                                                      s.unit.embedding_text)))))
         for s in ranked[:MAX_UNITS_COMPARED]), default=0.0)
    values["best_passage_rank"] = 1.0 / best.passage_number
    return values


def vector(values: dict[str, float]) -> list[float]:
    return [values[name] for name in FEATURES]
