"""Citation integrity: every [n] in an answer maps to a passage the composer was given and that supports it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from answers.types import Composition, Passage
from core.text import heading_anchor
from retrieval.chunking import split_sentences
from retrieval.units import Block, cells, code_body, item_body, render_code, split_blocks, table_row
from search.analysis import analyze

# [3], [3, 4], [3][4] and the full-width brackets some models emit.
_MARKER = re.compile(r"\s*[\[【](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]】]")
_ANY_BRACKET_NUMBER = re.compile(r"\s*[\[【][^\]】]{0,12}[\]】]")
_MARKERS_ONLY = re.compile(r"^(?:\s*[\[【][\d,\s]{1,20}[\]】])+\s*$")
# A sentence is supported when most of its content terms occur in the cited passage.
SUPPORT_THRESHOLD = 0.6

_SOURCE_TYPES = {
    "text/markdown": "Markdown", "text/plain": "Text", "text/html": "Web page", "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document",
}


def source_type(mime_type: str) -> str:
    """What a reader calls a document of this MIME type."""
    return _SOURCE_TYPES.get(mime_type, mime_type)


def anchored_url(url: str, mime_type: str, heading_path: Sequence[str]) -> str:
    """A Markdown or HTML document's URL at the heading of a section (a Markdown-style anchor), unless the URL
    already has a fragment (a source's own section link, connectors.selectors.with_section_links); else `url`."""
    if heading_path and mime_type in ("text/markdown", "text/html") and "#" not in url:
        return f"{url}#{heading_anchor(heading_path[-1])}"
    return url


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
    # Which section of the document the passage is in: the web app's viewer opens it there (?section=).
    section_ordinal: int | None = None

    @classmethod
    def from_passage(cls, number: int, passage: Passage) -> Citation:
        hit = passage.hit
        return cls(number=number, document_id=hit.document_id, chunk_id=hit.chunk_id, title=hit.title,
                   url=anchored_url(hit.url, hit.mime_type, hit.heading_path),
                   source_type=source_type(hit.mime_type), mime_type=hit.mime_type,
                   modified_at=hit.modified_at, heading_path=hit.heading_path, snippet=passage.text[:300],
                   effective_date=hit.effective_date, superseded_by=hit.superseded_by,
                   section_ordinal=hit.section_ordinal)

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "document_id": self.document_id, "chunk_id": self.chunk_id,
                "title": self.title, "url": self.url, "source_type": self.source_type, "mime_type": self.mime_type,
                "modified_at": self.modified_at.isoformat() if self.modified_at else None,
                "section": " > ".join(self.heading_path), "snippet": self.snippet,
                "effective_date": self.effective_date.isoformat() if self.effective_date else None,
                "superseded_by": self.superseded_by, "date_label": self.date_label(),
                "section_ordinal": self.section_ordinal}

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


def addressed_spans(text: str) -> list[tuple[int, int]]:
    """Where a passage's text stops counting as evidence: from each sentence that addresses the assistant ("ignore
    previous instructions…") to the end of its paragraph, as (start, end) offsets into the text."""
    spans = []
    bounds = [0, *(m for match in re.finditer(r"\n\s*\n", text) for m in match.span()), len(text)]
    for start, end in zip(bounds[::2], bounds[1::2], strict=True):
        for sentence_start, sentence_end in split_sentences(text[start:end]):
            if _ADDRESSES_THE_ASSISTANT.search(text[start + sentence_start:start + sentence_end]):
                spans.append((start + sentence_start, end))
                break
    return spans


def evidence(text: str) -> str:
    """A passage's text as evidence: the text outside `addressed_spans`, so an answer that obeys an injected
    instruction has no support (and the extractive composer never quotes one)."""
    kept, cursor = [], 0
    for start, end in addressed_spans(text):
        kept.append(text[cursor:start])
        cursor = end
    return "".join(kept) + text[cursor:]


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


_DASHES = str.maketrans({"‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-", "\u00a0": " "})
_FENCE_LINE = re.compile(r"^\s*(?:`{3,}|~{3,}).*$", re.MULTILINE)
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)


def _flat(text: str) -> str:
    """Text as copied-block matching compares it: fences, table separators and pipes gone, whitespace collapsed."""
    text = _TABLE_SEPARATOR.sub(" ", _FENCE_LINE.sub(" ", text.translate(_DASHES)))
    return " ".join(text.replace("|", " ").split()).casefold()


def _contains(passage: Passage, copied: str) -> bool:
    """Whether a copied block (table row, code) appears in the passage, whitespace and pipes aside."""
    flat = _flat(copied)
    return bool(flat) and flat in _flat(passage.text)


@dataclass
class _Check:
    """The running tally of one verification: what was kept, in order, and what was dropped or removed."""

    by_number: dict[int, Passage]
    passages: Sequence[Passage]
    dropped: int = 0
    removed: int = 0

    def markers(self, text: str) -> list[int]:
        """The valid passage numbers [n] in the text cites, in order; invalid ones are counted as removed."""
        cited: list[int] = []
        for match in _MARKER.finditer(text):
            for raw in match.group(1).split(","):
                number = int(raw)
                if number in self.by_number and number not in cited:
                    cited.append(number)
                else:
                    self.removed += 1
        return cited

    def supporters(self, body: str, cited: list[int]) -> list[int]:
        """The cited passages that support a sentence or list item; else a given passage that does; else none."""
        supported = [n for n in cited if support(body, self.by_number[n]) >= SUPPORT_THRESHOLD]
        if not supported and len(cited) > 1 and _joint_support(body, [self.by_number[n] for n in cited]):
            supported = cited  # a sentence joining facts from several cited passages
        self.removed += len(cited) - len(supported)
        if not supported:
            # Uncited or unsupported: keep it only if some given passage supports it, and cite that one.
            best = max(self.passages, key=lambda p: support(body, p), default=None)
            if best is None or support(body, best) < SUPPORT_THRESHOLD:
                self.dropped += 1
                return []
            supported = [best.number]
        return supported

    def copied_from(self, pieces: list[str], cited: list[int]) -> list[int]:
        """The cited passages holding every piece of a copied block; else the one given passage that does."""
        holding = [n for n in cited if all(_contains(self.by_number[n], piece) for piece in pieces)]
        self.removed += len(cited) - len(holding)
        if not holding:
            holding = [p.number for p in self.passages if all(_contains(p, piece) for piece in pieces)][:1]
        if not holding:
            self.dropped += 1
        return holding


# Kept pieces of the answer, in order: ("paragraph", [(body, cited, ending)]), ("list", [(line, cited)]),
# ("table" | "code", text, cited) and ("lead", text) for the uncited line introducing the next block.
_Piece = tuple[Any, ...]


def _sentences(text: str) -> list[str]:
    # Markers often sit after the full stop ("… night. [2]"); attach them to the sentence before.
    text = re.sub(r"([.!?])((?:[ \t]*[\[【][\d,\s]{1,20}[\]】])+)", r"\2\1", text)
    return [text[s:e] for s, e in split_sentences(text)]


def _paragraph(check: _Check, text: str, extra: list[int], introduces: bool) -> tuple[list, str | None]:
    """A paragraph's supported sentences; a last sentence that introduces the next block (it ends in ":" and
    cites nothing) is held back to stand or fall with that block."""
    kept = []
    held = None
    sentences = _sentences(text)
    for index, sentence in enumerate(sentences):
        cited = check.markers(sentence)
        body = _ANY_BRACKET_NUMBER.sub("", sentence).strip()
        if introduces and index == len(sentences) - 1 and not cited and body.endswith(":"):
            held = body
            continue
        cited = cited or list(extra)
        ending = body[-1] if body and body[-1] in ".!?:" else ""
        body = body[:-1].rstrip() if ending else body
        if not body:
            continue
        supported = check.supporters(body, cited)
        if supported:
            kept.append((body, supported, ending or "."))
    return kept, held


def _list(check: _Check, text: str, block: Block, extra: list[int]) -> list:
    kept = []
    for start, end in block.parts:
        line = " ".join(text[start:end].split())
        cited = check.markers(line) or list(extra)
        line = _ANY_BRACKET_NUMBER.sub("", line).strip()
        body = item_body(line)
        if not body:
            continue
        supported = check.supporters(body, cited)
        if supported:
            kept.append((line[:len(line) - len(body)].strip() + " " + body, supported))
    return kept


def _table(check: _Check, text: str, block: Block, extra: list[int]) -> tuple[str, list[int]] | None:
    """A copied table: its header and the rows its passage holds; None when no passage holds it."""
    rows = ([cells(block.header_text(text))] if block.header else []) + [cells(text[s:e]) for s, e in block.parts]
    cited = list(extra)
    for row in rows:
        for cell in row:
            cited.extend(n for n in check.markers(cell) if n not in cited)
    rows = [[_ANY_BRACKET_NUMBER.sub("", cell).strip() for cell in row] for row in rows]
    header = rows.pop(0) if block.header else []
    body = [row for row in rows if any(row)]

    def holds(passage: Passage) -> bool:
        return (not any(header) or _contains(passage, " ".join(header))) \
            and any(_contains(passage, " ".join(row)) for row in body)

    holding = [n for n in cited if holds(check.by_number[n])]
    check.removed += len(cited) - len(holding)
    if not holding:
        holding = [p.number for p in check.passages if holds(p)][:1]
    if not holding:
        check.dropped += 1
        return None
    body = [row for row in body if any(_contains(check.by_number[n], " ".join(row)) for n in holding)]
    lines = [table_row(header), table_row(["---"] * len(header))] if any(header) else []
    return "\n".join([*lines, *(table_row(row) for row in body)]), holding


def verify(composition: Composition, passages: Sequence[Passage]) -> VerifiedAnswer:
    """Keep what the cited passages support, renumbered 1..k: paragraph sentences and list items by their terms,
    copied tables and code blocks by their content (a block's markers are on the line after it)."""
    if composition.declined or not composition.text.strip():
        return VerifiedAnswer("", [])
    check = _Check({p.number: p for p in passages}, passages)
    text = composition.text
    blocks = split_blocks(text)
    kept: list[_Piece] = []
    held: str | None = None
    for index, block in enumerate(blocks):
        block_text = text[block.start:block.end]
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if block.kind in ("paragraph", "heading") and _MARKERS_ONLY.match(block_text):
            continue  # taken by the block before it, below
        # Markers on the line after a block apply to the block.
        extra: list[int] = []
        if following is not None and following.kind in ("paragraph", "heading") \
                and _MARKERS_ONLY.match(text[following.start:following.end]):
            extra = check.markers(text[following.start:following.end])
        lead_in, held = held, None
        if block.kind in ("paragraph", "heading"):
            introduces = following is not None and following.lead_in is not None
            sentences, held = _paragraph(check, block_text, extra, introduces)
            if sentences:
                kept.append(("paragraph", sentences))
            continue
        piece: _Piece | None = None
        if block.kind == "list":
            items = _list(check, text, block, extra)
            piece = ("list", items) if items else None
            supporters = sorted({n for _, cited in items for n in cited})
        elif block.kind == "table":
            table = _table(check, text, block, extra)
            piece = ("table", *table) if table else None
            supporters = table[1] if table else []
        else:
            code = render_code(text, block)
            if code_body(code).strip():
                supporters = check.copied_from([code_body(code)], extra)
            else:
                supporters, check.removed = [], check.removed + len(extra)
            piece = ("code", code, supporters) if supporters else None
        if piece is None:
            continue
        if lead_in and any(support(lead_in, check.by_number[n]) >= SUPPORT_THRESHOLD for n in supporters):
            kept.append(("lead", lead_in))
        kept.append(piece)
    return _renumbered(kept, check)


def _renumbered(kept: list[_Piece], check: _Check) -> VerifiedAnswer:
    renumber: dict[int, int] = {}

    def marks(cited: list[int]) -> str:
        return "".join(f"[{renumber.setdefault(n, len(renumber) + 1)}]" for n in cited)

    rendered: list[str] = []
    for piece in kept:
        if piece[0] == "paragraph":
            rendered.append(" ".join(f"{body} {marks(cited)}{ending}" for body, cited, ending in piece[1]))
        elif piece[0] == "list":
            rendered.append("\n".join(f"{line} {marks(cited)}" for line, cited in piece[1]))
        elif piece[0] == "lead":
            rendered.append(piece[1])
        else:
            rendered.append(f"{piece[1]}\n{marks(piece[2])}")
    citations = [Citation.from_passage(new, check.by_number[old]) for old, new in renumber.items()]
    return VerifiedAnswer("\n\n".join(rendered), citations, check.dropped, check.removed)
