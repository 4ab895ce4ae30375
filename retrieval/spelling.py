"""Spelling correction of a query against the index's own vocabulary (SymSpell), before it is searched.

The vocabulary is every word of every indexed chunk, each with the ACLs of the documents it occurs in. A word is
left alone when it is an English word (symspellpy's frequency dictionary) or a contraction typed without its
apostrophe, a word the asker may read in the index, a number or identifier (digits, dashes, underscores, dots,
CamelCase) or short. Otherwise its closest readable word one edit away replaces it (for a word of four letters, only
a letter dropped, added or swapped round, or a vowel for a vowel). One exception for numbers: a term the corpus writes with inner
punctuation, typed with its letters run together ("401k" for "401(k)", "oncall" for "on-call"), is written as the
corpus writes it: nothing is guessed; a bare number ("20") is never rewritten ("2.0").

Nothing the asker may not read can show through: a word is "known" or "suggested" only by way of documents the
asker may read, so neither a correction nor its absence says anything about the others; and a correction is kept
only if its word occurs in a passage the asker's own (ACL-filtered) search returned (`confirmed`), which also
guards against a vocabulary a little out of date. The vocabulary is kept per index, rebuilt after this process
changes the index (index_changed) and when the index's size or physical name has changed, checked at most once a
minute.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from symspellpy import SymSpell, Verbosity

from core.clock import configured
from search.backends import SearchBackend
from search.types import DocumentAcl, SearchHit

logger = logging.getLogger("citewise.search.spelling")

MIN_WORD_LENGTH = 4  # shorter words have too many neighbours one edit away to correct safely
# One edit covers what people mistype (a letter dropped, doubled, swapped or struck wrong); two edits turn words
# the English dictionary lacks into other words ("hostname" into "lastname").
MAX_EDIT_DISTANCE = 1
# Up to this long, a consonant struck wrong is as likely another word ("repo", "reno") as a typo: only a letter
# dropped, added or swapped, or a vowel for a vowel ("yeer"), is corrected.
SHORT_WORD_LENGTH = 4
STALENESS_CHECK = timedelta(seconds=60)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_LETTERS = re.compile(r"[^\W\d_]+")
_ALNUM = re.compile(r"[^\W_]+")
# A term the corpus writes with inner punctuation ("401(k)", "on-call", "Wi-Fi"), which askers often type joined.
_PUNCTUATED = re.compile(r"[^\W_]+(?:(?:[-/.’']|\()[^\W_]+\)?)+")
# A word joined to another by one of these is part of an identifier (a host, a path, a ticket key), not prose.
_JOINERS = frozenset("-_./@:#\\")


@lru_cache(maxsize=1)
def english_word_counts() -> dict[str, int]:
    """symspellpy's English frequency dictionary: each word and how often it occurs in its source text."""
    dictionary = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    counts: dict[str, int] = {}
    for line in dictionary.read_text(encoding="utf-8").splitlines():
        word, _, count = line.partition(" ")
        if word and count.isdigit():
            counts[word] = int(count)
    return counts


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The words of symspellpy's English frequency dictionary: a correctly spelled word needs no corpus to prove it."""
    return frozenset(english_word_counts())


@dataclass
class Vocabulary:
    """The index's words, how often each occurs, and which ACLs (by number) the documents it occurs in have."""

    speller: SymSpell
    acls: list[DocumentAcl]
    word_acls: dict[str, frozenset[int]]
    # A punctuated term's letters and digits run together ("401k") → the term as the corpus writes it ("401(k)").
    punctuated: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, pages: Iterable[Sequence[tuple[str, DocumentAcl]]]) -> Vocabulary:
        counts: Counter[str] = Counter()
        acl_numbers: dict[DocumentAcl, int] = {}
        word_acls: defaultdict[str, set[int]] = defaultdict(set)
        punctuated: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for page in pages:
            for text, acl in page:
                number = acl_numbers.setdefault(acl, len(acl_numbers))
                words = [w.lower() for w in _LETTERS.findall(text)]
                counts.update(words)
                terms = [t for t in _PUNCTUATED.findall(text) if len(t) <= 32]
                for term in terms:
                    punctuated["".join(_ALNUM.findall(term.lower()))][term] += 1
                for word in {*words, *(t.lower() for t in terms)}:
                    word_acls[word].add(number)
        speller = SymSpell(max_dictionary_edit_distance=MAX_EDIT_DISTANCE)
        for word, count in counts.items():
            if len(word) >= MIN_WORD_LENGTH - MAX_EDIT_DISTANCE:
                speller.create_dictionary_entry(word, count)
        return cls(speller, list(acl_numbers), {word: frozenset(numbers) for word, numbers in word_acls.items()},
                   {joined: forms.most_common(1)[0][0] for joined, forms in punctuated.items()})

    def readable_acls(self, principals: frozenset[str]) -> frozenset[int]:
        """The numbers of the ACLs that let the principals read: the same rule every search applies."""
        return frozenset(number for number, acl in enumerate(self.acls)
                         if acl.status == "ok" and (acl.public or not acl.principals.isdisjoint(principals)))

    def readable(self, word: str, readable_acls: frozenset[int]) -> bool:
        return not self.word_acls.get(word, frozenset()).isdisjoint(readable_acls)


@dataclass(frozen=True)
class Correction:
    """A query and what correcting its spelling made of it: `changes` are (as typed, corrected) pairs."""

    original: str
    query: str
    changes: tuple[tuple[str, str], ...] = ()
    spans: tuple[tuple[int, int], ...] = field(default=(), repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def unchanged(query: str) -> Correction:
    return Correction(query, query)


def _is_identifier(query: str, start: int, end: int, word: str) -> bool:
    joined = (start > 0 and query[start - 1] in _JOINERS) or (end < len(query) and query[end] in _JOINERS)
    return (joined or any(c.isdigit() for c in word) or any(c.isupper() for c in word[1:])
            or "'" in word or "’" in word)


# Contractions typed without their apostrophe are words, not typos of the nearest word ("dont" is not "done").
CONTRACTIONS = frozenset({
    "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "isnt", "arent", "wasnt", "werent",
    "havent", "hasnt", "hadnt", "mustnt", "youre", "theyre", "ive", "youve", "weve", "theyve", "youd", "theyd",
    "youll", "theyll", "im", "whats", "thats", "hows", "wheres", "whos", "whens", "whys", "heres", "theres",
})


_VOWELS = frozenset("aeiouy")


def _typo_shaped(typed: str, suggestion: str) -> bool:
    """Whether the typed word could be a mistyping of the suggestion: any one edit for longer words; for a word of
    SHORT_WORD_LENGTH letters, a letter dropped, added or swapped round, or a vowel for a vowel; a suggestion shorter
    than MIN_WORD_LENGTH only where a letter was struck twice."""
    if len(suggestion) < MIN_WORD_LENGTH:  # "repo" is not a typo of "rpo"; "gymm" is "gym" struck twice
        return any(typed[:i] + typed[i + 1:] == suggestion for i in range(1, len(typed)) if typed[i] == typed[i - 1])
    if len(typed) > SHORT_WORD_LENGTH or len(typed) != len(suggestion) or sorted(typed) == sorted(suggestion):
        return True
    # One letter struck wrong: a vowel for a vowel is a misremembered spelling ("yeer"), a consonant another word.
    return all(a == b or (a in _VOWELS and b in _VOWELS) for a, b in zip(typed, suggestion, strict=True))


# An inflection of a word the asker may read is spelt right too ("runbooks" where the index only says "runbook").
_INFLECTIONS = (("s", ""), ("es", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""), ("ing", "e"), ("er", ""),
                ("ers", ""), ("ly", ""))


def _known(word: str, vocabulary: Vocabulary, readable_acls: frozenset[int], english: frozenset[str]) -> bool:
    if word in english or word in CONTRACTIONS or vocabulary.readable(word, readable_acls):
        return True
    return any(vocabulary.readable(word[:-len(suffix)] + stem_end, readable_acls)
               for suffix, stem_end in _INFLECTIONS if word.endswith(suffix) and len(word) - len(suffix) >= 3)


def _cased_like(typed: str, word: str) -> str:
    return word[:1].upper() + word[1:] if typed[:1].isupper() else word


def correct(query: str, vocabulary: Vocabulary, principals: frozenset[str]) -> Correction:
    """The query with each misspelt word replaced by its nearest word that the principals may read."""
    readable_acls = vocabulary.readable_acls(principals)
    english = english_words()
    changes: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(query):
        typed = match.group(0)
        word = typed.lower()
        written = vocabulary.punctuated.get(word)
        if (written is not None and not word.isdigit() and word not in english
                and not vocabulary.readable(word, readable_acls)
                and vocabulary.readable(written.lower(), readable_acls)):
            # The same letters and digits as the corpus writes them: "401k" → "401(k)", nothing guessed.
            changes.append((typed, _cased_like(typed, written.lower())))
            spans.append((match.start(), match.end()))
            continue
        if (len(word) < MIN_WORD_LENGTH or _is_identifier(query, match.start(), match.end(), typed)
                or _known(word, vocabulary, readable_acls, english)):
            continue
        suggestions = [s for s in vocabulary.speller.lookup(word, Verbosity.ALL, max_edit_distance=MAX_EDIT_DISTANCE)
                       if s.term != word and vocabulary.readable(s.term, readable_acls) and _typo_shaped(word, s.term)]
        if not suggestions:
            continue
        best = min(suggestions, key=lambda s: (s.distance, -s.count, s.term))
        changes.append((typed, _cased_like(typed, best.term)))
        spans.append((match.start(), match.end()))
    return _applied(query, changes, spans)


def _applied(query: str, changes: Sequence[tuple[str, str]], spans: Sequence[tuple[int, int]]) -> Correction:
    corrected, last = [], 0
    for (start, end), (_, replacement) in zip(spans, changes, strict=True):
        corrected.append(query[last:start] + replacement)
        last = end
    corrected.append(query[last:])
    return Correction(query, "".join(corrected), tuple(changes), tuple(spans))


def confirmed(correction: Correction, hits: Sequence[SearchHit]) -> Correction:
    """The correction less any change whose word occurs in none of the passages the corrected query found (hits
    come from the asker's ACL-filtered search: a word kept is one the asker may read)."""
    if not correction.changed:
        return correction
    found = {word for hit in hits for word in _ALNUM.findall(f"{hit.title} {hit.text}".lower())}
    kept = [(change, span) for change, span in zip(correction.changes, correction.spans, strict=True)
            if set(_ALNUM.findall(change[1].lower())) <= found]
    if len(kept) == len(correction.changes):
        return correction
    return _applied(correction.original, [c for c, _ in kept], [s for _, s in kept])


@dataclass
class _Kept:
    vocabulary: Vocabulary
    signature: tuple[int, str] | None
    checked_at: datetime


_vocabularies: dict[tuple[str, str], _Kept] = {}
_lock = threading.Lock()


def _signature(backend: SearchBackend) -> tuple[int, str] | None:
    info = backend.index_info()
    return (info.chunk_count, info.physical_name) if info is not None else None


def vocabulary(backend: SearchBackend) -> Vocabulary:
    """The backend's index vocabulary, built on first use and again once the index has changed."""
    key = (backend.name, backend.index_name)
    now = configured("SPELLING_CLOCK").now()
    with _lock:
        kept = _vocabularies.get(key)
        if kept is not None and now - kept.checked_at < STALENESS_CHECK:
            return kept.vocabulary
    signature = _signature(backend)
    if kept is not None and kept.signature == signature:
        kept.checked_at = now
        return kept.vocabulary
    built = Vocabulary.build(backend.chunk_texts())
    with _lock:
        _vocabularies[key] = _Kept(built, signature, now)
    logger.info("spelling vocabulary for %s index %r: %d words", backend.name, backend.index_name,
                len(built.word_acls))
    return built


def forget_on_index_change(sender: type, **kwargs: Any) -> None:
    """The index_changed receiver: the next correction against that index reads its vocabulary again."""
    backend = kwargs.get("backend")
    with _lock:
        if backend is None:
            _vocabularies.clear()
        else:
            _vocabularies.pop((backend.name, backend.index_name), None)
