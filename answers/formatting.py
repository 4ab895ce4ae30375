"""Answer text as blocks that every surface renders natively, from one parser of the answer subset.

Answer text is a small Markdown subset (docs/answering.md): paragraphs whose sentences carry [n] markers, "- " and
"1. " list items with their markers at the end of the line, GitHub pipe tables and fenced code blocks, each followed
by a line holding only its markers. `parse()` reads it with markdown-it into `Paragraph`, `ItemList`, `Table` and
`Code` blocks; the web (`to_html` here), Slack (bot/slack/render.py) and Teams (bot/teams/render.py) render those.

Everything in an answer may come from a document, so nothing in it is trusted: raw HTML is text, link and image
syntax keeps only its text (the only links are the citation links each surface builds), and `strip_foreign_links`
removes web addresses that are not a cited source before the answer is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from typing import Any

from core.text import remove_hidden_characters

# [3], [3, 4] and the full-width brackets some models emit.
_MARKER = re.compile(r"[\[【](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]】]")
# @-keywords that notify a whole channel in Slack (and read as such in Teams); the full-width ＠ cannot.
_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)

LINK_REMOVED = "(link removed)"
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\([^)\n]*\)")
_SLACK_LINK = re.compile(r"<((?:https?|ftp|file|mailto):[^|>\s]*)\|([^>\n]*)>", re.IGNORECASE)
_AUTOLINK = re.compile(r"<((?:https?|ftp|file|mailto):[^>\s]*)>", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?:(?:https?|ftp|file)://|www\.)[^\s<>\"'`]+", re.IGNORECASE)


def strip_invisible(text: str) -> str:
    """Text without the invisible characters that could hide part of it from the reader (core.text); the joiners
    emoji need stay."""
    return remove_hidden_characters(text, keep_joiners=True)


def break_broadcasts(text: str) -> str:
    """@here, @channel and @everyone written with a full-width ＠ that no chat platform treats as a mention."""
    return _BROADCAST.sub("＠", text)


def _url_key(url: str) -> str:
    return url.split("#", 1)[0].rstrip("/").lower()


def strip_foreign_links(text: str, allowed_urls: Iterable[str] = ()) -> str:
    """The answer with link and image syntax reduced to its text and every web address that is not one of
    `allowed_urls` (the cited sources) replaced by LINK_REMOVED: a document cannot send the reader anywhere."""
    allowed = {_url_key(url) for url in allowed_urls if url}

    def bare(match: re.Match[str]) -> str:
        url = match.group(0)
        trailing = len(url) - len(url.rstrip(".,;:!?)]}"))
        url, tail = (url[:-trailing], url[-trailing:]) if trailing else (url, "")
        return (url if _url_key(url) in allowed else LINK_REMOVED) + tail

    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _SLACK_LINK.sub(lambda m: m.group(2), text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    return _BARE_URL.sub(bare, text)


# -- blocks ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cite:
    """A citation marker: the passage numbers of one [n] or [n, m]."""

    numbers: tuple[int, ...]


# Inline content: text runs and citation markers, in reading order.
Inline = tuple[str | Cite, ...]


@dataclass(frozen=True)
class Paragraph:
    content: Inline


@dataclass(frozen=True)
class ItemList:
    items: tuple[Inline, ...]
    ordered: bool = False
    start: int = 1


@dataclass(frozen=True)
class Table:
    header: tuple[Inline, ...]
    rows: tuple[tuple[Inline, ...], ...]
    citations: tuple[int, ...] = ()


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""
    citations: tuple[int, ...] = ()


Block = Paragraph | ItemList | Table | Code


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # No raw HTML (it stays text), and no reference definitions: "[1]: https://…" must not turn markers into links.
    return MarkdownIt("commonmark", {"html": False}).enable("table").disable("reference")


def _split_markers(text: str) -> list[str | Cite]:
    parts: list[str | Cite] = []
    last = 0
    for match in _MARKER.finditer(text):
        if match.start() > last:
            parts.append(text[last:match.start()])
        parts.append(Cite(tuple(int(n) for n in match.group(1).split(","))))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return parts


def _inline(token: Any) -> Inline:
    """An inline token's text with its markers; link targets, images' sources and emphasis are dropped."""
    text: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            text.append(child.content)
        elif child.type == "image":
            text.append(child.content)  # the alt text
        elif child.type in ("softbreak", "hardbreak"):
            text.append("\n")
    return _normalise(_split_markers("".join(text)))


def _normalise(parts: Iterable[str | Cite]) -> Inline:
    """Adjacent markers merged into one Cite, whitespace before a marker dropped ("days [1]" → "days", Cite)."""
    out: list[str | Cite] = []
    for part in parts:
        if isinstance(part, Cite):
            if out and isinstance(out[-1], str):
                out[-1] = out[-1].rstrip(" ")
                if not out[-1]:
                    out.pop()
            if out and isinstance(out[-1], Cite):
                out[-1] = Cite(tuple(dict.fromkeys(out[-1].numbers + part.numbers)))
            else:
                out.append(part)
        elif part:
            out.append(part)
    return tuple(out)


def citations_of(content: Inline) -> tuple[int, ...]:
    """The passage numbers an inline run cites, once each, in order."""
    return tuple(dict.fromkeys(n for part in content if isinstance(part, Cite) for n in part.numbers))


def _only_markers(content: Inline) -> bool:
    return bool(content) and all(isinstance(p, Cite) or not p.strip() for p in content)


def plain(content: Inline) -> str:
    """Inline content as text, markers written "[n]" after a space."""
    return "".join(f" {''.join(f'[{n}]' for n in part.numbers)}" if isinstance(part, Cite) else part
                   for part in content).strip()


def parse(text: str, cited_urls: Iterable[str] | None = None) -> list[Block]:
    """The blocks of an answer text. A line of markers after a table or code block becomes its citations.

    With `cited_urls`, web addresses that are none of them are removed first (strip_foreign_links).
    """
    text = strip_invisible(text or "")
    if cited_urls is not None:
        text = strip_foreign_links(text, cited_urls)
    tokens = _markdown().parse(text)
    blocks: list[Block] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == "inline":  # a paragraph, a heading: their text
            content = _inline(token)
            previous = blocks[-1] if blocks else None
            if _only_markers(content) and isinstance(previous, Table | Code):
                blocks[-1] = _with_citations(previous, citations_of(content))
            elif content:
                blocks.append(Paragraph(content))
        elif token.type in ("fence", "code_block"):
            language = ((token.info or "").split() or [""])[0] if token.type == "fence" else ""
            blocks.append(Code(token.content.rstrip("\n"), language))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            index, item_list = _list(tokens, index)
            blocks.append(item_list)
        elif token.type == "table_open":
            index, table = _table(tokens, index)
            blocks.append(table)
        index += 1
    return blocks


def _with_citations(block: Table | Code, numbers: tuple[int, ...]) -> Table | Code:
    merged = tuple(dict.fromkeys(block.citations + numbers))
    if isinstance(block, Table):
        return Table(block.header, block.rows, merged)
    return Code(block.text, block.language, merged)


def _list(tokens: Sequence[Any], index: int) -> tuple[int, ItemList]:
    """A list and any lists nested in it, flattened into its items; returns the index of its closing token."""
    opening = tokens[index]
    ordered = opening.type == "ordered_list_open"
    start = int(opening.attrGet("start") or 1) if ordered else 1
    items: list[Inline] = []
    depth = 0
    current: list[Inline] = []
    for index in range(index, len(tokens)):  # noqa: B020 - the loop resumes where the list ends
        token = tokens[index]
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            if depth == 0:
                break
        elif token.type == "list_item_open" and current:  # an item holding a nested list: its own text first
            items.append(_normalise(_joined(current)))
            current = []
        elif token.type == "inline":
            current.append(_inline(token))
        elif token.type == "list_item_close" and current:
            items.append(_normalise(_joined(current)))
            current = []
        elif token.type in ("fence", "code_block"):
            current.append((token.content.rstrip("\n"),))
    return index, ItemList(tuple(items), ordered, start)


def _joined(pieces: list[Inline]) -> list[str | Cite]:
    out: list[str | Cite] = []
    for number, piece in enumerate(pieces):
        if number:
            out.append(" ")
        out.extend(piece)
    return out


def _table(tokens: Sequence[Any], index: int) -> tuple[int, Table]:
    rows: list[tuple[Inline, ...]] = []
    row: list[Inline] = []
    for index in range(index, len(tokens)):  # noqa: B020 - the loop resumes where the table ends
        token = tokens[index]
        if token.type == "table_close":
            break
        if token.type == "tr_open":
            row = []
        elif token.type == "inline":
            row.append(_inline(token))
        elif token.type == "tr_close":
            rows.append(tuple(row))
    header, body = (rows[0] if rows else ()), rows[1:]
    citations: tuple[int, ...] = ()
    # "[1]" on the line right after the rows is read by GFM as one more row; it is the table's markers.
    while body and any(body[-1]) and all(not cell or _only_markers(cell) for cell in body[-1]):
        citations = tuple(dict.fromkeys(n for cell in body[-1] for n in citations_of(cell))) + citations
        body = body[:-1]
    return index, Table(header, tuple(body), citations)


# -- HTML (the web chat and the API's answer_html) ----------------------------------------------------------------


def _html_inline(content: Inline, cite_href: Callable[[int], str]) -> str:
    out: list[str] = []
    for part in content:
        if isinstance(part, Cite):
            out.append((" " if out else "") + _html_cites(part.numbers, cite_href))
        else:
            out.append(escape(part).replace("\n", "<br>"))
    return "".join(out)


def _html_cites(numbers: Iterable[int], cite_href: Callable[[int], str]) -> str:
    return "".join(f'<a class="cite" href="{escape(cite_href(n))}" aria-label="source {n}">[{n}]</a>'
                   for n in numbers)


def _html_cite_line(numbers: tuple[int, ...], cite_href: Callable[[int], str]) -> str:
    return f'<p class="cites">{_html_cites(numbers, cite_href)}</p>' if numbers else ""


def to_html(text: str, cite_href: Callable[[int], str], cited_urls: Iterable[str] = ()) -> str:
    """The answer as HTML: every piece of text escaped, no link but the [n] markers, which go to `cite_href(n)`."""
    html: list[str] = []
    for block in parse(text, cited_urls):
        if isinstance(block, Paragraph):
            html.append(f"<p>{_html_inline(block.content, cite_href)}</p>")
        elif isinstance(block, ItemList):
            tag = "ol" if block.ordered else "ul"
            start = f' start="{block.start}"' if block.ordered and block.start != 1 else ""
            items = "".join(f"<li>{_html_inline(item, cite_href)}</li>" for item in block.items)
            html.append(f"<{tag}{start}>{items}</{tag}>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_html_inline(cell, cite_href)}</th>" for cell in block.header)
            body = "".join("<tr>" + "".join(f"<td>{_html_inline(cell, cite_href)}</td>" for cell in row) + "</tr>"
                           for row in block.rows)
            html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                        + _html_cite_line(block.citations, cite_href))
        else:
            language = re.sub(r"[^\w+-]", "", block.language)[:30]
            attribute = f' class="language-{language}"' if language else ""
            html.append(f"<pre><code{attribute}>{escape(block.text)}</code></pre>"
                        + _html_cite_line(block.citations, cite_href))
    return "\n".join(html)


# -- helpers the chat renderers share -----------------------------------------------------------------------------


def aligned(table: Table) -> str:
    """A table as aligned plain-text columns, for a monospace block where a surface has no table."""
    rows = [[plain(cell) for cell in table.header], *([plain(cell) for cell in row] for row in table.rows)]
    columns = max(len(row) for row in rows)
    rows = [row + [""] * (columns - len(row)) for row in rows]
    widths = [max(len(row[c]) for row in rows) for c in range(columns)]
    lines = [" | ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def to_text(blocks: Sequence[Block]) -> str:
    """Blocks as plain text, for a notification or a fallback: markers as "[n]", tables as aligned columns."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Paragraph):
            parts.append(plain(block.content))
        elif isinstance(block, ItemList):
            parts.append("\n".join(f"{f'{block.start + i}.' if block.ordered else '-'} {plain(item)}"
                                   for i, item in enumerate(block.items)))
        else:
            body = aligned(block) if isinstance(block, Table) else block.text
            parts.append(body + ("\n" + "".join(f"[{n}]" for n in block.citations) if block.citations else ""))
    return "\n\n".join(parts)
