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


# Identifiers (part numbers, SKUs, ticket ids, config keys) are kept whole as well as split into terms: the terms
# find their parts, the whole form matches exactly. A candidate is a run of letters and digits joined by -, _, . or
# /; it counts when it mixes letters and digits, joins parts with an underscore, or is camelCase.
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"})
_IDENTIFIER = re.compile(r"(?<![\w\-./])[^\W_]+(?:[-_./][^\W_]+)*(?:_[^\W_]+)*(?![\w\-]|[./][^\W_])")
# Ordinals, times and quantities ("4th", "10am", "24h", "5kg", "30-minute", "12-month") mix digits and letters
# but name nothing.
_QUANTITY = re.compile(r"\d+(?:st|nd|rd|th|am|pm|[a-z]{1,2}|(?:-[a-z]+)+)", re.IGNORECASE)
# camelCase keys start lower-case ("maxRetries"); PascalCase is how product names are spelt ("FleetView").
_CAMEL = re.compile(r"[a-z]+[A-Z]")
_DATE_LIKE = re.compile(r"\d+(?:[-./]\d+)*")


def identifiers(text: str) -> list[str]:
    """The identifiers a text names, lowercased with dashes unified, each once, in order of appearance."""
    found: dict[str, None] = {}
    for match in _IDENTIFIER.finditer(text.translate(_DASHES)):
        token = match.group(0)
        if len(token) < 3 or len(token) > 64 or _DATE_LIKE.fullmatch(token) or _QUANTITY.fullmatch(token):
            continue
        has_digit = any(c.isdigit() for c in token)
        has_letter = any(c.isalpha() for c in token)
        if (has_digit and has_letter) or ("_" in token.strip("_") and has_letter) or _CAMEL.match(token):
            found.setdefault(token.lower(), None)
    return list(found)
