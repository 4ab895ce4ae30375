"""Block Kit rendering of bot answers. Everything user- or document-controlled is escaped first."""

from __future__ import annotations

import json
import re
from typing import Any

from answers import formatting
from bot import messages, services
from bot.services import BotAnswer

SECTION_LIMIT = 3000   # characters of text in one section block
MAX_ANSWER_CHARS = 4 * SECTION_LIMIT
MAX_ANSWER_BLOCKS = 10
# Block Kit's table block: at most 100 rows of at most 20 cells, one table per message.
TABLE_MAX_ROWS = 100
TABLE_MAX_COLUMNS = 20
TABLE_CELL_CHARS = 1000
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3500  # the notification text Slack shows outside Block Kit
FLAG_CALLBACK_ID = "citewise_flag"
_CONTROL = re.compile(r"<([!@#])")  # how a Slack mention or channel link begins: <!here>, <@U1>, <#C1>


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


def _split(text: str) -> list[str]:
    """Text longer than a section, in pieces of at most SECTION_LIMIT characters split at lines or words."""
    chunks: list[str] = []
    rest = text
    while rest:
        if len(rest) <= SECTION_LIMIT:
            chunks.append(rest)
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
    return chunks


def _section(text: str) -> dict[str, Any]:
    # verbatim: Slack neither links addresses nor parses mentions in the text itself; only our own <url|title> links
    # (built from escaped titles) are links.
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " ", "verbatim": True}}


def _mrkdwn(content: formatting.Inline) -> str:
    return formatting.break_broadcasts(escape(formatting.plain(content)))


def _markers(numbers: tuple[int, ...]) -> str:
    return "".join(f"[{n}]" for n in numbers)


def _preformatted(text: str, numbers: tuple[int, ...]) -> str:
    body = truncate(formatting.break_broadcasts(escape(text)).replace("```", "`\u200b``"), SECTION_LIMIT - 40)
    return f"```\n{body}\n```" + (f"\n{_markers(numbers)}" if numbers else "")


def _raw_cell(content: formatting.Inline) -> dict[str, str]:
    # raw_text is not mrkdwn, but a Slack control sequence (<!here>, <@U1>) is still broken up in case a client reads it.
    text = _CONTROL.sub(r"‹\1", formatting.break_broadcasts(formatting.plain(content)))
    return {"type": "raw_text", "text": text[:TABLE_CELL_CHARS] or " "}


def table_block(table: formatting.Table) -> dict[str, Any] | None:
    """A Block Kit table (rows of raw_text cells), or None when the table is over Slack's limits."""
    rows = [table.header, *table.rows]
    columns = max(len(row) for row in rows)
    if len(rows) > TABLE_MAX_ROWS or columns > TABLE_MAX_COLUMNS:
        return None
    cells = [[_raw_cell(row[c]) if c < len(row) else {"type": "raw_text", "text": " "} for c in range(columns)]
             for row in rows]
    return {"type": "table", "column_settings": [{"is_wrapped": True}] * columns, "rows": cells}


def answer_body(blocks: list[formatting.Block]) -> list[dict[str, Any]]:
    """The answer's blocks: sections of mrkdwn (paragraphs, bullet lines, ``` code), and its first table as a Block
    Kit table (Slack takes one per message; others are aligned columns in a code block)."""
    pieces: list[str | dict[str, Any]] = []
    table_used = False
    for block in blocks:
        if isinstance(block, formatting.Paragraph):
            pieces.append(_mrkdwn(block.content))
        elif isinstance(block, formatting.ItemList):
            pieces.append("\n".join(f"{f'{block.start + i}.' if block.ordered else '•'} {_mrkdwn(item)}"
                                    for i, item in enumerate(block.items)))
        elif isinstance(block, formatting.Code):
            pieces.append(_preformatted(block.text, block.citations))
        else:
            native = None if table_used else table_block(block)
            if native is None:
                pieces.append(_preformatted(formatting.aligned(block), block.citations))
            else:
                table_used = True
                pieces.append(native)
                if block.citations:
                    pieces.append(_markers(block.citations))
    rendered: list[dict[str, Any]] = []
    pending = ""
    budget = MAX_ANSWER_CHARS

    def flush() -> None:
        nonlocal pending
        for chunk in _split(pending):
            rendered.append(_section(chunk))
        pending = ""

    for piece in pieces:
        if budget <= 0:
            break
        if isinstance(piece, dict):
            flush()
            rendered.append(piece)
            continue
        piece = truncate(piece, budget)
        budget -= len(piece)
        if pending and len(pending) + 2 + len(piece) > SECTION_LIMIT:
            flush()
        pending = f"{pending}\n\n{piece}" if pending else piece
    flush()
    return rendered[:MAX_ANSWER_BLOCKS] or [_section(" ")]


def answer_blocks(answer: BotAnswer, *, ephemeral: bool, console_url: str = "") -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks) for an answer."""
    result = answer.result
    # Links not to a cited source were removed when the answer was made; removing them here too keeps the
    # renderer safe on its own.
    parsed = formatting.parse(result.text, (c.url for c in result.citations))
    blocks = answer_body(parsed)
    if result.citations:
        blocks.append(_section(truncate("*Sources*\n" + source_lines(result.citations, console_url), SECTION_LIMIT)))
    elif result.nearest:
        blocks.append(_section(truncate(
            "*Nearest documents* (they may help, but do not answer it)\n"
            + source_lines(result.nearest, console_url), SECTION_LIMIT)))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "verbatim": True, "text": truncate(
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
    fallback = formatting.break_broadcasts(escape(formatting.to_text(parsed)))
    return truncate(fallback, FALLBACK_LIMIT), blocks[:MAX_BLOCKS]


def message_blocks(message: str) -> list[dict[str, Any]]:
    return [_section(truncate(escape(message), SECTION_LIMIT))]


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
