"""Adaptive Card rendering: document text cannot make links, limits hold, notes say which permissions applied."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from bot import messages
from bot.services import SCOPE_CHANNEL, SCOPE_PERSONAL, Asker, BotAnswer
from bot.teams import render

SOME_USER = object()  # a linked asker: only its presence matters to the renderers


def _answer(text: str, citations=(), scope=SCOPE_PERSONAL, user=SOME_USER, lookup_failed=False, nearest=()):
    result = SimpleNamespace(text=text, citations=list(citations), nearest=list(nearest), answer_id=uuid.uuid4(),
                             refused=not citations, corrected_query="")
    return BotAnswer(result=result, asker=Asker("teams", "T", "aad", user, lookup_failed=lookup_failed),
                     scope=scope)


def _citation(n: int, title: str, url: str):
    return SimpleNamespace(number=n, title=title, url=url, document_id=f"doc {n}", source_type="Markdown",
                           modified_at=datetime(2025, 3, 1, tzinfo=UTC))


MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\((?!https://wiki\.example|https://citewise\.example)")


def test_document_and_answer_text_cannot_make_links_or_mentions():
    answer = _answer("See [the handbook](https://evil.example) or <https://evil.example> and <at>Everyone</at>;"
                     " budgets < 5 % stay [1].",
                     [_citation(1, "Pay [policy](https://evil.example) *2025*", "https://wiki.example/pay (v2)")])
    card = render.answer_card(answer)
    rendered = json.dumps(card)
    assert "](https://evil" not in rendered and "<https://evil" not in rendered and "<at>" not in rendered
    assert "budgets < 5 % stay [1]" in card["body"][0]["text"]  # ordinary text and markers survive
    source = card["body"][2]["text"]
    assert source.startswith("[1] [Pay (policy)(https://evil.example) \\*2025\\*](https://wiki.example/pay%20%28v2%29)")
    assert "Markdown" in source and "modified 2025-03-01" in source


def test_only_web_urls_are_linked_and_console_links_win():
    citation = _citation(1, "Runbook", "file:///srv/corpus/runbooks/on-call.md")
    assert render.source_line(citation) == "[1] **Runbook** · Markdown · modified 2025-03-01"
    linked = render.source_line(citation, console_url="https://citewise.example/")
    assert "[Runbook](https://citewise.example/documents/doc%201/open)" in linked


def test_a_huge_answer_stays_within_teams_message_limits():
    citations = [_citation(n, "T" * 400, "https://wiki.example/" + "p" * 300) for n in range(1, 40)]
    card = render.answer_card(_answer("word " * 50_000, citations))
    assert len(json.dumps(card).encode()) <= render.MAX_CARD_BYTES
    sources = [b for b in card["body"] if b["text"].startswith("[")]
    assert len(sources) == render.MAX_SOURCES and any(b["text"] == "…and 29 more" for b in card["body"])


def test_refusals_list_nearest_documents_and_notes_say_whose_permissions():
    refused = render.answer_card(_answer("I couldn't find an answer.", nearest=[_citation(1, "Close", "https://wiki.example/a")]))
    assert "Nearest documents" in json.dumps(refused)
    def scope_note(answer, private_in_chat=False):
        return messages.scope_note(answer, private=private_in_chat, platform_name="Teams")

    assert "with your permissions" in scope_note(_answer("a"))
    assert "visible only to you" in scope_note(_answer("a"), private_in_chat=True)
    channel = _answer("a", scope=SCOPE_CHANNEL)
    channel.members_unlinked = 1
    assert "only public documents" in scope_note(channel)
    channel.members_lookup_failed = True
    assert "could not list this channel's members" in scope_note(channel)
    assert "link your Teams account" in scope_note(_answer("a", user=None))
    assert "could not tell me who you are" in scope_note(_answer("a", user=None, lookup_failed=True))


def test_feedback_actions_carry_the_answer_id_with_a_submit_fallback():
    answer = _answer("a [1]", [_citation(1, "T", "https://wiki.example/a")])
    card = render.answer_card(answer)
    up, down, flag = card["actions"]
    for action, kind in ((up, "up"), (down, "down")):
        assert action["type"] == "Action.Execute" and action["data"] == {"kind": kind,
                                                                         "answer_id": str(answer.result.answer_id)}
        assert action["fallback"]["type"] == "Action.Submit"
        assert action["fallback"]["data"]["citewise"] == render.FEEDBACK_VERB
    reason, comment = flag["card"]["body"]
    assert reason["isRequired"] and {c["value"] for c in reason["choices"]} == {"wrong", "missing_citation",
                                                                                 "harmful", "other"}
    assert comment["maxLength"] == render.MAX_COMMENT_CHARS
    assert card["version"] == "1.5"  # the Table element
