"""Structure-aware chunking: sections stay apart, chunks end on sentence boundaries, token-bounded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from search.types import Chunk

TokenCounter = Callable[[Sequence[str]], list[int]]


class SectionLike(Protocol):
    heading_path: tuple[str, ...]
    text: str


class TooManyChunks(ValueError):
    """A document makes more chunks than allowed; raised as soon as it does, before the rest are cut."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the document makes more than {limit:,} chunks")
        self.limit = limit


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 200
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError("overlap_tokens must be between 0 and half of max_tokens")


_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "fig", "figs", "al",
    "approx", "dept", "est", "inc", "ltd", "co", "corp", "no", "nos", "vol", "p", "pp", "ca", "cf", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k",
}
# A candidate boundary: sentence punctuation (optionally closed by quotes/brackets) then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences; paragraph and line breaks always end a sentence."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        line_start, line_text = line.start(), line.group(0)
        cursor = 0
        for boundary in _BOUNDARY.finditer(line_text):
            following = line_text[boundary.end():boundary.end() + 1]
            word = re.search(r"([\w.]+)[.!?…]*$", line_text[cursor:boundary.start() + 1])
            previous = word.group(1).lower().rstrip(".") if word else ""
            if following and not (following.isupper() or following.isdigit() or following in "\"'“‘([-•*"):
                continue
            if previous in _ABBREVIATIONS or (len(previous) == 1 and previous.isalpha()):
                continue
            spans.append((line_start + cursor, line_start + boundary.end()))
            cursor = boundary.end()
        if cursor < len(line_text):
            spans.append((line_start + cursor, line_start + len(line_text)))
    return [(s, e) for s, e in (_strip_span(text, s, e) for s, e in spans) if e > s]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long_sentence(text: str, start: int, end: int, tokens: int, max_tokens: int) -> list[tuple[int, int]]:
    """Last resort for a 'sentence' longer than a chunk (tables, logs): cut between words."""
    pieces = -(-tokens // max_tokens)
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    per_piece = -(-len(words) // pieces)
    spans = []
    for i in range(0, len(words), per_piece):
        group = words[i:i + per_piece]
        spans.append((start + group[0][0], start + group[-1][1]))
    return spans


def chunk_sections(
    document_id: str,
    title: str,
    sections: Sequence[SectionLike],
    count_tokens: TokenCounter,
    config: ChunkingConfig,
    *,
    max_chunks: int | None = None,
) -> list[Chunk]:
    """Chunks of every section in order; TooManyChunks once there would be more than `max_chunks`."""
    chunks: list[Chunk] = []
    for section_ordinal, section in enumerate(sections):
        text = section.text
        spans = split_sentences(text)
        if not spans:
            continue
        counts = count_tokens([text[s:e] for s, e in spans])
        units: list[tuple[int, int, int]] = []
        for (start, end), tokens in zip(spans, counts, strict=True):
            if tokens > config.max_tokens:
                pieces = _split_long_sentence(text, start, end, tokens, config.max_tokens)
                piece_counts = count_tokens([text[s:e] for s, e in pieces])
                units.extend((s, e, c) for (s, e), c in zip(pieces, piece_counts, strict=True))
            else:
                units.append((start, end, tokens))
        for first, last in _pack(units, config):
            if max_chunks is not None and len(chunks) >= max_chunks:
                raise TooManyChunks(max_chunks)
            start, end = units[first][0], units[last][1]
            chunk_text = text[start:end]
            ordinal = len(chunks)
            chunk = Chunk(
                chunk_id=f"{document_id}:{ordinal}",
                document_id=document_id,
                ordinal=ordinal,
                text=chunk_text,
                heading_path=tuple(section.heading_path),
                section_ordinal=section_ordinal,
                section_start=start,
                section_end=end,
                content_hash="",
            )
            digest = hashlib.sha256(chunk.embedding_input(title).encode()).hexdigest()
            chunks.append(Chunk(**{**chunk.__dict__, "content_hash": digest}))
    return chunks


def _pack(units: list[tuple[int, int, int]], config: ChunkingConfig) -> list[tuple[int, int]]:
    """Greedy packing of sentence units into [first, last] index ranges, with sentence-level overlap."""
    ranges: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        total, last = 0, first
        while last < len(units) and (last == first or total + units[last][2] <= config.max_tokens):
            total += units[last][2]
            last += 1
        ranges.append((first, last - 1))
        if last >= len(units):
            break
        # Start the next chunk with as many trailing sentences as fit in the overlap budget.
        next_first, overlap = last, 0
        while next_first - 1 > first and overlap + units[next_first - 1][2] <= config.overlap_tokens:
            next_first -= 1
            overlap += units[next_first][2]
        first = next_first
    return ranges


def merge_section_text(chunks: Sequence[tuple[str, int, int]]) -> str:
    """Rebuild a section from its (text, start, end) chunks, dropping the overlapping parts."""
    merged: list[str] = []
    cursor = -1
    for text, start, end in sorted(chunks, key=lambda c: c[1]):
        if end <= cursor:
            continue
        if start < cursor:
            text = text[cursor - start:]
            start = cursor
        elif merged and start > cursor:
            merged.append(" ")
        merged.append(text)
        cursor = end
    return "".join(merged).strip()
