"""Reviewers' ranking rules applied to search hits, pure: boost, demote or hide a document, everywhere or for one
question.

Rules only reorder or remove hits the backend already returned for the asker's principals, so they can never make
visible what the ACL hides. A rule for one question matches on `question_key`, the question casefolded with its
punctuation and whitespace collapsed, so "How many PTO days?" and "how many pto days" are one question and any other
question is untouched.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from search.types import SearchHit

_NOT_WORD = re.compile(r"[\W_]+")
# Candidates fetched beyond the limit when rules apply: room for boosted documents below the cut to come up, and for
# what hidden documents leave behind to be filled.
EXTRA_CANDIDATES = 20


class Effect(StrEnum):
    BOOST = "boost"
    DEMOTE = "demote"
    HIDE = "hide"


# Boosted documents' hits come first, then the rest, then demoted ones; within each tier the search's own order.
_TIER = {Effect.BOOST: 0, None: 1, Effect.DEMOTE: 2}


def question_key(question: str) -> str:
    """The key a per-question rule matches on: casefolded, punctuation and whitespace collapsed to single spaces."""
    return " ".join(_NOT_WORD.sub(" ", question.casefold()).split())


def question_hash(question: str) -> str:
    """What a per-question rule stores and is looked up by: the sha256 of the question's key."""
    return hashlib.sha256(question_key(question).encode()).hexdigest()


def effective_rules(global_rules: Iterable[tuple[str, str]],
                    question_rules: Iterable[tuple[str, str]]) -> dict[str, Effect]:
    """document_id -> effect from (document_id, effect) pairs: a rule for this question overrides a global one for
    the same document."""
    effects = {document_id: Effect(effect) for document_id, effect in global_rules}
    effects.update((document_id, Effect(effect)) for document_id, effect in question_rules)
    return effects


def apply_rules(hits: Sequence[SearchHit], effects: Mapping[str, Effect], limit: int) -> list[SearchHit]:
    """The hits without hidden documents, boosted ones first and demoted ones last (a stable sort: the search's
    order within each tier), cut to `limit`."""
    if not effects:
        return list(hits[:limit])
    kept = [hit for hit in hits if effects.get(hit.document_id) is not Effect.HIDE]
    kept.sort(key=lambda hit: _TIER[effects.get(hit.document_id)])
    return kept[:limit]
