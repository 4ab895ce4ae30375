"""The BM25 text analysis both backends share, so their term statistics mean the same thing.

Elasticsearch's `english` analyzer (standard tokenizer, possessive strip, lowercase, English stop
words, Porter stemming) lives in the analysis-common module, which the integ-test distribution
lacks. Running the same chain here and indexing its output into a plain `standard`-analysed field
gives identical stemming on every distribution, and on SQLite FTS5.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, which the `english` analyzer uses.
ENGLISH_STOP_WORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
     "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"]
)
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("porter")


def analyze(text: str) -> list[str]:
    """Lowercased, stop-word-free, Porter-stemmed terms, in order."""
    terms: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group(0)
        if token.endswith(("'s", "’s")):
            token = token[:-2]
        token = token.replace("’", "'")
        if not token or token in ENGLISH_STOP_WORDS:
            continue
        terms.extend(part for part in token.split("'") if part)
    return _stemmer().stemWords(terms)


def analyzed_text(text: str) -> str:
    return " ".join(analyze(text))
