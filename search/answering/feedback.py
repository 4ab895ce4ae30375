"""Feedback on an answer: thumbs up or down, or a flag for review with a reason."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError

from search.models import Answer, Feedback


class FeedbackError(ValueError):
    """The feedback cannot be recorded as given (e.g. a flag without a reason)."""


class AnswerNotFound(LookupError):
    """No such answer, or not one the user asked: the two are indistinguishable on purpose."""


def record_feedback(answer_id: uuid.UUID | str, user: Any, kind: str, reason: str = "", comment: str = "") -> Feedback:
    """Record `user`'s feedback on an answer they were given. Only the asker may give feedback on an answer."""
    if kind not in Feedback.Kind.values:
        raise FeedbackError(f"kind must be one of {', '.join(Feedback.Kind.values)}")
    reason, comment = (reason or "").strip(), (comment or "").strip()
    if reason and reason not in Feedback.Reason.values:
        raise FeedbackError(f"reason must be one of {', '.join(Feedback.Reason.values)}")
    if kind == Feedback.Kind.FLAG and not reason:
        raise FeedbackError("a flag needs a reason")
    if len(comment) > 4000:
        raise FeedbackError("the comment is longer than 4000 characters")
    if not getattr(user, "is_authenticated", False):
        raise AnswerNotFound("unknown answer")
    try:
        answer = Answer.objects.get(id=answer_id, user=user)
    except (Answer.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise AnswerNotFound("unknown answer") from exc
    return Feedback.objects.create(answer=answer, user=user, kind=kind, reason=reason, comment=comment)
