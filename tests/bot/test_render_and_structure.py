"""Rendering limits and escaping, the manifest, Socket Mode wiring, and the core/platform boundary."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import yaml

from bot import messages
from bot.services import SCOPE_CHANNEL, SCOPE_PERSONAL, Asker, BotAnswer
from bot.slack import render

BOT = Path(__file__).resolve().parents[2] / "bot"


SOME_USER = object()  # a linked asker: only its presence matters to the renderers


def _answer(text: str, citations=(), scope=SCOPE_PERSONAL, user=SOME_USER, corrected_query=""):
    result = SimpleNamespace(text=text, citations=list(citations), nearest=[], answer_id=uuid.uuid4(), refused=False,
                             corrected_query=corrected_query)
    return BotAnswer(result=result, asker=Asker("slack", "T1", "U1", user), scope=scope)


def _citation(n: int, title: str, url: str):
    return SimpleNamespace(number=n, title=title, url=url, document_id=f"d{n}", source_type="Markdown",
                           modified_at=datetime(2025, 3, 1, tzinfo=UTC))


def test_user_and_document_text_cannot_ping_or_spoof_links():
    answer = _answer("<!channel> see <https://evil.example|the handbook> & <@U999>",
                     [_citation(1, "Pay <!here> |x", "https://wiki.example/a?b=1&c=2")])
    text, blocks = render.answer_blocks(answer, ephemeral=True)
    rendered = text + "".join(str(b) for b in blocks)
    assert "<!channel>" not in rendered and "<!here>" not in rendered and "<https://evil" not in rendered
    assert "<@U999>" not in rendered and "&lt;!channel&gt;" in rendered
    sources = blocks[1]["text"]["text"]
    assert "<https://wiki.example/a?b=1&amp;c=2|Pay &lt;!here&gt; ¦x>" in sources
    assert "Markdown" in sources and "modified 2025-03-01" in sources


def test_non_web_urls_are_not_linked_but_console_links_are():
    citation = _citation(1, "Runbook", "file:///srv/corpus/runbooks/on-call.md")
    assert render.source_lines([citation]) == "[1] *Runbook* · Markdown · modified 2025-03-01"
    linked = render.source_lines([citation], console_url="https://citewise.example.com/")
    assert "<https://citewise.example.com/documents/d1/open|Runbook>" in linked
    # A citation that names its section opens the document there (the console's viewer, or the source's anchor).
    citation.section_ordinal = 3
    linked = render.source_lines([citation], console_url="https://citewise.example.com/")
    assert "<https://citewise.example.com/documents/d1/open?section=3|Runbook>" in linked


def test_long_answers_stay_within_block_kit_limits():
    long_text = ("word & more " * 4000) + "<tail>"
    citations = [_citation(n, "T" * 400, "https://x.example/" + "p" * 300) for n in range(1, 40)]
    text, blocks = render.answer_blocks(_answer(long_text, citations), ephemeral=False)
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
            assert not block["text"]["text"].rstrip("…").endswith(("&", "&a", "&am", "&amp"))
    assert len(text) <= 3500
    assert blocks[0]["text"]["text"].startswith("word &amp; more")


def test_scope_notes():
    def scope_note(answer, *, ephemeral):
        return messages.scope_note(answer, private=ephemeral, platform_name="Slack")

    assert "visible only to you" in scope_note(_answer("a"), ephemeral=True)
    assert scope_note(_answer("a"), ephemeral=False) == "Answered with your permissions."
    channel = _answer("a", scope=SCOPE_CHANNEL)
    channel.members_unlinked = 2
    assert "everyone in this channel can read" in scope_note(channel, ephemeral=False)
    assert "only public documents" in scope_note(channel, ephemeral=False)
    assert "link" in scope_note(_answer("a", user=None), ephemeral=True)
    # A question searched with its spelling corrected says what was searched for, first.
    assert scope_note(_answer("a", corrected_query="how do i submit an expense report"), ephemeral=False) == \
        "Searched for “how do i submit an expense report”. Answered with your permissions."


def test_flag_modal_offers_every_reason():
    view = render.flag_modal("abc", "C1")
    values = {o["value"] for o in view["blocks"][0]["element"]["options"]}
    assert values == {"wrong", "missing_citation", "harmful", "other"}
    assert view["callback_id"] == "citewise_flag"


def test_manifest_declares_scopes_events_and_interactivity():
    manifest = yaml.safe_load((BOT / "slack" / "manifest.yml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {
        "app_mentions:read", "chat:write", "im:history", "im:read", "users:read", "users:read.email",
        "channels:read", "groups:read", "reactions:write"}
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im"}
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_socket_mode_command_imports_and_needs_an_app_token(settings):
    import pytest
    from django.core.management import CommandError, call_command

    settings.SLACK_APP_TOKEN = ""
    with pytest.raises(CommandError, match="SLACK_APP_TOKEN"):
        call_command("slack_socket_mode")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_the_teams_module_only_talks_to_the_core():
    for path in (BOT / "teams").rglob("*.py"):
        assert ".objects." not in path.read_text(), path
        for name in _imports(path):
            assert not name.startswith(("search", "connectors")), (path, name)


def test_botbuilder_is_imported_only_inside_bot_teams():
    # Microsoft archived botbuilder-python: a move to the Agents SDK must touch bot/teams/ only.
    root = BOT.parent
    for package in ("bot", "console", "search", "connectors", "benchmarks"):
        for path in (root / package).rglob("*.py"):
            if (BOT / "teams") in path.parents:
                continue
            for name in _imports(path):
                assert not name.startswith(("botbuilder", "botframework")), (path, name)


def test_the_slack_module_only_talks_to_the_core():
    for path in (BOT / "slack").rglob("*.py"):
        source = path.read_text()
        assert ".objects." not in source, path
        for node in ast.walk(ast.parse(source)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("search", "connectors")), (path, name)


def _bot_imports(module: str) -> set[str]:
    """The bot.* modules `module` imports anywhere in it (a deferred import inside a function included)."""
    path = BOT.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = path.with_suffix("") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bot":
            # "from bot.slack import render" names a module; "from bot.services import X" a module's member.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                as_module = BOT.parent / (candidate.replace(".", "/") + ".py")
                found.add(candidate if as_module.exists() else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "bot")
    return found - {"bot"}


def _reaches(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for name in _bot_imports(todo.pop()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def test_imports_run_one_way_from_listener_to_task_to_platform_to_workflow():
    """Issue 11 item 3: listener → task → platform adapter → workflow core, with no way back."""
    request_path = {"bot.slack.listeners", "bot.slack.app", "bot.slack.views", "bot.teams.listeners",
                    "bot.teams.views"}
    platforms = {"bot.slack.platform", "bot.teams.platform"}
    # bot.urls routes requests to the platforms' views and bot.tasks hands work to their adapters: the rest is core.
    core = {f"bot.{path.stem}" for path in BOT.glob("*.py")} - {"bot.__init__", "bot.urls", "bot.tasks"}
    for module in core:
        assert not {name for name in _reaches(module) if name.startswith(("bot.slack", "bot.teams", "bot.tasks"))}, \
            module
    assert _bot_imports("bot.tasks") & (platforms | request_path) == platforms
    for module in platforms:
        reached = _reaches(module)
        assert "bot.workflow" in reached and not reached & (request_path | {"bot.tasks"}), (module, reached)
    for module in ("bot.slack.listeners", "bot.teams.listeners"):
        assert "bot.tasks" in _bot_imports(module) and not _bot_imports(module) & (platforms | {"bot.workflow"})
