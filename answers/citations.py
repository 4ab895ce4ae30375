"""Citation integrity: every [n] in an answer maps to a passage the composer was given and that supports it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from answers.types import Composition, Passage
from retrieval.chunking import split_sentences
from search.analysis import analyze

# [3], [3, 4], [3][4] and the full-width brackets some models emit.
_MARKER = re.compile(r"\s*[\[【](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]】]")
_ANY_BRACKET_NUMBER = re.compile(r"\s*[\[【][^\]】]{0,12}[\]】]")
# A sentence is supported when most of its content terms occur in the cited passage.
SUPPORT_THRESHOLD = 0.6

_SOURCE_TYPES = {
    "text/markdown": "Markdown", "text/plain": "Text", "text/html": "Web page", "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document",
}


def source_type(mime_type: str) -> str:
    """What a reader calls a document of this MIME type."""
    return _SOURCE_TYPES.get(mime_type, mime_type)


def heading_anchor(heading: str) -> str:
    """GitHub/Markdown-style anchor for a heading, for deep links into a section."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", slug)


@dataclass(frozen=True)
class Citation:
    number: int
    document_id: str
    chunk_id: str
    title: str
    url: str
    source_type: str
    mime_type: str
    modified_at: datetime | None
    heading_path: tuple[str, ...]
    snippet: str
    # The date the document says it takes effect (search/versions.py), shown before modified_at when known.
    effective_date: date | None = None
    # Title of a newer edition the asker may read; the pipeline notes it under the answer.
    superseded_by: str = ""

    @classmethod
    def from_passage(cls, number: int, passage: Passage) -> Citation:
        hit = passage.hit
        url = hit.url
        if hit.heading_path and hit.mime_type in ("text/markdown", "text/html") and "#" not in url:
            url = f"{url}#{heading_anchor(hit.heading_path[-1])}"
        return cls(number=number, document_id=hit.document_id, chunk_id=hit.chunk_id, title=hit.title, url=url,
                   source_type=source_type(hit.mime_type), mime_type=hit.mime_type,
                   modified_at=hit.modified_at, heading_path=hit.heading_path, snippet=passage.text[:300],
                   effective_date=hit.effective_date, superseded_by=hit.superseded_by)

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "document_id": self.document_id, "chunk_id": self.chunk_id,
                "title": self.title, "url": self.url, "source_type": self.source_type, "mime_type": self.mime_type,
                "modified_at": self.modified_at.isoformat() if self.modified_at else None,
                "section": " > ".join(self.heading_path), "snippet": self.snippet,
                "effective_date": self.effective_date.isoformat() if self.effective_date else None,
                "superseded_by": self.superseded_by, "date_label": self.date_label()}

    def date_label(self) -> str:
        """What a reader is shown as the document's date: the date it states it takes effect, else when the source
        last changed it ("effective 2026-01-01", "modified 2026-03-02"); "" when neither is known."""
        if self.effective_date:
            return f"effective {self.effective_date:%Y-%m-%d}"
        return f"modified {self.modified_at:%Y-%m-%d}" if self.modified_at else ""


@dataclass
class VerifiedAnswer:
    text: str
    citations: list[Citation]
    dropped_sentences: int = 0
    removed_markers: int = 0


# Text that speaks to the assistant rather than to the reader: a prompt injection, not a statement of fact.
_ADDRESSES_THE_ASSISTANT = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,60}\b(?:instructions?|prompts?|rules|guidelines)\b"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b|\byou are now\b|\bnew instructions\b"
    r"|\b(?:admin|developer|jailbreak|DAN)\s+mode\b|^\W*(?:system|assistant|developer)\s*:",
    re.IGNORECASE | re.MULTILINE)


def evidence(text: str) -> str:
    """A passage's text as evidence: from a sentence that addresses the assistant ("ignore previous instructions…")
    to the end of its paragraph, nothing counts, so an answer that obeys an injected instruction has no support."""
    kept: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        for start, end in split_sentences(paragraph):
            if _ADDRESSES_THE_ASSISTANT.search(paragraph[start:end]):
                paragraph = paragraph[:start]
                break
        kept.append(paragraph)
    return "\n\n".join(kept)


def _context(passage: Passage) -> set[str]:
    return set(analyze(" ".join((passage.hit.title, *passage.hit.heading_path, evidence(passage.text)))))


def support(sentence: str, passage: Passage) -> float:
    """Share of the sentence's content terms that the passage (with its title and headings) contains."""
    terms = set(analyze(sentence))
    if not terms:
        return 0.0
    return len(terms & _context(passage)) / len(terms)


def _joint_support(sentence: str, passages: Sequence[Passage]) -> bool:
    terms = set(analyze(sentence))
    context: set[str] = set()
    for passage in passages:
        context |= _context(passage)
    return bool(terms) and len(terms & context) / len(terms) >= SUPPORT_THRESHOLD


def _sentences(text: str) -> list[str]:
    # Markers often sit after the full stop ("… night. [2]"); attach them to the sentence before.
    text = re.sub(r"([.!?])((?:\s*[\[【][\d,\s]{1,20}[\]】])+)", r"\2\1", text)
    return [text[s:e] for s, e in split_sentences(text)]


def verify(composition: Composition, passages: Sequence[Passage]) -> VerifiedAnswer:
    """Keep sentences whose markers point at given passages that support them; renumber 1..k."""
    if composition.declined or not composition.text.strip():
        return VerifiedAnswer("", [])
    by_number = {p.number: p for p in passages}
    kept: list[tuple[str, list[int], str]] = []
    dropped = removed = 0
    for sentence in _sentences(composition.text):
        cited: list[int] = []
        for match in _MARKER.finditer(sentence):
            for raw in match.group(1).split(","):
                number = int(raw)
                if number in by_number and number not in cited:
                    cited.append(number)
                else:
                    removed += 1
        body = _ANY_BRACKET_NUMBER.sub("", sentence).strip()
        ending = body[-1] if body and body[-1] in ".!?" else ""
        body = body[:-1].rstrip() if ending else body
        if not body:
            continue
        supported = [n for n in cited if support(body, by_number[n]) >= SUPPORT_THRESHOLD]
        if not supported and len(cited) > 1 and _joint_support(body, [by_number[n] for n in cited]):
            supported = cited  # a sentence joining facts from several cited passages
        removed += len(cited) - len(supported)
        if not supported:
            # Uncited or unsupported: keep it only if some given passage supports it, and cite that one.
            best = max(passages, key=lambda p: support(body, p), default=None)
            if best is None or support(body, best) < SUPPORT_THRESHOLD:
                dropped += 1
                continue
            supported = [best.number]
        kept.append((body, supported, ending or "."))
    renumber: dict[int, int] = {}
    for _, cited, _ in kept:
        for number in cited:
            renumber.setdefault(number, len(renumber) + 1)
    text = " ".join(f"{body} {''.join(f'[{renumber[n]}]' for n in cited)}{ending}" for body, cited, ending in kept)
    citations = [Citation.from_passage(new, by_number[old]) for old, new in renumber.items()]
    return VerifiedAnswer(text, citations, dropped, removed)
