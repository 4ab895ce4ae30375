"""Structured answers (tables, code, lists, paragraphs) rendered natively in Slack and Teams, and what document text
must never do there: notify a channel, mention someone, or link anywhere but the cited sources."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from bot.services import SCOPE_PERSONAL, Asker, BotAnswer
from bot.slack import render as slack
from bot.teams import render as teams
from tests.answers.test_formatting import CODE_ANSWER, LIST_ANSWER, PARAGRAPH_ANSWER, TABLE_ANSWER

SOME_USER = object()
HOSTILE = ("<!channel> <!here> <!everyone> <!subteam^S123|admins> <@U123> @here @channel @everyone read "
           "[this](https://evil.example) <https://evil.example|the handbook> ![x](https://evil.example/p.png) "
           "<at>Everyone</at> [1].")


def _answer(platform: str, text: str) -> BotAnswer:
    citation = SimpleNamespace(number=1, title="Handbook", url="https://wiki.example/handbook", document_id="d1",
                               source_type="Markdown", modified_at=datetime(2025, 3, 1, tzinfo=UTC))
    result = SimpleNamespace(text=text, citations=[citation], nearest=[], answer_id=uuid.uuid4(), refused=False,
                             corrected_query="")
    return BotAnswer(result=result, asker=Asker(platform, "T1", "U1", SOME_USER), scope=SCOPE_PERSONAL)


def slack_answer(text: str) -> list[dict]:
    _, blocks = slack.answer_blocks(_answer("slack", text), ephemeral=False)
    return blocks[:-3]  # without sources, scope note and buttons


def teams_answer(text: str) -> list[dict]:
    card = teams.answer_card(_answer("teams", text))
    return card["body"][:card["body"].index(teams._text("Sources", weight="Bolder", spacing="Medium"))]


# Slack ---------------------------------------------------------------------------------------------


def test_slack_table_is_a_block_kit_table_followed_by_its_markers():
    intro, table, markers = slack_answer(TABLE_ANSWER)
    assert intro["text"] == {"type": "mrkdwn", "text": "Vacation grows with seniority [1].", "verbatim": True}
    assert table["type"] == "table" and table["column_settings"] == [{"is_wrapped": True}] * 2
    assert [[cell["text"] for cell in row] for row in table["rows"]] == [
        ["Years of service", "Vacation days"], ["0 to 3 years", "15 days"], ["3 to 6 years", "20 days"]]
    assert all(cell["type"] == "raw_text" for row in table["rows"] for cell in row)
    assert markers["text"]["text"] == "[1]"


def test_slack_takes_one_table_per_message_the_next_is_aligned_text():
    blocks = slack_answer(TABLE_ANSWER + "\n\n" + TABLE_ANSWER.split("\n\n", 1)[1])
    assert [b["type"] for b in blocks].count("table") == 1
    second = blocks[-1]["text"]["text"]
    assert second.startswith("[1]\n\n```\nYears of service | Vacation days\n") and second.endswith("```\n[1]")


def test_slack_code_lists_and_paragraphs():
    (code,) = slack_answer(CODE_ANSWER)
    assert code["text"]["text"] == ("Restart the agent with [2]:\n\n"
                                    "```\nsudo systemctl restart vpn-agent &amp;&amp; echo &lt;ok&gt;\n```\n[2]")
    (lists,) = slack_answer(LIST_ANSWER)
    assert lists["text"]["text"] == ("To file a claim:\n\n1. Open the portal [1]\n2. Attach the receipts [1][3]\n\n"
                                     "• Claims close after 90 days [3]")
    (paragraph,) = slack_answer(PARAGRAPH_ANSWER)
    assert paragraph["text"]["text"] == PARAGRAPH_ANSWER.replace("[1, 2]", "[1][2]")


def test_slack_answers_cannot_notify_mention_or_link():
    text, blocks = slack.answer_blocks(_answer("slack", HOSTILE), ephemeral=False)
    answer = blocks[0]["text"]
    assert answer["verbatim"] is True  # Slack neither links addresses nor parses mentions in it
    rendered = text + json.dumps(blocks, ensure_ascii=False)
    for control in ("<!channel>", "<!here>", "<!everyone>", "<!subteam", "<@U123>", "<https://evil", "](https://"):
        assert control not in rendered
    assert "&lt;!channel&gt;" in answer["text"] and "&lt;@U123&gt;" in answer["text"]
    assert "@here" not in answer["text"] and "＠here ＠channel ＠everyone" in answer["text"]
    # The only link in the message is the cited source's.
    assert rendered.count("<https://") == 1 and "<https://wiki.example/handbook|Handbook>" in rendered


def test_slack_table_cells_cannot_mention_either():
    (_, table, _) = slack_answer("Who [1]:\n\n| Team | Contact |\n| --- | --- |\n| Ops | <!here> @channel <@U1> |\n[1]")
    assert table["rows"][1][1]["text"] == "‹!here> ＠channel ‹@U1>"


def test_slack_long_structured_answers_stay_within_limits():
    rows = "".join(f"| {n} | {'x' * 50} |\n" for n in range(150))
    long_answer = "\n\n".join([PARAGRAPH_ANSWER * 60, "| n | text |\n| --- | --- |\n" + rows + "[1]",
                               "```\n" + "line\n" * 2000 + "```\n[1]", LIST_ANSWER * 30])
    text, blocks = slack.answer_blocks(_answer("slack", long_answer), ephemeral=False)
    assert len(blocks) <= slack.MAX_BLOCKS and len(text) <= slack.FALLBACK_LIMIT
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(0 < len(section) <= slack.SECTION_LIMIT for section in sections)
    assert all(section.count("```") % 2 == 0 for section in sections)  # no code fence left open
    assert "table" not in [b["type"] for b in blocks]  # 151 rows: over the table block's 100, so aligned text


# Teams ---------------------------------------------------------------------------------------------


def test_teams_table_is_an_adaptive_card_table_with_a_monospace_fallback():
    intro, table, markers = teams_answer(TABLE_ANSWER)
    assert intro["text"] == "Vacation grows with seniority [1]."
    assert table["type"] == "Table" and table["firstRowAsHeaders"] is True and len(table["columns"]) == 2
    assert [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]] == [
        ["Years of service", "Vacation days"], ["0 to 3 years", "15 days"], ["3 to 6 years", "20 days"]]
    assert table["fallback"]["fontType"] == "Monospace" and "3 to 6 years     | 20 days" in table["fallback"]["text"]
    assert markers["text"] == "[1]"
    assert teams.answer_card(_answer("teams", TABLE_ANSWER))["version"] == "1.5"


def test_teams_code_lists_and_paragraphs():
    intro, code, markers = teams_answer(CODE_ANSWER)
    assert intro["text"] == "Restart the agent with [2]:"
    assert code == {"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": "sudo systemctl restart vpn-agent && echo <ok>", "fontType": "Monospace"}]}
    assert markers["text"] == "[2]"
    assert [b["text"] for b in teams_answer(LIST_ANSWER)] == [
        "To file a claim:", "1. Open the portal [1]\n2. Attach the receipts [1][3]", "- Claims close after 90 days [3]"]
    assert [b["text"] for b in teams_answer(PARAGRAPH_ANSWER)] == [PARAGRAPH_ANSWER.replace("[1, 2]", "[1][2]")]


def test_teams_answers_cannot_mention_or_link():
    card = teams.answer_card(_answer("teams", HOSTILE))
    answer = card["body"][0]["text"]
    rendered = json.dumps(card, ensure_ascii=False)
    assert "<at>" not in rendered and "<!channel>" not in rendered and "<@U123>" not in rendered
    assert "](https://evil" not in rendered and "<https://evil" not in rendered and "p.png" not in rendered
    assert "＠here ＠channel ＠everyone" in answer and "@here" not in answer
    assert "msteams" in card and "entities" not in card["msteams"]  # no mention entity is ever built
    assert rendered.count("](https://") == 1 and "[Handbook](https://wiki.example/handbook)" in rendered


def test_teams_long_structured_answers_stay_within_the_card_limit():
    rows = "".join(f"| {n} | {'x' * 80} |\n" for n in range(400))
    long_answer = "\n\n".join([PARAGRAPH_ANSWER * 80, "| n | text |\n| --- | --- |\n" + rows + "[1]",
                               "```\n" + "line\n" * 5000 + "```", LIST_ANSWER * 40])
    card = teams.answer_card(_answer("teams", long_answer))
    assert len(json.dumps(card).encode()) <= teams.MAX_CARD_BYTES
    assert card["body"][0]["text"].startswith("Hotel stays are capped")
