"""Answer units: the pieces of chunk text an answer can quote, each readable on its own.

Chunk text is the structured Markdown subset of docs/answering.md: paragraphs split by blank lines, list items
("- ", "1. "), GitHub pipe tables (header, "| --- |" separator, rows) and fenced code. A unit is a sentence (with
the sentence before it when it leans on it: "This redeploys…"), a table row with its header, a whole small table,
a list item, a whole list, or a whole code block. A heading line is never a unit and never part of one.

Text written before tables had a separator line ("a | b | c" lines, one per row, blank lines between) is read as
a table whose first line is the header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from retrieval.chunking import split_sentences

Span = tuple[int, int]
BlockKind = Literal["paragraph", "heading", "list", "table", "code"]
UnitKind = Literal["sentence", "row", "table", "item", "list", "code"]

# A table this small is worth quoting whole: the reader sees every tier, not just the best-matching one.
SMALL_TABLE_ROWS = 6

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MARKDOWN_HEADING = re.compile(r"^\s*#{1,6}\s+\S")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_SECTION_NUMBER = re.compile(r"^(?:\d{1,2}\.){1,3}\d{0,2}\s+(?=[A-Z])")
# A sentence that leans on the one before it: a pronoun or connective opening.
_DEPENDENT = re.compile(
    r"^\W*(?:this|that|these|those|it|its|they|them|their|such|he|she|however|therefore|thus|also|otherwise|"
    r"instead|then|additionally|furthermore|moreover|likewise|similarly|but|and|so|in addition|as a result|"
    r"for example|for instance|in that case|in this case|after that|in both cases|in either case|failing that|"
    r"if (?:that|this|it|so|not|none|neither|nothing))\b",
    re.IGNORECASE)
# Document bookkeeping ("Policy owner: …", "Version 3.2, effective April 2025."): rarely what anyone asks.
_METADATA = re.compile(
    r"^\W*(?:(?:policy |document |page |content |process |runbook )?owners?|maintainers?|maintained by|version|"
    r"effective(?: date| from)?|last (?:updated|reviewed|revised|modified)|updated|reviewed|revised|review date|"
    r"next review|applies to|audience|approved by|author|classification|document status)\b[^.]{0,60}?(?::|\d)",
    re.IGNORECASE)
_METADATA_LABEL = re.compile(
    r"\b(?:policy owner|document owner|owner|effective(?: date)?|version|applies to|last (?:updated|reviewed))\s*:",
    re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """A paragraph, heading line, list, table or code block of chunk text.

    `parts` are the pieces units are cut from: a paragraph's sentences, a list's items (marker included), a table's
    body rows, a code block's whole span. `header` is a table's header row; `lead_in` the sentence ending in ":"
    that introduces a list, table or code block ("You must change your password if:")."""

    kind: BlockKind
    start: int
    end: int
    parts: tuple[Span, ...]
    header: Span | None = None
    lead_in: Span | None = None

    def header_text(self, text: str) -> str:
        return text[self.header[0]:self.header[1]] if self.header else ""


@dataclass(frozen=True)
class Unit:
    """A quotable piece of chunk text: `text` as an answer shows it, `embedding_text` as the scorer reads it
    (before the title and headings are put in front). `parts` index the block's parts the unit covers."""

    kind: UnitKind
    start: int
    end: int
    text: str
    embedding_text: str
    block: int
    parts: tuple[int, ...]
    metadata: bool = False


def _is_table_line(line: str) -> bool:
    stripped = line.strip()
    return bool(_UNESCAPED_PIPE.search(stripped)) and (stripped.startswith("|") or " | " in stripped)


def cells(row: str) -> list[str]:
    """A pipe-table row's cells, outer pipes and padding removed."""
    stripped = row.strip()
    if stripped.startswith("|"):
        stripped = stripped[1:]
    if stripped.endswith("|") and not stripped.endswith("\\|"):
        stripped = stripped[:-1]
    return [cell.strip() for cell in _UNESCAPED_PIPE.split(stripped)]


def table_row(row_cells: Sequence[str]) -> str:
    return "| " + " | ".join(row_cells) + " |"


def _lines(text: str) -> list[Span]:
    spans, cursor = [], 0
    for line in text.split("\n"):
        spans.append((cursor, cursor + len(line)))
        cursor += len(line) + 1
    return spans


def _heading_like(line: str, following: str | None) -> bool:
    """A title line inside a paragraph (PDF and plain-text sections keep theirs): a few words without sentence
    punctuation, a colon or digits, followed by a line that reads as a sentence."""
    stripped = line.strip()
    if _MARKDOWN_HEADING.match(stripped):
        return True
    if following is None:
        return False
    after = following.strip()
    # A numbered section title ("3.2 Spot awards") is a title too: the number is its outline position.
    stripped = _SECTION_NUMBER.sub("", stripped, count=1)
    return (0 < len(stripped.split()) <= 6 and stripped[:1].isupper() and not re.search(r"[.!?:;,)\"'”’\d]", stripped)
            and after[:1].isupper() and after[-1:] in (".", "!", "?", ":") and len(after) > len(stripped))


@lru_cache(maxsize=1024)
def split_blocks(text: str) -> tuple[Block, ...]:
    """The blocks of structured chunk text, in order."""
    lines = _lines(text)
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        start, end = lines[i]
        line = text[start:end]
        if not line.strip():
            i += 1
        elif _FENCE.match(line):
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            j = i + 1
            while j < len(lines) and not text[lines[j][0]:lines[j][1]].strip().startswith(fence[:3]):
                j += 1
            last = min(j, len(lines) - 1)
            blocks.append(Block("code", start, lines[last][1], ((start, lines[last][1]),)))
            i = last + 1
        elif _is_table_line(line):
            rows, j = [], i
            while j < len(lines):
                row_text = text[lines[j][0]:lines[j][1]]
                if _is_table_line(row_text) or _SEPARATOR.match(row_text):
                    rows.append(lines[j])
                elif row_text.strip():
                    break
                j += 1
            if len(rows) < 2:
                blocks.append(Block("paragraph", start, end, tuple(_sentences(text, start, end))))
                i += 1
                continue
            body = [r for r in rows if not _SEPARATOR.match(text[r[0]:r[1]])]
            separator = next((k for k, r in enumerate(rows) if _SEPARATOR.match(text[r[0]:r[1]])), None)
            header: Span | None = None
            if separator:
                header = rows[separator - 1]
            elif separator is None and not text[rows[0][0]:rows[0][1]].lstrip().startswith("|"):
                header = body[0]  # "a | b" lines, written before tables had a separator: the first is the header
            # Otherwise the chunk starts inside a table whose header is in the chunk before: rows only.
            blocks.append(Block("table", rows[0][0], rows[-1][1], tuple(r for r in body if r != header), header))
            i = j
        elif _LIST_ITEM.match(line):
            items: list[Span] = []
            j = i
            while j < len(lines):
                item_start, item_end = lines[j]
                item_text = text[item_start:item_end]
                if _LIST_ITEM.match(item_text):
                    items.append((item_start, item_end))
                elif item_text.strip() and items and text[lines[j - 1][0]:lines[j - 1][1]].strip() \
                        and not _FENCE.match(item_text) and not _is_table_line(item_text):
                    items[-1] = (items[-1][0], item_end)  # a wrapped item's next line
                elif item_text.strip():
                    break
                j += 1
            blocks.append(Block("list", items[0][0], items[-1][1], tuple(items)))
            i = j
        else:
            j = i
            while j < len(lines):
                paragraph_line = text[lines[j][0]:lines[j][1]]
                if not paragraph_line.strip() or _FENCE.match(paragraph_line) or _LIST_ITEM.match(paragraph_line) \
                        or (_is_table_line(paragraph_line) and j > i):
                    break
                j += 1
            # Heading-like lines stand apart, so no sentence ever starts with a title.
            run_start = lines[i][0]
            for k in range(i, j):
                k_start, k_end = lines[k]
                following = text[lines[k + 1][0]:lines[k + 1][1]] if k + 1 < j else None
                if following is None and j == i + 1:
                    # A one-line paragraph: a title when the paragraph after it reads as a sentence.
                    following = next((text[a:b] for a, b in lines[j:] if text[a:b].strip()), None)
                if _heading_like(text[k_start:k_end], following):
                    if k_start > run_start:
                        blocks.append(Block("paragraph", run_start, lines[k - 1][1],
                                            tuple(_sentences(text, run_start, lines[k - 1][1]))))
                    blocks.append(Block("heading", k_start, k_end, ((k_start, k_end),)))
                    run_start = lines[k + 1][0] if k + 1 < j else k_end
            if run_start < lines[j - 1][1]:
                blocks.append(Block("paragraph", run_start, lines[j - 1][1],
                                    tuple(_sentences(text, run_start, lines[j - 1][1]))))
            i = j
    return tuple(_with_lead_ins(text, blocks))


def _sentences(text: str, start: int, end: int) -> list[Span]:
    return [(start + s, start + e) for s, e in split_sentences(text[start:end])]


def _with_lead_ins(text: str, blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        previous = out[-1] if out else None
        if block.kind in ("list", "table", "code") and previous is not None and previous.kind == "paragraph" \
                and previous.parts and text[previous.parts[-1][0]:previous.parts[-1][1]].rstrip().endswith(":"):
            block = Block(block.kind, block.start, block.end, block.parts, block.header, previous.parts[-1])
        out.append(block)
    return out


def is_metadata(sentence: str) -> bool:
    """Document bookkeeping: an owner, version, effective-date or audience line."""
    return bool(_METADATA.match(sentence) or _METADATA_LABEL.search(sentence))


def is_dependent(sentence: str) -> bool:
    """A sentence that leans on the one before it ("This redeploys…", "However, …")."""
    return bool(_DEPENDENT.match(sentence))


def item_body(item: str) -> str:
    """A list item's text without its marker."""
    return _LIST_ITEM.sub("", item.strip(), count=1).strip()


def code_body(code: str) -> str:
    """A code block's content without its fences."""
    lines = code.strip("\n").split("\n")
    if lines and _FENCE.match(lines[0]):
        lines = lines[1:]
    if lines and _FENCE.match(lines[-1]) and not lines[-1].strip().strip("`~"):
        lines = lines[:-1]
    return "\n".join(lines)


def render_table(text: str, block: Block, rows: Sequence[int]) -> str:
    """The block's header, a separator and the given body rows, as a GitHub pipe table (rows alone when the
    chunk holds no header)."""
    header = cells(block.header_text(text)) if block.header else []
    lines = [table_row(header), table_row(["---"] * len(header))] if header else []
    lines.extend(table_row(cells(text[block.parts[r][0]:block.parts[r][1]])) for r in rows)
    return "\n".join(lines)


def render_list(text: str, block: Block, items: Sequence[int]) -> list[str]:
    """The given items, one line each, with their own markers ("- ", "2. ")."""
    return [re.sub(r"\s*\n\s*", " ", text[block.parts[i][0]:block.parts[i][1]].strip()) for i in items]


def render_code(text: str, block: Block) -> str:
    """The whole fenced block; a block the chunk cut off gets its closing fence back."""
    code = text[block.start:block.end].strip("\n")
    fence = _FENCE.match(code)
    opening = fence.group(1) if fence else "```"
    lines = code.split("\n")
    if not fence:
        return f"```\n{code}\n```"
    if len(lines) == 1 or not lines[-1].strip().startswith(opening[:3]):
        return f"{code}\n{opening}"
    return code


def _row_embedding(header: list[str], row: list[str]) -> str:
    # "Days per year is 20 days" reads as a statement; embedding models match it to questions better than cells.
    pairs = [f"{name} is {value}" if name else value for name, value in zip(header, row, strict=False) if value]
    pairs.extend(value for value in row[len(header):] if value)
    return ", ".join(pairs) + "."


def _lead_in(text: str, block: Block) -> str:
    return f"{text[block.lead_in[0]:block.lead_in[1]].strip()} " if block.lead_in else ""


@lru_cache(maxsize=1024)
def split_units(text: str) -> tuple[Unit, ...]:
    """Every unit of chunk text, in document order (a table's or list's whole comes after its rows or items)."""
    units: list[Unit] = []
    blocks = split_blocks(text)
    # A lead-in ("Rules:") says nothing alone; it is quoted with the list, table or code it introduces.
    lead_ins = {block.lead_in for block in blocks if block.lead_in}
    for index, block in enumerate(blocks):
        if block.kind == "paragraph":
            for k, (start, end) in enumerate(block.parts):
                sentence = text[start:end]
                if not re.search(r"\w", sentence) or (start, end) in lead_ins:
                    continue
                metadata = is_metadata(sentence)
                if k > 0 and is_dependent(sentence):
                    start = block.parts[k - 1][0]
                    units.append(Unit("sentence", start, end, text[start:end], text[start:end], index, (k - 1, k),
                                      metadata))
                else:
                    units.append(Unit("sentence", start, end, sentence, sentence, index, (k,), metadata))
        elif block.kind == "table":
            header = cells(block.header_text(text)) if block.header else []
            lead_in = _lead_in(text, block)
            for k, (start, end) in enumerate(block.parts):
                row = cells(text[start:end])
                units.append(Unit("row", start, end, render_table(text, block, [k]),
                                  lead_in + _row_embedding(header, row), index, (k,)))
            if 1 < len(block.parts) <= SMALL_TABLE_ROWS:
                whole = render_table(text, block, range(len(block.parts)))
                plain = "\n".join(" | ".join(cells(line)) for line in whole.split("\n") if not _SEPARATOR.match(line))
                units.append(Unit("table", block.start, block.end, whole, lead_in + plain, index,
                                  tuple(range(len(block.parts)))))
        elif block.kind == "list":
            lead_in = _lead_in(text, block)
            rendered = render_list(text, block, range(len(block.parts)))
            for k, (start, end) in enumerate(block.parts):
                units.append(Unit("item", start, end, rendered[k], lead_in + item_body(rendered[k]), index, (k,)))
            if len(block.parts) > 1:
                units.append(Unit("list", block.start, block.end, "\n".join(rendered),
                                  lead_in + "\n".join(item_body(line) for line in rendered), index,
                                  tuple(range(len(block.parts)))))
        elif block.kind == "code":
            body = code_body(text[block.start:block.end])
            # Code says what it does in the sentence before it ("If a release misbehaves, roll back"), colon or not.
            previous = blocks[index - 1] if index else None
            introduction = _lead_in(text, block) or (
                f"{text[previous.parts[-1][0]:previous.parts[-1][1]].strip()} "
                if previous is not None and previous.kind == "paragraph" and previous.parts else "")
            if body.strip():
                units.append(Unit("code", block.start, block.end, render_code(text, block), introduction + body, index,
                                  (0,)))
    return tuple(units)


def context(title: str, heading_path: Sequence[str]) -> str:
    """What a unit is embedded under: the document title and the section's headings."""
    return " > ".join(p for p in (title, *heading_path) if p)


def unit_embedding_text(unit_context: str, unit: Unit) -> str:
    # A unit is embedded with its title and headings: "15 days" alone says nothing.
    return f"{unit_context}: {unit.embedding_text}" if unit_context else unit.embedding_text


def embedding_texts(title: str, heading_path: Sequence[str], text: str) -> list[str]:
    """The exact strings the answer scorer embeds for a chunk, one per unit of `split_units(text)`, in order."""
    unit_context = context(title, heading_path)
    return [unit_embedding_text(unit_context, unit) for unit in split_units(text)]
