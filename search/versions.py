"""Document versions: what a document says about its own date and the documents it replaces, and which readable
document replaces a given one.

Read at index time from the document's text: its stated effective date ("Effective: 2026-01-01", "Effective date:
January 1, 2026") and the titles it says it supersedes ("Supersedes: Travel Policy 2025", "This policy replaces the
Travel Policy 2025."). At search time a document counts as superseded by a readable one that names it, or that has
the same title family ("Travel Policy 2025" and "Travel Policy 2026" are both "travel policy") and a later stated
effective date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

_MONTHS = {name: number for number, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
     ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
     ("december", "dec")], start=1) for name in names}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = (rf"(?P<iso>\d{{4}}-\d{{1,2}}-\d{{1,2}})"
         rf"|(?P<mdy>(?:{_MONTH})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
         rf"|(?P<dmy>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{_MONTH})\.?,?\s+\d{{4}})")
# "Effective: …", "Effective date: …", "Effective from/as of/on …", "In effect from …", "Valid from …".
_EFFECTIVE = re.compile(
    rf"\b(?:effective(?:\s+date)?|in\s+effect|valid)(?:\s+(?:from|as\s+of|on|since))?[*_]*\s*[:\-–]?[*_]*\s*(?:{_DATE})",
    re.IGNORECASE)
_SUPERSEDES = re.compile(
    r"(?:^|\n)\s*[*_]*(?:supersedes|replaces)[*_]*\s*:[*_]*\s*(?P<listed>[^\n]+)"
    r"|\b(?:supersedes|replaces)\s+(?:the\s+)?"
    r"(?P<named>[\"“'‘][^\"”'’\n]+[\"”'’]|[^\n.;:,()\"“]+?\b(?:(?:19|20)\d{2}|v\d+(?:\.\d+)*)\b)",
    re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d{2}")
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")
_VERSION_TOKEN = re.compile(r"(?:v|rev|r)?\d+(?:\.\d+)*[a-z]?", re.IGNORECASE)
_VERSION_WORDS = frozenset({"version", "rev", "revision", "edition", "draft", "update", "updated", "issue"})
_WORD = re.compile(r"[^\W_]+")
# How much a superseded document's score is kept: enough to drop below its successor, not out of the results, so
# a question about the old version ("what was the 2025 per diem") still finds it.
SUPERSEDED_SCORE_FACTOR = 0.8


def _date(match: re.Match[str]) -> date | None:
    try:
        if match.group("iso"):
            year, month, day = (int(p) for p in match.group("iso").split("-"))
            return date(year, month, day)
        words = _WORD.findall((match.group("mdy") or match.group("dmy")).lower())
        numbers = [int(re.sub(r"\D", "", w)) for w in words if w[0].isdigit()]
        month = next(_MONTHS[w] for w in words if w in _MONTHS)
        return date(numbers[-1], month, numbers[0])
    except (ValueError, StopIteration, IndexError):
        return None


def effective_date(text: str) -> date | None:
    """The first effective date the text states, or None."""
    for match in _EFFECTIVE.finditer(text):
        stated = _date(match)
        if stated is not None:
            return stated
    return None


def title_key(title: str) -> str:
    """A title as compared: case, punctuation and spacing ignored."""
    return " ".join(_WORD.findall(title.casefold()))


def title_family(title: str) -> str:
    """The title without its year or version: what the editions of one document share ("" if nothing is left)."""
    words = _WORD.findall(title.casefold())
    kept = [w for w in words if w not in _VERSION_WORDS and not _YEAR.fullmatch(w) and not _VERSION_TOKEN.fullmatch(w)]
    return " ".join(kept) if len(kept) < len(words) else title_key(title)


def supersedes(text: str) -> tuple[str, ...]:
    """Title keys of the documents the text says it supersedes or replaces, each once."""
    found: dict[str, None] = {}
    for match in _SUPERSEDES.finditer(text):
        listed = match.group("listed")
        if listed:
            listed = _SENTENCE_END.split(listed, maxsplit=1)[0]
        names = re.split(r"\s*;\s*|\s*,\s*(?=[A-Z])", listed) if listed else [match.group("named")]
        for name in names:
            name = re.sub(r"^\s*(?:the\s+)", "", name.strip(" \t\"“”'‘’*_."), flags=re.IGNORECASE)
            name = re.split(r"\s+\((?:dated|effective|issued)\b", name, flags=re.IGNORECASE)[0]
            key = title_key(name)
            if key:
                found.setdefault(key, None)
    return tuple(found)


# Where a document states its own version: its opening (a later "effective from" is about something it describes).
STATEMENT_CHARS = 4000


def stated_version(title: str, text: str) -> tuple[date | None, tuple[str, ...]]:
    """(effective date, title keys superseded) a document states in its opening; never itself."""
    head = text[:STATEMENT_CHARS]
    own = title_key(title)
    return effective_date(head), tuple(key for key in supersedes(head) if key != own)


@dataclass(frozen=True)
class VersionInfo:
    """What the index knows of a document's version, for deciding what supersedes what."""

    document_id: str
    title: str
    effective_date: date | None = None
    supersedes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return title_key(self.title)

    @property
    def family(self) -> str:
        return title_family(self.title)


def successor(document: VersionInfo, candidates: Iterable[VersionInfo]) -> VersionInfo | None:
    """The newest candidate that supersedes `document` (names it, or is a later edition of its family), or None.

    Candidates must be documents the asker may read: the answer names the successor.
    """
    def replaces(other: VersionInfo) -> bool:
        if other.document_id == document.document_id or other.key == document.key:
            return False
        if document.key in other.supersedes:
            return other.key not in document.supersedes  # two documents claiming each other settle nothing
        return bool(document.family and other.family == document.family and document.effective_date
                    and other.effective_date and other.effective_date > document.effective_date)

    newer = [other for other in candidates if replaces(other)]
    return max(newer, key=lambda v: (v.effective_date or date.min, v.title), default=None)


def asks_for_this_version(query: str, document_title: str, successor_title: str) -> bool:
    """Whether the query names what sets the old edition apart ("2025" in "Travel Policy 2025"): then it is wanted."""
    distinct = set(_WORD.findall(document_title.casefold())) - set(_WORD.findall(successor_title.casefold()))
    return bool(distinct & set(_WORD.findall(query.casefold())))



def demoted(score: float) -> float:
    """A superseded document's score: lower by the same share whatever its sign (cosine scores can be negative)."""
    return score - abs(score) * (1 - SUPERSEDED_SCORE_FACTOR)
