"""Ask a question: retrieve what the asker may read, rerank, compose, verify citations, record it all."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from search import selectors
from search.answering.answerability import judge
from search.answering.citations import Citation, VerifiedAnswer, verify
from search.answering.composers import PROMPT_VERSION, get_composer
from search.answering.extractive import ExtractiveComposer
from search.answering.rerankers import get_reranker
from search.answering.rewrite import rewrite_query
from search.answering.types import ComposerError, Passage, RerankerError, Turn
from search.metrics import timed
from search.models import Answer, Conversation
from search.types import IndexModelMismatch, SearchMode, SearchUnavailable

logger = logging.getLogger("citewise.answering")
MAX_QUESTION_CHARS = 2000
HISTORY_TURNS = 3


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


def _history(conversation: Conversation) -> list[Turn]:
    earlier = conversation.answers.order_by("-created_at")[:HISTORY_TURNS]
    return [Turn(a.question, a.text) for a in reversed(list(earlier))]


def _cost(input_tokens: int, output_tokens: int) -> float:
    config = settings.CITEWISE
    return round(input_tokens / 1000 * config["LLM_USD_PER_1K_INPUT_TOKENS"]
                 + output_tokens / 1000 * config["LLM_USD_PER_1K_OUTPUT_TOKENS"], 6)


def ask(
    question: str,
    *,
    principals: frozenset[str],
    user: Any = None,
    conversation_id: uuid.UUID | str | None = None,
    surface: str = "api",
) -> AnswerResult:
    """Answer from passages the principals may read, with verified [n] citations, or refuse.

    The question is recorded whatever happens, including when search or the LLM fails.
    """
    question = (question or "").strip()
    if not question:
        raise InvalidQuestion("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    config = settings.CITEWISE
    started = time.perf_counter()
    conversation = _conversation(conversation_id, user, surface)
    history = _history(conversation)
    record = Answer(conversation=conversation, user=conversation.user, surface=surface, question=question)
    timings: dict[str, float] = {}
    try:
        with timed("rewrite", timings):
            search_query = rewrite_query(question, history)
        record.search_query = search_query
        hits = selectors.search(search_query, principals=principals, mode=SearchMode.HYBRID,
                                limit=config["RERANK_CANDIDATES"], timings=timings)
        reranker = get_reranker()
        with timed("rerank", timings):
            try:
                ranked = reranker.rerank(search_query, hits, top_n=config["ANSWER_PASSAGES"])
            except RerankerError as exc:
                logger.warning("reranker %s failed, keeping fused order: %s", reranker.name, exc)
                record.fallback_reason = f"reranker {reranker.name} failed: {exc}"
                ranked = [(hit, hit.score) for hit in hits[:config["ANSWER_PASSAGES"]]]
        passages = [Passage(i, hit, hit.text) for i, (hit, _) in enumerate(ranked, start=1)]
        record.retrieved = [{"number": p.number, "chunk_id": p.hit.chunk_id, "document_id": p.hit.document_id,
                             "score": round(float(score), 6)} for p, (_, score) in zip(passages, ranked)]
        with timed("answerability", timings):
            decision = judge(search_query, passages)
        verified: VerifiedAnswer | None = None
        if decision.answerable:
            with timed("compose", timings):
                composer_name = settings.CITEWISE["COMPOSER"]
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
            citations: list[Citation] = []
        else:
            record.text = verified.text
            citations, nearest = verified.citations, []
        record.citations = [c.as_dict() for c in citations]
    except (SearchUnavailable, IndexModelMismatch) as exc:
        record.status, record.error = "failed", str(exc)
        record.timings = {k: round(v * 1000, 1) for k, v in timings.items()}
        record.save()
        raise
    timings["total"] = time.perf_counter() - started
    record.timings = {k: round(v * 1000, 1) for k, v in timings.items()}
    record.cost_usd = Decimal(str(_cost(record.input_tokens, record.output_tokens)))
    record.save()
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
