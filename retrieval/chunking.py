"""Structure-aware chunking: sections stay apart, chunks end on sentence boundaries, token-bounded.

Section text is the structured-text subset the parsers write (paragraphs, "- " / "1. " list lines, GitHub pipe
tables, fenced code). A table or a code block is one unit: it goes into a chunk whole, never split away from
its header or its fences. One longer than a chunk is cut into pieces of its own, by rows (each piece repeats
the header and separator) or by lines (each piece fenced again). Such a piece's text is then more than the
section slice its span names: the repeated header, or the added fences; merge_section_text drops them again.
"""

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
# An opening or closing code fence: three or more backticks or tildes, then an optional language.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_ROW = re.compile(r"^\s*\|")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s")
# A pipe table's separator line, "| --- | :---: |".
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class _Block:
    kind: str  # "text" | "table" | "code"
    start: int
    end: int


def _blocks(text: str) -> list[_Block]:
    """The section's tables and fenced code blocks, and the text between them, as character spans."""
    lines = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[^\n]+", text)]

    def next_to(j: int) -> bool:  # line j follows line j - 1 with no blank line between
        return j < len(lines) and lines[j][0] == lines[j - 1][1] + 1

    blocks: list[_Block] = []
    text_start: int | None = None
    i = 0
    while i < len(lines):
        start, _, line = lines[i]
        kind, last = "", i
        if fence := _FENCE.match(line):
            kind, last = "code", len(lines) - 1
            marker = fence.group(1)
            for j in range(i + 1, len(lines)):
                closing = _FENCE.match(lines[j][2])
                if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker) \
                        and not lines[j][2][closing.end():].strip():
                    last = j
                    break
        elif _TABLE_ROW.match(line) and next_to(i + 1) and _TABLE_SEPARATOR.match(lines[i + 1][2]):
            kind, last = "table", i + 1
            while next_to(last + 1) and _TABLE_ROW.match(lines[last + 1][2]):
                last += 1
        if not kind:
            text_start = start if text_start is None else text_start
            i += 1
            continue
        if text_start is not None:
            blocks.append(_Block("text", text_start, start))
            text_start = None
        blocks.append(_Block(kind, start, lines[last][1]))
        i = last + 1
    if text_start is not None:
        blocks.append(_Block("text", text_start, len(text)))
    return blocks


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences; paragraph and line breaks always end a sentence.

    A table row, a list item's line and a line of code are units of their own, never cut at a full stop
    inside them; a table's separator line and code fences carry no text and are no sentence at all.
    """
    spans: list[tuple[int, int]] = []
    for block in _blocks(text):
        for line in re.finditer(r"[^\n]+", text[block.start:block.end]):
            line_start, line_text = block.start + line.start(), line.group(0)
            if block.kind != "text" or _LIST_ITEM.match(line_text):
                if block.kind == "text" or not (_FENCE.match(line_text) or _TABLE_SEPARATOR.match(line_text)):
                    spans.append((line_start, line_start + len(line_text)))
                continue
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


@dataclass(frozen=True)
class _Unit:
    """A span of section text packed as one; a piece of a cut table or code block is a chunk on its own,
    its text `prefix + text[start:end] + suffix`."""

    start: int
    end: int
    tokens: int
    prefix: str = ""
    suffix: str = ""
    alone: bool = False


def _split_long_sentence(text: str, start: int, end: int, tokens: int, max_tokens: int) -> list[tuple[int, int]]:
    """Last resort for a 'sentence' longer than a chunk (a table row, a log line): cut between words."""
    pieces = -(-tokens // max_tokens)
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    per_piece = -(-len(words) // pieces)
    spans = []
    for i in range(0, len(words), per_piece):
        group = words[i:i + per_piece]
        spans.append((start + group[0][0], start + group[-1][1]))
    return spans


def _sentence_units(text: str, spans: list[tuple[int, int]], count_tokens: TokenCounter,
                    max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    counts = count_tokens([text[s:e] for s, e in spans])
    for (start, end), tokens in zip(spans, counts, strict=True):
        if tokens > max_tokens:
            pieces = _split_long_sentence(text, start, end, tokens, max_tokens)
            piece_counts = count_tokens([text[s:e] for s, e in pieces])
            units.extend(_Unit(s, e, c) for (s, e), c in zip(pieces, piece_counts, strict=True))
        else:
            units.append(_Unit(start, end, tokens))
    return units


def _line_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [(start + m.start(), start + m.end()) for m in re.finditer(r"[^\n]+", text[start:end])]


def _table_units(text: str, block: _Block, count_tokens: TokenCounter, max_tokens: int) -> list[_Unit]:
    """Pieces of a table too long for a chunk, by rows; every piece after the first repeats the header."""
    lines = _line_spans(text, block.start, block.end)
    header = text[lines[0][0]:lines[1][1]]
    header_tokens, *row_tokens = count_tokens([header, *(text[s:e] for s, e in lines[2:])])
    budget = max_tokens - header_tokens
    if budget < max_tokens // 4:  # a header this long cannot be repeated: the rows go as lines
        return _sentence_units(text, lines, count_tokens, max_tokens)
    units: list[_Unit] = []
    group: list[tuple[int, int]] = []
    group_tokens = 0

    def close() -> None:
        # The first piece holds the real header; later ones start at the line break before their first row,
        # so the pieces' spans meet and the header they repeat is exactly what they add.
        first = not units
        start = block.start if first else group[0][0] - 1
        units.append(_Unit(start, group[-1][1], group_tokens + header_tokens, "" if first else header, "", True))

    for (start, end), tokens in zip(lines[2:], row_tokens, strict=True):
        if group and group_tokens + tokens > budget:
            close()
            group, group_tokens = [], 0
        if tokens > budget:  # one row longer than a chunk: cut between words, each piece under the header
            if group:
                close()
                group, group_tokens = [], 0
            pieces = _split_long_sentence(text, start, end, tokens, budget)
            for piece_start, piece_end in pieces:
                units.append(_Unit(piece_start, piece_end, budget, header + "\n", "", True))
            continue
        group.append((start, end))
        group_tokens += tokens
    if group:
        close()
    return units


def _code_units(text: str, block: _Block, count_tokens: TokenCounter, max_tokens: int) -> list[_Unit]:
    """Pieces of a code block too long for a chunk, by lines; each piece is fenced again.

    A piece's span ends after its last line's line break, so the pieces meet; the fences added are the
    opening fence line (before) and the bare fence (after), and the second is always the shorter.
    """
    all_lines = [(m.start(), m.end()) for m in re.finditer(r"[^\n]*\n?", text[block.start:block.end]) if m.group(0)]
    lines = [(block.start + s, block.start + e) for s, e in all_lines]
    opening = text[lines[0][0]:lines[0][1]].rstrip("\n")
    marker = _FENCE.match(opening).group(1)  # type: ignore[union-attr]
    closed = len(lines) > 1 and bool(_FENCE.match(text[lines[-1][0]:lines[-1][1]]))
    body = lines[1:-1] if closed else lines[1:]
    if not body:
        return [_Unit(block.start, block.end, max_tokens, alone=True)]
    fence_tokens = sum(count_tokens([opening, marker]))
    budget = max(max_tokens - fence_tokens, 1)
    counts = count_tokens([text[s:e] for s, e in body])
    groups: list[list[int]] = [[]]
    group_tokens = 0
    for index, tokens in enumerate(counts):
        if groups[-1] and group_tokens + tokens > budget:
            groups.append([])
            group_tokens = 0
        groups[-1].append(index)
        group_tokens += tokens
    units = []
    for number, group in enumerate(groups):
        first, last = number == 0, number == len(groups) - 1
        start = block.start if first else body[group[0]][0]
        end = block.end if last and closed else body[group[-1]][1]
        if last and not closed:
            end = min(end, block.end)
        tokens = sum(counts[i] for i in group) + fence_tokens
        units.append(_Unit(start, end, tokens, "" if first else opening + "\n", "" if last and closed else
                           ("" if text[start:end].endswith("\n") else "\n") + marker, True))
    return units


def _units(text: str, count_tokens: TokenCounter, config: ChunkingConfig) -> list[_Unit]:
    units: list[_Unit] = []
    blocks = _blocks(text)
    whole = [b for b in blocks if b.kind != "text"]
    whole_tokens = dict(zip(whole, count_tokens([text[b.start:b.end] for b in whole]), strict=True))
    for block in blocks:
        if block.kind == "text":
            spans = split_sentences(text[block.start:block.end])
            units.extend(_sentence_units(text, [(block.start + s, block.start + e) for s, e in spans],
                                         count_tokens, config.max_tokens))
        elif whole_tokens[block] <= config.max_tokens:
            start, end = _strip_span(text, block.start, block.end)
            units.append(_Unit(start, end, whole_tokens[block]))
        elif block.kind == "table":
            units.extend(_table_units(text, block, count_tokens, config.max_tokens))
        else:
            units.extend(_code_units(text, block, count_tokens, config.max_tokens))
    return units


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
        units = _units(text, count_tokens, config)
        for first, last in _pack(units, config):
            if max_chunks is not None and len(chunks) >= max_chunks:
                raise TooManyChunks(max_chunks)
            start, end = units[first].start, units[last].end
            chunk_text = units[first].prefix + text[start:end] + units[last].suffix
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


def _pack(units: list[_Unit], config: ChunkingConfig) -> list[tuple[int, int]]:
    """[first, last] index ranges of chunks: a piece of a cut table or code block alone, the units between
    such pieces packed greedily, with sentence-level overlap."""
    ranges: list[tuple[int, int]] = []
    run_start = 0
    for index, unit in enumerate([*units, None]):
        if unit is None or unit.alone:
            ranges.extend((run_start + a, run_start + b) for a, b in _pack_run(units[run_start:index], config))
            if unit is not None:
                ranges.append((index, index))
            run_start = index + 1
    return ranges


def _pack_run(units: list[_Unit], config: ChunkingConfig) -> list[tuple[int, int]]:
    """Greedy packing of sentence units into [first, last] index ranges, with sentence-level overlap."""
    ranges: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        total, last = 0, first
        while last < len(units) and (last == first or total + units[last].tokens <= config.max_tokens):
            total += units[last].tokens
            last += 1
        ranges.append((first, last - 1))
        if last >= len(units):
            break
        # Start the next chunk with as many trailing sentences as fit in the overlap budget.
        next_first, overlap = last, 0
        while next_first - 1 > first and overlap + units[next_first - 1].tokens <= config.overlap_tokens:
            next_first -= 1
            overlap += units[next_first].tokens
        first = next_first
    return ranges


def _section_slice(text: str, start: int, end: int) -> str:
    """The part of a chunk's text that is its section span: without a repeated table header or added fences."""
    extra = len(text) - (end - start)
    if extra <= 0:
        return text
    first_line = text.split("\n", 1)[0]
    fence = _FENCE.match(first_line)
    if fence is None:  # a table piece: the header it repeats comes first
        return text[extra:]
    before, after = len(first_line) + 1, len(fence.group(1))
    for cut_before, cut_after in ((before, after), (before, 0), (0, after), (before, after + 1), (0, after + 1)):
        if cut_before + cut_after == extra:
            return text[cut_before:len(text) - cut_after]
    return text[extra:]


def _gap(length: int, previous: str, following: str) -> str:
    """What most likely stood between two chunks that do not meet, knowing only how long it was: parsers
    write one space between words, a line break between the lines of one list or table, a blank line between
    blocks. A single character before a list line or table row is a line break only when the line before it is
    one too: a block starts after a blank line, and prose may well read "… in 2024. 42. Alpha"."""
    if length >= 2:
        return "\n\n"
    last_line = previous.rsplit("\n", 1)[-1]
    for pattern in (_LIST_ITEM, _TABLE_ROW):
        if pattern.match(following) and pattern.match(last_line):
            return "\n"
    return " "


def merge_section_text(chunks: Sequence[tuple[str, int, int]]) -> str:
    """Rebuild a section from its (text, start, end) chunks, dropping the overlapping parts."""
    merged: list[str] = []
    cursor = -1
    for text, start, end in sorted(chunks, key=lambda c: c[1]):
        if end <= cursor:
            continue
        text = _section_slice(text, start, end)
        if start < cursor:
            text = text[cursor - start:]
            start = cursor
        elif merged and start > cursor:
            merged.append(_gap(start - cursor, merged[-1], text))
        merged.append(text)
        cursor = end
    return "".join(merged).strip()
