"""Actions on answers: ask a question (retrieve what the asker may read, rerank, compose, verify citations, record
it all), and give feedback on an answer."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from answers import cache
from answers import selectors as answer_selectors
from answers import throttling
from answers.answerability import judge
from answers.citations import Citation, VerifiedAnswer, verify
from answers.composers import PROMPT_VERSION, get_composer
from answers.extractive import ExtractiveComposer
from answers.models import Answer, Conversation, Feedback
from answers.rerankers import get_reranker
from answers.rewrite import rewrite_query
from answers.types import ComposerError, Passage, Turn
from audit import services as audit
from retrieval import selectors
from retrieval.metrics import timed
from retrieval.reranking import RerankerError
from search.types import IndexModelMismatch, SearchMode, SearchUnavailable
from core.config import current

logger = logging.getLogger("citewise.answering")
MAX_QUESTION_CHARS = 2000
HISTORY_TURNS = 3


RateLimited = throttling.RateLimited  # what ask() raises past a limit, beside InvalidQuestion


class InvalidQuestion(ValueError):
    """The question cannot be asked as given (empty, too long, unknown conversation)."""


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer_id": str(self.answer_id), "conversation_id": str(self.conversation_id),
            "question": self.question, "search_query": self.search_query, "answer": self.text,
            "refused": self.refused, "citations": [c.as_dict() for c in self.citations],
            "nearest_documents": [c.as_dict() for c in self.nearest], "composer": self.composer,
            "fallback_reason": self.fallback_reason, "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd,
        }


def _conversation(conversation_id: uuid.UUID | str | None, user: Any, surface: str) -> Conversation:
    owner = user if getattr(user, "is_authenticated", False) else None
    if conversation_id is None:
        return Conversation.objects.create(user=owner, surface=surface)
    try:
        # A conversation is only ever continued by the person who started it.
        return Conversation.objects.get(id=conversation_id, user=owner)
    except (Conversation.DoesNotExist, ValueError, TypeError, ValidationError) as exc:
        raise InvalidQuestion("unknown conversation") from exc


def _cost(input_tokens: int, output_tokens: int) -> float:
    config = current()
    return round(input_tokens / 1000 * config.llm_usd_per_1k_input_tokens
                 + output_tokens / 1000 * config.llm_usd_per_1k_output_tokens, 6)


def _audit_ask(record: Answer, nearest: list[Citation], cache_status: str) -> None:
    """Who asked what from which surface, which documents were retrieved and which were shown to them."""
    retrieved = list(dict.fromkeys(r["document_id"] for r in record.retrieved))
    cited = list(dict.fromkeys(c["document_id"] for c in record.citations))
    shown = list(dict.fromkeys([*cited, *(c.document_id for c in nearest)]))
    audit.record(record.user, "ask", object_type="answers.answer", object_id=record.id, surface=record.surface,
                 detail={"question": record.question, "conversation_id": str(record.conversation_id),
                         "status": record.status, "refused": record.refused, "cache": cache_status,
                         "retrieved": retrieved, "cited": cited, "shown": shown, "error": record.error})


def ask(
    question: str,
    *,
    principals: frozenset[str],
    user: Any = None,
    conversation_id: uuid.UUID | str | None = None,
    surface: str = "api",
    requester: str = "",
    channel: str = "",
) -> AnswerResult:
    """Answer from passages the principals may read, with verified [n] citations, or refuse.

    The question is recorded and audited whatever happens, including when search or the LLM fails and
    when the answer comes from the cache; only a question refused by a rate limit (RateLimited, raised before
    any work) is not. `requester` names an asker who has no `user` (an unlinked chat user) and `channel` the
    chat channel asked in, for those limits (answers/throttling.py).
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
    history = answer_selectors.recent_turns(conversation, HISTORY_TURNS)
    record = Answer(conversation=conversation, user=conversation.user, surface=surface, question=question)
    timings: dict[str, float] = {}
    ttl = int(config.answer_cache_ttl_s or 0)
    cache_key, cache_status = "", "off"
    nearest: list[Citation] = []
    try:
        with timed("rewrite", timings):
            search_query = rewrite_query(question, history)
        record.search_query = search_query
        cached = None
        if ttl > 0:
            with timed("cache_lookup", timings):
                cache_key, cached, cache_status = cache.lookup(question, search_query, principals)
        if cached:
            record.text, record.refused, record.status = cached["text"], cached["refused"], cached["status"]
            record.composer, record.prompt_version = cached["composer"], cached["prompt_version"]
            record.retrieved, record.citations = cached["retrieved"], cached["citations"]
            citations, nearest = list(cached["citation_objects"]), list(cached["nearest"])
        else:
            hits = selectors.search(search_query, principals=principals, mode=SearchMode.HYBRID,
                                    limit=config.rerank_candidates, timings=timings)
            reranker = get_reranker()
            with timed("rerank", timings):
                try:
                    ranked = reranker.rerank(search_query, hits, top_n=config.answer_passages)
                except RerankerError as exc:
                    logger.warning("reranker %s failed, keeping fused order: %s", reranker.name, exc)
                    record.fallback_reason = f"reranker {reranker.name} failed: {exc}"
                    ranked = [(hit, hit.score) for hit in hits[:config.answer_passages]]
            passages = [Passage(i, hit, hit.text) for i, (hit, _) in enumerate(ranked, start=1)]
            record.retrieved = [{"number": p.number, "chunk_id": p.hit.chunk_id, "document_id": p.hit.document_id,
                                 "score": round(float(score), 6)} for p, (_, score) in zip(passages, ranked)]
            with timed("answerability", timings):
                decision = judge(search_query, passages)
            verified: VerifiedAnswer | None = None
            if decision.answerable:
                with timed("compose", timings):
                    composer_name = current().composer
                    try:
                        composition = get_composer(composer_name).compose(question, passages, history=history)
                    except (ComposerError, ImportError) as exc:
                        logger.warning("composer %s failed, falling back to extractive: %s", composer_name, exc)
                        record.fallback_reason = f"composer {composer_name} failed: {exc}"
                        composition = ExtractiveComposer().compose(question, passages, history=history)
                record.composer = composition.composer
                record.prompt_version = PROMPT_VERSION if composition.composer != "extractive" else ""
                record.input_tokens, record.output_tokens = composition.input_tokens, composition.output_tokens
                with timed("verify", timings):
                    verified = verify(composition, passages)
            if verified is None or not verified.citations:
                record.refused, record.status = True, "refused"
                record.text = refusal_text(question)
                nearest = nearest_documents(passages)
                citations = []
            else:
                record.text = verified.text
                citations, nearest = verified.citations, []
            record.citations = [c.as_dict() for c in citations]
            # A degraded answer (a reranker or composer failed and a fallback answered) is not kept.
            if cache_key and not record.fallback_reason:
                cache.store(cache_key, {
                    "text": record.text, "refused": record.refused, "status": record.status,
                    "composer": record.composer, "prompt_version": record.prompt_version,
                    "retrieved": record.retrieved, "citations": record.citations,
                    "citation_objects": citations, "nearest": nearest,
                }, ttl)
    except (SearchUnavailable, IndexModelMismatch) as exc:
        record.status, record.error = "failed", str(exc)
        record.timings = {k: round(v * 1000, 1) for k, v in timings.items()}
        record.save()
        _audit_ask(record, nearest, cache_status)
        raise
    timings["total"] = time.perf_counter() - started
    record.timings = {k: round(v * 1000, 1) for k, v in timings.items()}
    if cache_status != "off":
        record.timings["cache"] = cache_status
    record.cost_usd = Decimal(str(_cost(record.input_tokens, record.output_tokens)))
    record.save()
    _audit_ask(record, nearest, cache_status)
    return AnswerResult(
        answer_id=record.id, conversation_id=conversation.id, question=question, search_query=record.search_query,
        text=record.text, refused=record.refused, citations=citations, nearest=nearest, composer=record.composer,
        fallback_reason=record.fallback_reason, timings=timings, input_tokens=record.input_tokens,
        output_tokens=record.output_tokens, cost_usd=float(record.cost_usd),
    )


def refusal_text(question: str) -> str:
    return ("I couldn't find an answer to that in the sources you have access to. "
            "The nearest documents are listed below; they may help, but they do not answer it.")


def nearest_documents(passages: list[Passage], limit: int = 3) -> list[Citation]:
    seen: dict[str, Citation] = {}
    for passage in passages:
        if passage.hit.document_id not in seen and len(seen) < limit:
            seen[passage.hit.document_id] = Citation.from_passage(len(seen) + 1, passage)
    return list(seen.values())


# -- feedback -----------------------------------------------------------------------------------------


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
    answer = answer_selectors.answer_asked_by(answer_id, user)
    if answer is None:
        raise AnswerNotFound("unknown answer")
    return Feedback.objects.create(answer=answer, user=user, kind=kind, reason=reason, comment=comment)
