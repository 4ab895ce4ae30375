"""Platform-neutral wording and links for bot answers; the platform renderers escape and lay them out."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.services import SCOPE_CHANNEL, BotAnswer


def source_url(citation: Any, console_url: str = "") -> str:
    """Where a source link should point: through the console when its URL is set (at the cited section: a web page
    at its source, anything else in the console's document viewer), else the document's own web URL; "" when there
    is nothing a chat client may open (file://, a bare path)."""
    url = citation.url
    if console_url:
        url = f"{console_url.rstrip('/')}/documents/{quote(citation.document_id, safe='')}/open"
        section = getattr(citation, "section_ordinal", None)
        if isinstance(section, int):
            url += f"?section={section}"
    return url if url.startswith(("https://", "http://")) else ""


def citation_date(citation: Any) -> str:
    """The date shown beside a source: the date the document states it takes effect, else when the source last
    changed it ("effective 2026-01-01", "modified 2026-03-02"), or ""."""
    effective = getattr(citation, "effective_date", None)
    if effective:
        return f"effective {effective:%Y-%m-%d}"
    modified = getattr(citation, "modified_at", None)
    return f"modified {modified:%Y-%m-%d}" if modified else ""


def scope_note(answer: BotAnswer, *, private: bool, platform_name: str) -> str:
    """Whose permissions built the answer and who sees it, so nobody mistakes a personal answer for a shared one."""
    if answer.scope == SCOPE_CHANNEL:
        note = "Answered from documents everyone in this channel can read."
        if answer.members_lookup_failed:
            note += (f" {platform_name} could not list this channel's members just now, so only public documents"
                     " were used.")
        elif answer.members_unlinked:
            note += " Some members aren't linked to Citewise, so only public documents were used."
    elif private:
        note = "Answered with your permissions, visible only to you."
    else:
        note = "Answered with your permissions."
    if not answer.asker.linked:
        if answer.asker.lookup_failed:
            note += (f" {platform_name} could not tell me who you are just now, so I searched public documents"
                     " only; try again in a few minutes.")
        elif answer.asker.outside:
            note += (f" You're a guest or from another organisation in {platform_name}, so I searched public"
                     " documents only; an admin can link your account to Citewise if you should see more.")
        else:
            note += (" I don't know your Citewise account yet, so I searched public documents only: ask an admin"
                     f" to link your {platform_name} account, or use the same email address in {platform_name}"
                     " and Citewise.")
    if answer.result.corrected_query:  # a misspelt question was searched corrected: say what was searched for
        note = f"Searched for “{answer.result.corrected_query}”. {note}"
    return note
