"""Adaptive Card rendering of bot answers for Teams.

Teams renders a Markdown subset in TextBlocks: document and user text must not become links (a citation's title
could otherwise point anywhere), so link syntax is broken up and only links we build ourselves survive.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from bot import messages, services
from bot.services import BotAnswer

CARD_VERSION = "1.4"  # Action.Execute (Universal Actions) needs 1.4
# Teams refuses activities over about 28 KB; the card is kept well under it.
MAX_CARD_BYTES = 24_000
MAX_ANSWER_CHARS = 12_000
MAX_SOURCES = 10
MAX_TITLE_CHARS = 200
MAX_COMMENT_CHARS = 3000
FEEDBACK_VERB = "citewise.feedback"
FLAG_VERB = "citewise.flag"
_LINK_SYNTAX = re.compile(r"\]\s*\(")
_TAG_OR_AUTOLINK = re.compile(r"<(?=[A-Za-z/!])")


def plain(text: str) -> str:
    """Text that Teams' Markdown cannot turn into a link or an image."""
    text = _LINK_SYNTAX.sub("] (", text or "")
    # "<https://…>" autolinks and tags such as <at> are shown literally; "x < 5" is left alone.
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


def answer_card(answer: BotAnswer, *, console_url: str = "", private_in_chat: bool = False) -> dict[str, Any]:
    """The Adaptive Card for an answer: text with [n] markers, sources, scope note, 👍 / 👎 / Flag."""
    result = answer.result
    answer_id = str(result.answer_id)
    body: list[dict[str, Any]] = [_text(truncate(plain(result.text), MAX_ANSWER_CHARS))]
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
    while len(json.dumps(card).encode()) > MAX_CARD_BYTES and len(body[0]["text"]) > 200:
        body[0]["text"] = truncate(body[0]["text"], len(body[0]["text"]) // 2)
    return card


def card_attachment(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}


def summary(answer: BotAnswer) -> str:
    """The notification text Teams shows for the card (activity feed, toast)."""
    return truncate(plain(answer.result.text), 300)
