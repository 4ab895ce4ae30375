"""The default composer: no LLM; quotes the passage units that hold the answer and cites them.

A unit is a sentence, a table row with its header, a list item, a code block (retrieval/units.py). The answer is
the structured text of docs/answering.md: sentences as a paragraph with their markers before the full stop, a
table (its header and the matching rows, or the whole of a small one) or a code block followed by a line holding
its markers, list items each ending in theirs. A question asking two things gets a unit for each.
Everything is copied from the passages; nothing is reworded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from answers.answerability import judge
from answers.citations import addressed_spans
from answers.question_type import LIST, STEPS, QuestionType, classify, split_parts, stem
from answers.scoring import QUESTION_WORDS, ScoredUnit, score_units
from answers.types import Composition, Passage, Turn
from retrieval.chunking import split_sentences
from retrieval.units import (
    SMALL_TABLE_ROWS,
    Block,
    Unit,
    cells,
    is_dependent,
    is_metadata,
    render_code,
    render_list,
    render_table,
    split_blocks,
)
from search.analysis import analyze, identifiers

MAX_UNITS = 3
MAX_UNITS_PER_PART = 2
PART_LEEWAY = 0.1
# Further units must score nearly as well as the best one to be worth the reader's time.
SCORE_MARGIN = 0.08
# A list this short reads better whole than as one item out of context.
SHORT_LIST_ITEMS, SHORT_LIST_CHARS = 4, 400
MAX_ROWS, MAX_ITEMS = 3, 3


def _redundant(candidate: str, chosen: Sequence[str]) -> bool:
    terms = set(analyze(candidate))
    for other in chosen:
        other_terms = set(analyze(other))
        if terms and len(terms & other_terms) / len(terms) > 0.8:
            return True
    return False


@dataclass(frozen=True)
class Piece:
    """What the answer quotes from one passage: sentences, some rows of a table, some items of a list, a code
    block. `parts` index the block's parts (sentences, rows, items) quoted."""

    passage_number: int
    block: int
    kind: str
    start: int
    end: int
    parts: tuple[int, ...]
    text: str
    # The sentence ending in ":" that introduces a list, table or code block ("Rules:").
    lead_in: str = ""

    def overlaps(self, other: Piece) -> bool:
        return self.passage_number == other.passage_number and self.start < other.end and other.start < self.end


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def row_terms(text: str) -> set[str]:
    """Terms for matching a question to table rows: numbers whole ("3.6" is not "3"), words stemmed."""
    return set(analyze(_NUMBER.sub(" ", text))) | set(_NUMBER.findall(text))


def _cells_named(question: str, row: str) -> int:
    """How many of a table row's cells the question names whole (as words of its own, case aside)."""
    lowered = question.lower()
    return sum(1 for cell in cells(row) if cell and re.search(rf"(?<![\w-]){re.escape(cell.lower())}(?![\w-])", lowered))


def _asks_every_row(question: str, header: str) -> bool:
    """Whether the question asks for what the table's first column lists, in the plural: "canary stages" asks for
    every row of a Stage table, though "canary" names one of them."""
    first = next((cell for cell in cells(header) if cell), "")
    noun = first.split()[-1].lower() if first else ""
    noun_stem = stem(noun) if len(noun) >= 3 else ""
    # Another form of the noun with its stem is its plural ("stages", "policies"), given the noun is singular.
    return bool(noun_stem) and any(word != noun and stem(word) == noun_stem
                                   for word in (w.lower() for w in re.findall(r"[^\W_]+", question)))


def _table_rows(scored: ScoredUnit, block: Block, text: str, wanted: set[str], same_block: list[ScoredUnit],
                asked: QuestionType, question: str) -> list[int]:
    """Header plus the rows the question names ("less than 3 years", "prod-eu"); a small table whole when none
    is named (every tier answers "how many days do I get?"); otherwise the best-scoring rows.

    An identifier the question names picks the rows naming that identifier whole: "NW-FC7" is not "NW-FC7-PRO",
    although the two share every word.
    """
    named = {found for identifier in asked.identifiers for found in identifiers(identifier)}
    if named:
        # "the pro version of the NW-FC7": the question names a variant by a word of its own, NW-FC7-PRO.
        words = {w.lower() for w in re.findall(r"[^\W_]+", question)}
        variants = {f"{identifier}-{word}" for identifier in named for word in words}
        variant = [row for row, (s, e) in enumerate(block.parts) if variants & set(identifiers(text[s:e]))]
        if variant:
            return variant[:SMALL_TABLE_ROWS]
        exact = [row for row, (s, e) in enumerate(block.parts) if named & set(identifiers(text[s:e]))]
        if exact:
            return exact[:SMALL_TABLE_ROWS]
    if len(block.parts) <= SMALL_TABLE_ROWS and _asks_every_row(question, block.header_text(text)):
        return list(range(len(block.parts)))
    header_terms = row_terms(block.header_text(text))
    hits = [len(wanted & (row_terms(text[s:e]) - header_terms)) for s, e in block.parts]
    most = max(hits, default=0)
    if most:
        tied = [row for row, count in enumerate(hits) if count == most]
        # "the k2 drive wheel": the row whose Fits cell is "K2", not the one whose cell is "K2-XL", though both
        # share every word of the question. A cell the question names whole decides between tied rows.
        named_cells = {row: _cells_named(question, text[block.parts[row][0]:block.parts[row][1]]) for row in tied}
        if len(set(named_cells.values())) > 1:
            tied = [row for row in tied if named_cells[row] == max(named_cells.values())]
        return tied[:SMALL_TABLE_ROWS]
    if len(block.parts) <= SMALL_TABLE_ROWS:
        return list(range(len(block.parts)))
    best = scored.score
    rows = [s.unit.parts[0] for s in same_block if s.unit.kind == "row" and s.score >= best - SCORE_MARGIN]
    return sorted(set(rows[:MAX_ROWS]) | ({scored.unit.parts[0]} if scored.unit.kind == "row" else set()))


def _list_items(scored: ScoredUnit, block: Block, text: str, asked: QuestionType,
                same_block: list[ScoredUnit]) -> list[int]:
    """The whole list for steps or a list asked for, or a short list; otherwise the best-scoring items."""
    whole = range(len(block.parts))
    if STEPS in asked.wants or LIST in asked.wants or (
            len(block.parts) <= SHORT_LIST_ITEMS and block.end - block.start <= SHORT_LIST_CHARS):
        return list(whole)
    best = scored.score
    items = [s.unit.parts[0] for s in same_block if s.unit.kind == "item" and s.score >= best - SCORE_MARGIN]
    own = set(scored.unit.parts) if scored.unit.kind == "item" else set()
    return sorted(set(items[:MAX_ITEMS]) | own) or list(whole)


def _introduced_block(unit: Unit, blocks: Sequence[Block]) -> int | None:
    """The list, table or code block a sentence ending in ":" introduces, or None."""
    if unit.kind != "sentence" or not unit.text.rstrip().endswith(":"):
        return None
    return next((index for index, block in enumerate(blocks)
                 if block.lead_in and block.lead_in[0] < unit.end and unit.start < block.lead_in[1]), None)


def _piece(scored: ScoredUnit, passage: Passage, asked: QuestionType, wanted: set[str],
           ranked: Sequence[ScoredUnit], question: str) -> Piece:
    """The unit widened or narrowed to what the question needs."""
    unit, text = scored.unit, passage.text
    blocks = split_blocks(text)
    number = scored.passage_number
    introduced = _introduced_block(unit, blocks)
    if introduced is not None:
        # "… you receive a referral bonus of:" says nothing alone: the table or list it introduces is the answer.
        inner = next((s for s in ranked if s.passage_number == number and s.unit.block == introduced), None)
        if inner is not None:
            return _piece(inner, passage, asked, wanted, ranked, question)
    block = blocks[unit.block]
    same_block = [s for s in ranked if s.passage_number == number and s.unit.block == unit.block]
    lead_in = text[block.lead_in[0]:block.lead_in[1]].strip() if block.lead_in else ""
    start = block.lead_in[0] if block.lead_in else block.start
    if unit.kind in ("row", "table"):
        rows = _table_rows(scored, block, text, wanted, same_block, asked, question)
        return Piece(number, unit.block, "table", start, block.end, tuple(rows), render_table(text, block, rows),
                     lead_in)
    if unit.kind in ("item", "list"):
        items = _list_items(scored, block, text, asked, same_block)
        return Piece(number, unit.block, "list", start, block.end, tuple(items),
                     "\n".join(render_list(text, block, items)), lead_in)
    if unit.kind == "code":
        return Piece(number, unit.block, "code", start, block.end, (0,), render_code(text, block), lead_in)
    # "Disconnect and reconnect. If that fails, flush DNS.": a next sentence that leans on this one goes with it.
    last = unit.parts[-1]
    if block.kind == "paragraph" and last + 1 < len(block.parts):
        following = text[block.parts[last + 1][0]:block.parts[last + 1][1]]
        if is_dependent(following) and not is_metadata(following):
            end = block.parts[last + 1][1]
            return Piece(number, unit.block, "sentences", unit.start, end, (*unit.parts, last + 1),
                         text[unit.start:end])
    return Piece(number, unit.block, "sentences", unit.start, unit.end, unit.parts, unit.text)


def _select(part: str, passages: Sequence[Passage], limit: int) -> list[Piece]:
    """The pieces answering one part of the question, best first."""
    ranked = score_units(part, passages)
    if not ranked:
        return []
    asked = classify(part)
    wanted = (row_terms(part) - QUESTION_WORDS) | {t for identifier in asked.identifiers for t in row_terms(identifier)}
    by_number = {p.number: p for p in passages}
    # Text that addresses the assistant ("ignore previous instructions…"), and what follows it in its paragraph, is
    # never quoted: verification would drop it, and the units after it answer in its place.
    addressed = {p.number: addressed_spans(p.text) for p in passages}
    ranked = [s for s in ranked
              if not any(s.unit.start < end and start < s.unit.end for start, end in addressed[s.passage_number])]
    if not ranked:
        return []
    best = ranked[0].score
    chosen: list[Piece] = []
    for scored in ranked:
        if len(chosen) == limit or scored.score < best - SCORE_MARGIN:
            break
        # A table, list or code block answers on its own: at most a sentence from its own passage goes with it,
        # never a second block from elsewhere.
        if chosen and chosen[0].kind != "sentences" and (
                scored.unit.kind != "sentence" or scored.passage_number != chosen[0].passage_number):
            continue
        piece = _piece(scored, by_number[scored.passage_number], asked, wanted, ranked, part)
        if any(piece.overlaps(other) for other in chosen) or _redundant(piece.text, [c.text for c in chosen]):
            continue
        chosen.append(piece)
        if chosen[0].kind != "sentences" and len(chosen) == 2:
            break
    if STEPS in asked.wants:
        chosen.extend(_shown_how(chosen, by_number, asked, wanted, ranked, part))
    return chosen


def _shown_how(chosen: list[Piece], by_number: dict[int, Passage], asked: QuestionType, wanted: set[str],
               ranked: Sequence[ScoredUnit], question: str) -> list[Piece]:
    """For "how do I…": the code block or list right after a chosen sentence ("… roll back first." then the
    command) — the sentence says what to do, the block how."""
    added: list[Piece] = []
    for piece in [p for p in chosen if p.kind == "sentences"]:
        blocks = split_blocks(by_number[piece.passage_number].text)
        following = piece.block + 1
        if following >= len(blocks) or blocks[following].kind not in ("code", "list"):
            continue
        unit = next((s for s in ranked if s.passage_number == piece.passage_number and s.unit.block == following
                     and s.unit.kind in ("code", "list", "item")), None)
        if unit is None:
            continue
        block_piece = _piece(unit, by_number[piece.passage_number], asked, wanted, ranked, question)
        if not any(block_piece.overlaps(other) for other in (*chosen, *added)):
            added.append(block_piece)
    return added


def _marked_sentences(text: str, number: int) -> str:
    """Sentences with their marker before the final punctuation: "… 15 days [1]."."""
    marked = []
    for start, end in split_sentences(text):
        sentence = text[start:end].strip()
        ending = sentence[-1] if sentence[-1] in ".!?" else "."
        body = sentence[:-1].rstrip() if sentence[-1] in ".!?" else sentence
        marked.append(f"{body} [{number}]{ending}")
    return " ".join(marked)


def _render(pieces: Sequence[Piece]) -> str:
    blocks: list[str] = []
    paragraph: list[str] = []
    for piece in pieces:
        marker = f"[{piece.passage_number}]"
        if piece.kind == "sentences":
            paragraph.append(_marked_sentences(piece.text, piece.passage_number))
            continue
        if paragraph:
            blocks.append(" ".join(paragraph))
            paragraph = []
        if piece.lead_in:
            # Uncited: it is checked with, and stands or falls with, the block it introduces.
            blocks.append(piece.lead_in)
        if piece.kind == "list":
            # Each item carries its marker at the end of its line.
            blocks.append("\n".join(f"{line} {marker}" for line in piece.text.split("\n")))
        else:
            blocks.append(f"{piece.text}\n{marker}")
    if paragraph:
        blocks.append(" ".join(paragraph))
    return "\n\n".join(blocks)


class ExtractiveComposer:
    name = "extractive"

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        parts = split_parts(question)
        pieces: list[Piece] = []
        if len(parts) > 1:
            for part in parts:
                # A part nothing answers gets no unit rather than the nearest unrelated one: each part passes the
                # refusal gate on its own, a little under its bar (the question already passed it, as a whole or
                # in a part): a part is shorter than the question, so it shares fewer of its words with any unit.
                if not judge(part, passages).within(PART_LEEWAY):
                    continue
                chosen = _select(part, passages, MAX_UNITS_PER_PART)
                for piece in sorted(chosen, key=lambda p: (p.passage_number, p.start)):
                    if not any(piece.overlaps(other) for other in pieces):
                        pieces.append(piece)
        if not pieces:
            chosen = _select(question, passages, MAX_UNITS)
            # Read in document order within a passage, passages in rank order.
            pieces = sorted(chosen, key=lambda p: (p.passage_number, p.start))
        if not pieces:
            return Composition(text="", composer=self.name, declined=True)
        return Composition(text=_render(pieces), composer=self.name)
