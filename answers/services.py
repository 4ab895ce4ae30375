"""Actions on answers: ask a question (retrieve what the asker may read, rerank, compose, verify citations, record
it all), give feedback on an answer, and review it (the review queue's assignee and resolution, a corrected answer
kept as an evaluation case)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from answers import budget, cache, throttling
from answers import selectors as answer_selectors
from answers.citations import Citation
from answers.formatting import to_html
from answers.models import Answer, Conversation, EvaluationCase, Feedback
from answers.pipeline import DEFAULT_STEPS, Outcome, Run, Steps
from audit import services as audit
from connectors.models import Document
from core import logcontext
from core.config import CitewiseSettings, current
from core.errors import CitewiseError, InvalidInput, NotFound

logger = logging.getLogger("citewise.answering")
MAX_QUESTION_CHARS = 2000
HISTORY_TURNS = 3


RateLimited = throttling.RateLimited  # what ask() raises past a limit, beside InvalidQuestion


class InvalidQuestion(InvalidInput):
    """The question cannot be asked as given (empty, too long, unknown conversation)."""

    code = "invalid_question"


@dataclass
class AnswerResult:
    answer_id: uuid.UUID
    conversation_id: uuid.UUID
    question: str
    search_query: str
    text: str
    refused: bool
    citations: list[Citation]
    nearest: list[Citation] = field(default_factory=list)
    composer: str = ""
    fallback_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    corrected_query: str = ""  # the search query with misspellings corrected, when it was; "" otherwise
    notice: str = ""  # for the asker, about how the answer was made (a spent LLM budget); "" otherwise

    def html(self) -> str:
        """The answer as safe HTML; its [n] markers link to `#src-<answer_id>-<n>`, the ids of the sources list."""
        return to_html(self.text, lambda number: f"#src-{self.answer_id}-{number}", (c.url for c in self.citations))

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer_id": str(self.answer_id), "conversation_id": str(self.conversation_id),
            "question": self.question, "search_query": self.search_query, "corrected_query": self.corrected_query,
            "answer": self.text, "answer_html": self.html(),
            "refused": self.refused, "citations": [c.as_dict() for c in self.citations],
            "nearest_documents": [c.as_dict() for c in self.nearest], "composer": self.composer,
            "fallback_reason": self.fallback_reason, "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd,
            "notice": self.notice,
        }


def _conversation(conversation_id: uuid.UUID | str | None, user: Any, surface: str) -> Conversation:
    owner = user if getattr(user, "is_authenticated", False) else None
    if conversation_id is None:
        return Conversation.objects.create(user=owner, surface=surface)
    try:
        # A conversation is only ever continued by the person who started it, and not once they deleted it.
        return Conversation.objects.get(id=conversation_id, user=owner, deleted_at__isnull=True)
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise InvalidQuestion("unknown conversation") from exc


def _cost(input_tokens: int, output_tokens: int, config: CitewiseSettings) -> Decimal:
    usd = (input_tokens / 1000 * config.llm_usd_per_1k_input_tokens
           + output_tokens / 1000 * config.llm_usd_per_1k_output_tokens)
    return Decimal(str(round(usd, 6)))


def _persist(record: Answer, outcome: Outcome | None, cache_status: str) -> None:
    """Save the answer and its audit event together: both or neither.

    The audit event says who asked what from which surface, which documents were retrieved and which were shown.
    """
    retrieved = list(dict.fromkeys(r["document_id"] for r in record.retrieved))
    cited = list(dict.fromkeys(c["document_id"] for c in record.citations))
    nearest = outcome.nearest if outcome is not None else []
    shown = list(dict.fromkeys([*cited, *(c.document_id for c in nearest)]))
    with transaction.atomic():
        record.save()
        audit.record(record.user, "ask", object_type="answers.answer", object_id=record.id, surface=record.surface,
                     detail={"question": record.question, "conversation_id": str(record.conversation_id),
                             "status": record.status, "refused": record.refused, "cache": cache_status,
                             "retrieved": retrieved, "cited": cited, "shown": shown, "error": record.error})


def _record(record: Answer, outcome: Outcome, config: CitewiseSettings) -> None:
    record.search_query, record.text, record.refused = outcome.search_query, outcome.text, outcome.refused
    record.status, record.composer, record.prompt_version = outcome.status, outcome.composer, outcome.prompt_version
    record.fallback_reason, record.retrieved = outcome.fallback_reason, outcome.retrieved
    record.citations = [citation.as_dict() for citation in outcome.citations]
    record.input_tokens, record.output_tokens = outcome.input_tokens, outcome.output_tokens
    record.cost_usd = _cost(outcome.input_tokens, outcome.output_tokens, config)


def _milliseconds(timings: dict[str, float]) -> dict[str, Any]:
    return {stage: round(seconds * 1000, 1) for stage, seconds in timings.items()}


def ask(
    question: str,
    *,
    principals: frozenset[str],
    user: Any = None,
    conversation_id: uuid.UUID | str | None = None,
    surface: str = "api",
    requester: str = "",
    channel: str = "",
    steps: Steps = DEFAULT_STEPS,
) -> AnswerResult:
    """Answer from passages the principals may read, with verified [n] citations, or refuse.

    The question is recorded and audited whatever happens (answered, refused, search or LLM down, an unexpected
    error, an answer from the cache), in one transaction with its audit event; only a question refused before any
    work (invalid, or over a rate limit) is not. `requester` names an asker who has no `user` (an unlinked chat user)
    and `channel` the chat channel asked in, for the rate limits (answers/throttling.py). `steps` replaces pipeline
    steps (answers/pipeline.py).
    """
    question = (question or "").strip()
    if not question:
        raise InvalidQuestion("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    if not isinstance(principals, frozenset):
        raise TypeError("principals must be a frozenset of the asker's principals")
    # Every surface asks through here, so one check limits them all; it comes before any database or search work.
    throttling.check_ask(user=user, requester=requester, channel=channel)
    config = current()
    started = time.perf_counter()
    conversation = _conversation(conversation_id, user, surface)
    run = Run(question, answer_selectors.recent_turns(conversation, HISTORY_TURNS), principals, config, steps)
    record = Answer(conversation=conversation, user=conversation.user, surface=surface, question=question)
    logcontext.bind(answer_id=record.id, conversation_id=conversation.id)
    cache_status = "off"
    try:
        record.search_query = run.rewrite()
        outcome, cache_status = cache.cached_answer(run, record.search_query)
    except Exception as exc:
        record.status, record.refused = "failed", False
        record.error = f"{type(exc).__name__}: {exc}"[:2000]
        record.timings = _milliseconds(run.timings)
        if not isinstance(exc, CitewiseError):
            logger.exception("ask failed unexpectedly (answer %s)", record.id)
        try:
            _persist(record, None, cache_status)
        except Exception:  # the original error is the one to report; this one is logged
            logger.exception("could not record the failed answer %s", record.id)
        raise
    run.timings["total"] = time.perf_counter() - started
    _record(record, outcome, config)
    record.timings = _milliseconds(run.timings)
    if cache_status != "off":
        record.timings["cache"] = cache_status
    _persist(record, outcome, cache_status)
    # One line per answer (the ids come from core.logcontext): what was made of the question, never its text.
    logger.info("answer %s %s", record.id, "refused" if record.refused else record.status,
                extra={"surface": surface, "composer": record.composer, "refused": record.refused,
                       "citations": len(outcome.citations), "cache": cache_status,
                       "total_ms": record.timings.get("total"), "fallback": bool(record.fallback_reason)})
    return AnswerResult(
        answer_id=record.id, conversation_id=conversation.id, question=question, search_query=record.search_query,
        text=record.text, refused=record.refused, citations=outcome.citations, nearest=outcome.nearest,
        composer=record.composer, fallback_reason=record.fallback_reason, timings=run.timings,
        input_tokens=record.input_tokens, output_tokens=record.output_tokens, cost_usd=float(record.cost_usd),
        corrected_query=outcome.corrected_query, notice=budget.notice(record.fallback_reason),
    )


# -- feedback -----------------------------------------------------------------------------------------


class FeedbackError(InvalidInput):
    """The feedback cannot be recorded as given (e.g. a flag without a reason)."""

    code = "invalid_feedback"


class AnswerNotFound(NotFound):
    """No such answer, or not one the user asked: the two are indistinguishable on purpose."""

    code = "answer_not_found"
    user_message = "unknown answer"


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
    answer = answer_selectors.answer_asked_by(answer_id, user)
    if answer is None:
        raise AnswerNotFound("unknown answer")
    if kind in VOTES:
        # One vote per person and answer, which they may change: the latest replaces the earlier one, so the
        # 👍/👎 figures count people, not clicks. Flags are separate reports and always add up.
        with transaction.atomic():
            vote = (Feedback.objects.select_for_update().filter(answer=answer, user=user, kind__in=VOTES)
                    .order_by("-created_at").first())
            if vote is not None:
                Feedback.objects.filter(answer=answer, user=user, kind__in=VOTES).exclude(pk=vote.pk).delete()
                vote.kind, vote.reason, vote.comment = kind, reason, comment
                vote.save(update_fields=["kind", "reason", "comment"])
                return vote
    return Feedback.objects.create(answer=answer, user=user, kind=kind, reason=reason, comment=comment)


VOTES = (Feedback.Kind.UP, Feedback.Kind.DOWN)
MAX_TITLE_CHARS = 200


class ConversationNotFound(NotFound):
    """No such conversation among the user's own (deleted ones included): indistinguishable on purpose."""

    code = "conversation_not_found"
    user_message = "unknown conversation"


def _own_conversation(conversation_id: uuid.UUID | str, user: Any) -> Conversation:
    if not getattr(user, "is_authenticated", False):
        raise ConversationNotFound("unknown conversation")
    try:
        return Conversation.objects.get(id=conversation_id, user=user, deleted_at__isnull=True)
    except (Conversation.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise ConversationNotFound("unknown conversation") from exc


def rename_conversation(conversation_id: uuid.UUID | str, user: Any, title: str) -> Conversation:
    """Give one of the user's conversations a name of their own in their history."""
    title = " ".join((title or "").split())
    if not title:
        raise InvalidInput("a conversation's name cannot be empty")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"a conversation's name is at most {MAX_TITLE_CHARS} characters")
    conversation = _own_conversation(conversation_id, user)
    conversation.title = title
    conversation.save(update_fields=["title"])
    return conversation


def delete_conversation(conversation_id: uuid.UUID | str, user: Any) -> None:
    """Take one of the user's conversations out of their history for good: it is never listed, shown or continued
    again. Its answers stay on record (audit trail, review queue, analytics), as every question asked does."""
    conversation = _own_conversation(conversation_id, user)
    conversation.deleted_at = timezone.now()
    conversation.save(update_fields=["deleted_at"])
    audit.record(user, "conversation.delete", object_type="answers.conversation", object_id=str(conversation.id),
                 surface=conversation.surface)


# -- the review queue ------------------------------------------------------------------------------------


class ReviewError(InvalidInput):
    """The review cannot be changed as asked (an assignee who is not staff, an unknown resolution)."""

    code = "invalid_review"


def assign_review(feedback: Feedback, assignee: Any, *, by: Any) -> Feedback:
    """Put a staff user (or nobody: None) on a queue item; audited as "review.assign"."""
    if assignee is not None and not (assignee.is_active and assignee.is_staff):
        raise ReviewError("only active staff users review answers")
    with transaction.atomic():
        feedback.assignee = assignee
        feedback.save(update_fields=["assignee"])
        audit.record(by, "review.assign", object_type="answers.feedback", object_id=feedback.pk, surface="admin",
                     detail={"assignee": getattr(assignee, "username", None)})
    return feedback


def set_review_status(feedback: Feedback, status: str, *, by: Any, note: str = "") -> Feedback:
    """Resolve, dismiss or reopen a queue item with a note; who and when are kept for a closed one. Audited as
    "review.resolved", "review.dismissed" or "review.open"."""
    if status not in Feedback.ReviewStatus.values:
        raise ReviewError(f"status must be one of {', '.join(Feedback.ReviewStatus.values)}")
    note = (note or "").strip()
    if len(note) > 4000:
        raise ReviewError("the resolution note is longer than 4000 characters")
    closed = status != Feedback.ReviewStatus.OPEN
    with transaction.atomic():
        feedback.review_status, feedback.resolution_note = status, note
        feedback.resolved_by = by if closed and getattr(by, "is_authenticated", False) else None
        feedback.resolved_at = timezone.now() if closed else None
        feedback.save(update_fields=["review_status", "resolution_note", "resolved_by", "resolved_at"])
        audit.record(by, f"review.{status}", object_type="answers.feedback", object_id=feedback.pk, surface="admin",
                     detail={"note": note})
    return feedback


def save_evaluation_case(feedback: Feedback, *, by: Any, correct_answer: str, must_contain: list[str],
                         document_ids: list[str], asker_email: str = "") -> EvaluationCase:
    """Keep a reviewer's corrected answer as a question the answer-level evaluation asks: the question as asked, by
    its asker (or `asker_email`), with the facts the answer must state and the documents it must cite. Audited as
    "review.evaluation_case"."""
    correct_answer = (correct_answer or "").strip()
    facts = [fact.strip() for fact in must_contain if fact and fact.strip()]
    document_ids = list(dict.fromkeys(d.strip() for d in document_ids if d and d.strip()))
    asker_email = (asker_email or getattr(feedback.answer.user, "email", "") or "").strip()
    if not correct_answer:
        raise ReviewError("write the correct answer")
    if not document_ids:
        raise ReviewError("choose the document(s) the answer must cite")
    if not asker_email or "@" not in asker_email:
        raise ReviewError("the case needs the asker's email (the person of the evaluation set who asks it)")
    documents = dict(Document.objects.filter(id__in=document_ids).values_list("id", "external_id"))
    missing = [d for d in document_ids if d not in documents]
    if missing:
        raise ReviewError(f"no such document(s): {', '.join(missing)}")
    from answers.evaluation import doc_id  # the evaluation imports ask() from here

    with transaction.atomic():
        case = EvaluationCase.objects.create(
            question=feedback.answer.question, asker_email=asker_email, correct_answer=correct_answer,
            must_contain=facts, document_ids=document_ids,
            expected_doc_ids=[doc_id(documents[d]) for d in document_ids],
            source_feedback=feedback, created_by=by if getattr(by, "is_authenticated", False) else None)
        audit.record(by, "review.evaluation_case", object_type="answers.evaluationcase", object_id=case.pk,
                     surface="admin", detail={"feedback_id": feedback.pk, "documents": document_ids,
                                              "must_contain": facts})
    return case
