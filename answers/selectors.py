"""Reads of recorded answers: a conversation's latest turns, an answer as seen by the person who asked it, the
asker's conversation history (re-checked against what they may read now); where a citation's link goes; an
answer's citations as a reviewer may see them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, OuterRef, Subquery

from answers.citations import anchored_url
from answers.formatting import to_html
from answers.models import Answer, Conversation, Feedback
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


def _readable(document_ids: Iterable[str], principals: frozenset[str]) -> dict[str, bool | None]:
    """Whether `principals` may read each document now, as the search index says (the ACL filter every search
    applies), each asked once; None where the index could not be asked."""
    readable: dict[str, bool | None] = {}
    for document_id in dict.fromkeys(document_ids):
        try:
            readable[document_id] = retrieval_selectors.readable_document(document_id, principals) is not None
        except SearchUnavailable:
            readable[document_id] = None
    return readable


def citations_for_reviewer(citations: list[dict[str, Any]], principals: frozenset[str]) -> list[ReviewedCitation]:
    """An answer's recorded citations, each with its text only where `principals` may read the cited document now,
    as the search index says (the ACL filter every search applies), whatever the stored snippet says."""
    readable = _readable((str(c.get("document_id", "")) for c in citations), principals)
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


@dataclass(frozen=True)
class ConversationSummary:
    id: uuid.UUID
    title: str  # the asker's own name for it, else its first question
    renamed: bool
    surface: str
    turns: int
    last_asked_at: datetime


def conversations_of(user: Any, *, limit: int = 100) -> list[ConversationSummary]:
    """The user's own conversations that hold at least one question, the most recently continued first; deleted
    ones never."""
    if not getattr(user, "is_authenticated", False):
        return []
    first_question = Answer.objects.filter(conversation=OuterRef("pk")).order_by("created_at").values("question")[:1]
    rows = (Conversation.objects.filter(user=user, deleted_at__isnull=True)
            .annotate(turns=Count("answers"), last_asked_at=Max("answers__created_at"),
                      first_question=Subquery(first_question))
            .filter(turns__gt=0).order_by("-last_asked_at")[:limit])
    return [ConversationSummary(row.id, row.title or " ".join(row.first_question.split())[:120], bool(row.title),
                                row.surface, row.turns, row.last_asked_at) for row in rows]


def _source_anchor(answer_id: uuid.UUID) -> Callable[[int], str]:
    """Where an answer's [n] marker links: its numbered source in the list under it (the chat's ids)."""
    return lambda number: f"#src-{answer_id}-{number}"


# Shown in place of an answer whose sources the asker may no longer read: its text quoted them.
WITHHELD = "This answer quoted documents you can no longer read, so it is not shown again."


def conversation_transcript(conversation_id: uuid.UUID | str, user: Any,
                            principals: frozenset[str]) -> list[dict[str, Any]] | None:
    """The user's own conversation, turn by turn, to reopen it: None when it is not theirs or was deleted.

    Every answer is shown only if the asker may still read every document it cited, checked now against the
    index (the same ACL filter as search): one whose permission was revoked, or whose document is gone, is
    withheld with its sources, since its text quotes them.
    """
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        conversation = Conversation.objects.get(id=conversation_id, user=user, deleted_at__isnull=True)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError):
        return None
    answers = list(conversation.answers.order_by("created_at"))
    votes = dict(Feedback.objects.filter(answer__in=answers, user=user, kind__in=("up", "down"))
                 .order_by("created_at").values_list("answer_id", "kind"))
    flagged = set(Feedback.objects.filter(answer__in=answers, user=user, kind="flag").values_list("answer_id", flat=True))
    # Unknown (the index could not be asked) is unreadable: the answer is withheld, never shown unchecked.
    readable = _readable((str(c.get("document_id", "")) for a in answers for c in a.citations), principals)
    turns = []
    for answer in answers:
        withheld = not all(readable[str(c.get("document_id", ""))] for c in answer.citations)
        citations = [] if withheld else answer.citations
        text = WITHHELD if withheld else answer.text
        html = "" if withheld else to_html(answer.text, _source_anchor(answer.id),
                                           (c.get("url", "") for c in citations))
        turns.append({"answer_id": str(answer.id), "question": answer.question, "answer": text, "answer_html": html,
                      "refused": answer.refused, "withheld": withheld, "citations": citations,
                      "vote": votes.get(answer.id, ""), "flagged": answer.id in flagged,
                      "asked_at": answer.created_at.isoformat()})
    return turns
