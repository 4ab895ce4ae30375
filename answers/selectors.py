"""Reads of recorded answers: a conversation's latest turns, and an answer as seen by the person who asked it; where
a citation's link goes; an answer's citations as a reviewer may see them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from answers.citations import anchored_url
from answers.models import Answer, Conversation
from answers.types import Turn
from connectors import selectors as source_selectors
from retrieval import selectors as retrieval_selectors
from search.types import IndexedDocument, SearchUnavailable


def recent_turns(conversation: Conversation, limit: int) -> list[Turn]:
    """The conversation's last `limit` questions and answers, oldest first, each with the query it was searched as
    and the titles and sections its answer cited."""
    earlier = conversation.answers.order_by("-created_at")[:limit]
    return [Turn(a.question, a.text, a.search_query, _cited_sources(a.citations)) for a in reversed(list(earlier))]


def _cited_sources(citations: list[dict[str, Any]]) -> tuple[str, ...]:
    named = (part for c in citations for part in (c.get("title", ""), c.get("section", "")) if part)
    return tuple(dict.fromkeys(named))


def answer_asked_by(answer_id: uuid.UUID | str, user: Any) -> Answer | None:
    """The answer if `user` asked it; None for any other id, malformed or not (indistinguishable on purpose)."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return Answer.objects.get(id=answer_id, user=user)
    except (Answer.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


def url_at_section(document: IndexedDocument, section_ordinal: int | None, principals: frozenset[str]) -> str:
    """The document's own URL at one of its sections, as a citation of that section links to it: the source's own
    section link (connectors.selectors.section_link), else a Markdown-style anchor for Markdown and HTML; the
    URL as it is without a section, or when the principals may not read that section."""
    if section_ordinal is None:
        return document.url
    shown = retrieval_selectors.readable_document_text(document.document_id, principals)
    heading_path = next((section.heading_path for section in shown.sections if section.ordinal == section_ordinal),
                        ()) if shown is not None else ()
    url = source_selectors.section_link(document.source_id, document.url, heading_path)
    return anchored_url(url, document.mime_type, heading_path)


@dataclass(frozen=True)
class ReviewedCitation:
    """A recorded citation as a reviewer may see it: `readable` False means the reviewer's own principals may not read
    the document now, and then nothing of it (title, URL, snippet) is to be shown."""

    number: Any
    document_id: str
    readable: bool
    title: str = ""
    url: str = ""
    section: str = ""
    snippet: str = ""
    unchecked: bool = False  # the search index could not be asked: shown as unreadable


def citations_for_reviewer(citations: list[dict[str, Any]], principals: frozenset[str]) -> list[ReviewedCitation]:
    """An answer's recorded citations, each with its text only where `principals` may read the cited document now,
    as the search index says (the ACL filter every search applies), whatever the stored snippet says."""
    readable: dict[str, bool | None] = {}
    for document_id in dict.fromkeys(str(c.get("document_id", "")) for c in citations):
        try:
            readable[document_id] = retrieval_selectors.readable_document(document_id, principals) is not None
        except SearchUnavailable:
            readable[document_id] = None
    shown = []
    for citation in citations:
        document_id = str(citation.get("document_id", ""))
        if readable[document_id]:
            shown.append(ReviewedCitation(citation.get("number", ""), document_id, True, str(citation.get("title", "")),
                                          str(citation.get("url", "")), str(citation.get("section", "")),
                                          str(citation.get("snippet", ""))))
        else:
            shown.append(ReviewedCitation(citation.get("number", ""), document_id, False,
                                          unchecked=readable[document_id] is None))
    return shown
