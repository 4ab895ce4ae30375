"""Block Kit rendering of bot answers. Everything user- or document-controlled is escaped first."""

from __future__ import annotations

import json
from typing import Any

from bot import messages, services
from bot.services import BotAnswer

SECTION_LIMIT = 3000   # characters of text in one section block
MAX_ANSWER_SECTIONS = 4
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3500  # the notification text Slack shows outside Block Kit
FLAG_CALLBACK_ID = "citewise_flag"


def escape(text: str) -> str:
    """Slack's control characters: no `<!channel>`, `<@U…>` or `<http://evil|innocent>` can come through."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # never leave half an entity such as "&am"
    return cut + "…"


def _link(citation: Any, console_url: str) -> str:
    title = escape(citation.title or "Untitled").replace("|", "¦")
    url = messages.source_url(citation, console_url)
    return f"<{escape(url).replace('|', '%7C')}|{title}>" if url else f"*{title}*"


def source_lines(citations: list[Any], console_url: str = "") -> str:
    lines = []
    for citation in citations:
        parts = [f"[{citation.number}] {_link(citation, console_url)}"]
        if citation.source_type:
            parts.append(escape(citation.source_type))
        if dated := messages.citation_date(citation):
            parts.append(dated)
        lines.append(" · ".join(parts))
    return "\n".join(lines)


def _sections(text: str) -> list[dict[str, Any]]:
    """The answer in up to MAX_ANSWER_SECTIONS sections of at most SECTION_LIMIT characters, split at lines."""
    chunks: list[str] = []
    rest = text
    while rest and len(chunks) < MAX_ANSWER_SECTIONS:
        if len(rest) <= SECTION_LIMIT or len(chunks) == MAX_ANSWER_SECTIONS - 1:
            chunks.append(truncate(rest, SECTION_LIMIT))
            break
        split = rest.rfind("\n", 0, SECTION_LIMIT)
        if split < SECTION_LIMIT // 2:
            split = rest.rfind(" ", 0, SECTION_LIMIT)
        if split < SECTION_LIMIT // 2:
            split = SECTION_LIMIT - 1
            amp = rest.rfind("&", 0, split)
            if amp != -1 and ";" not in rest[amp:split]:
                split = amp
        chunks.append(rest[:split])
        rest = rest[split:].lstrip()
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk or " "}} for chunk in chunks]


def answer_blocks(answer: BotAnswer, *, ephemeral: bool, console_url: str = "") -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks) for an answer."""
    result = answer.result
    text = escape(result.text)
    blocks = _sections(text)
    if result.citations:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": truncate(
            "*Sources*\n" + source_lines(result.citations, console_url), SECTION_LIMIT)}})
    elif result.nearest:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": truncate(
            "*Nearest documents* (they may help, but do not answer it)\n"
            + source_lines(result.nearest, console_url), SECTION_LIMIT)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(
        escape(messages.scope_note(answer, private=ephemeral, platform_name="Slack")), SECTION_LIMIT)}]})
    answer_id = str(result.answer_id)
    blocks.append({"type": "actions", "block_id": "citewise_feedback", "elements": [
        {"type": "button", "action_id": "feedback_up", "value": answer_id,
         "text": {"type": "plain_text", "text": "👍", "emoji": True}},
        {"type": "button", "action_id": "feedback_down", "value": answer_id,
         "text": {"type": "plain_text", "text": "👎", "emoji": True}},
        {"type": "button", "action_id": "flag", "value": answer_id,
         "text": {"type": "plain_text", "text": "Flag", "emoji": True}},
    ]})
    return truncate(text, FALLBACK_LIMIT), blocks[:MAX_BLOCKS]


def message_blocks(message: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(escape(message), SECTION_LIMIT)}}]


def flag_modal(answer_id: str, channel_id: str = "") -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": label[:75]}, "value": value}
               for value, label in services.flag_reasons()]
    return {
        "type": "modal",
        "callback_id": FLAG_CALLBACK_ID,
        "private_metadata": json.dumps({"answer_id": answer_id, "channel_id": channel_id}),
        "title": {"type": "plain_text", "text": "Flag this answer"},
        "submit": {"type": "plain_text", "text": "Flag"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "What is wrong?"},
             "element": {"type": "static_select", "action_id": "reason", "options": options,
                         "placeholder": {"type": "plain_text", "text": "Choose a reason"}}},
            {"type": "input", "block_id": "comment", "optional": True,
             "label": {"type": "plain_text", "text": "Comment for the reviewers"},
             "element": {"type": "plain_text_input", "action_id": "comment", "multiline": True,
                         "max_length": 3000}},
        ],
    }
