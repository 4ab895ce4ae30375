"""Adaptive Card rendering of bot answers for Teams.

Teams renders a Markdown subset in TextBlocks: document and user text must not become links (a citation's title
could otherwise point anywhere), so link syntax is broken up and only links we build ourselves survive.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from answers import formatting
from bot import messages, services
from bot.services import BotAnswer

CARD_VERSION = "1.5"  # Table needs 1.5; Action.Execute (Universal Actions) 1.4
# Teams refuses activities over about 28 KB; the card is kept well under it.
MAX_CARD_BYTES = 24_000
MAX_ANSWER_CHARS = 12_000
MAX_SOURCES = 10
MAX_TITLE_CHARS = 200
MAX_COMMENT_CHARS = 3000
FEEDBACK_VERB = "citewise.feedback"
FLAG_VERB = "citewise.flag"
_LINK_SYNTAX = re.compile(r"\]\s*\(")
_TAG_OR_AUTOLINK = re.compile(r"<(?=[A-Za-z/!@#])")


def plain(text: str) -> str:
    """Text that Teams' Markdown cannot turn into a link or an image."""
    text = _LINK_SYNTAX.sub("] (", text or "")
    # "<https://…>" autolinks, tags such as <at> and Slack-style <!here> / <@U1> are shown literally; "x < 5" stays.
    return _TAG_OR_AUTOLINK.sub("‹", text)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _title(title: str) -> str:
    cleaned = truncate((title or "Untitled").replace("[", "(").replace("]", ")"), MAX_TITLE_CHARS)
    return plain(cleaned).replace("*", "\\*").replace("_", "\\_")


def _url(citation: Any, console_url: str) -> str:
    # Parentheses and spaces would end the Markdown link early.
    return quote(messages.source_url(citation, console_url), safe=":/?#&=%+@~,;!$'*-._[]")


def source_line(citation: Any, console_url: str = "") -> str:
    title = _title(citation.title)
    url = _url(citation, console_url)
    parts = [f"[{citation.number}] " + (f"[{title}]({url})" if url else f"**{title}**")]
    if citation.source_type:
        parts.append(plain(citation.source_type))
    if dated := messages.citation_date(citation):
        parts.append(dated)
    return " · ".join(parts)


def _text(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text or " ", "wrap": True, **extra}


def _execute(title: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    # Older clients that lack Universal Actions send the same data as a message instead.
    return {"type": "Action.Execute", "title": title, "verb": verb, "data": data,
            "fallback": {"type": "Action.Submit", "title": title, "data": {"citewise": verb, **data}}}


def flag_card(answer_id: str) -> dict[str, Any]:
    choices = [{"title": label, "value": value} for value, label in services.flag_reasons()]
    return {
        "type": "AdaptiveCard",
        "body": [
            {"type": "Input.ChoiceSet", "id": "reason", "label": "What is wrong?", "isRequired": True,
             "errorMessage": "Choose a reason", "style": "compact", "choices": choices},
            {"type": "Input.Text", "id": "comment", "label": "Comment for the reviewers", "isMultiline": True,
             "maxLength": MAX_COMMENT_CHARS},
        ],
        "actions": [_execute("Send flag", FLAG_VERB, {"answer_id": answer_id})],
    }


def _inline(content: formatting.Inline) -> str:
    return formatting.break_broadcasts(plain(formatting.plain(content)))


def _markers(numbers: tuple[int, ...]) -> dict[str, Any]:
    return _text("".join(f"[{n}]" for n in numbers), spacing="Small", isSubtle=True)


def _table(table: formatting.Table) -> dict[str, Any]:
    rows = [table.header, *table.rows]
    columns = max(len(row) for row in rows)

    def row(cells: tuple[formatting.Inline, ...]) -> dict[str, Any]:
        return {"type": "TableRow", "cells": [
            {"type": "TableCell", "items": [_text(_inline(cells[c]) if c < len(cells) else " ")]}
            for c in range(columns)]}

    # A client without Tables (before 1.5) shows the same columns aligned in monospace.
    fallback = _text(plain(formatting.break_broadcasts(formatting.aligned(table))), fontType="Monospace")
    return {"type": "Table", "firstRowAsHeaders": True, "showGridLines": True, "gridStyle": "accent",
            "columns": [{"width": 1} for _ in range(columns)], "rows": [row(cells) for cells in rows],
            "fallback": fallback}


def _code(code: formatting.Code) -> dict[str, Any]:
    # A TextRun is not Markdown: code keeps its asterisks and underscores, and nothing in it becomes a link.
    return {"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": formatting.break_broadcasts(code.text) or " ", "fontType": "Monospace"}]}


def answer_elements(blocks: list[formatting.Block]) -> list[dict[str, Any]]:
    """The answer as card elements: TextBlocks for paragraphs and Markdown lists, a Table for each table and a
    monospace run for code; a table's or code block's markers follow it."""
    elements: list[dict[str, Any]] = []
    budget = MAX_ANSWER_CHARS
    for block in blocks:
        if budget <= 0:
            elements.append(_text("…", isSubtle=True))
            break
        if isinstance(block, formatting.Paragraph):
            elements.append(_text(truncate(_inline(block.content), budget)))
        elif isinstance(block, formatting.ItemList):
            lines = (f"{f'{block.start + i}.' if block.ordered else '-'} {_inline(item)}"
                     for i, item in enumerate(block.items))
            elements.append(_text(truncate("\n".join(lines), budget)))
        elif isinstance(block, formatting.Table):
            elements.append(_table(block))
        else:
            elements.append(_code(formatting.Code(truncate(block.text, budget), block.language, block.citations)))
        budget -= len(json.dumps(elements[-1]))
        if isinstance(block, formatting.Table | formatting.Code) and block.citations:
            elements.append(_markers(block.citations))
    return elements or [_text(" ")]


def answer_card(answer: BotAnswer, *, console_url: str = "", private_in_chat: bool = False) -> dict[str, Any]:
    """The Adaptive Card for an answer: text with [n] markers, sources, scope note, 👍 / 👎 / Flag."""
    result = answer.result
    answer_id = str(result.answer_id)
    # Links not to a cited source were removed when the answer was made; removing them here too keeps the
    # renderer safe on its own.
    answer_part = answer_elements(formatting.parse(result.text, (c.url for c in result.citations)))
    body: list[dict[str, Any]] = list(answer_part)
    listed, heading = (result.citations, "Sources") if result.citations else (
        result.nearest, "Nearest documents (they may help, but do not answer it)")
    if listed:
        body.append(_text(heading, weight="Bolder", spacing="Medium"))
        body.extend(_text(source_line(c, console_url), spacing="Small") for c in listed[:MAX_SOURCES])
        if len(listed) > MAX_SOURCES:
            body.append(_text(f"…and {len(listed) - MAX_SOURCES} more", isSubtle=True, spacing="Small"))
    note = messages.scope_note(answer, private=private_in_chat, platform_name="Teams")
    body.append(_text(plain(note), isSubtle=True, size="Small", spacing="Medium"))
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
        "actions": [
            _execute("👍", FEEDBACK_VERB, {"kind": "up", "answer_id": answer_id}),
            _execute("👎", FEEDBACK_VERB, {"kind": "down", "answer_id": answer_id}),
            {"type": "Action.ShowCard", "title": "Flag", "card": flag_card(answer_id)},
        ],
    }
    # Over the size Teams accepts: the answer loses its last elements, then its first one is cut.
    while len(json.dumps(card).encode()) > MAX_CARD_BYTES:
        if len(answer_part) > 1:
            body.remove(answer_part.pop())
        elif body[0].get("type") == "TextBlock" and len(body[0]["text"]) > 200:
            body[0]["text"] = truncate(body[0]["text"], len(body[0]["text"]) // 2)
        else:
            body[0] = answer_part[0] = _text("The answer is too long to show here; see the sources.")
            break
    return card


def card_attachment(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}


def summary(answer: BotAnswer) -> str:
    """The notification text Teams shows for the card (activity feed, toast)."""
    result = answer.result
    text = formatting.to_text(formatting.parse(result.text, (c.url for c in result.citations)))
    return truncate(formatting.break_broadcasts(plain(text)), 300)
