"""Reads of recorded answers: a conversation's latest turns, and an answer as seen by the person who asked it."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError

from answers.models import Answer, Conversation
from answers.types import Turn


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
