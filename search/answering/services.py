"""Ask a question: retrieve what the asker may read, rerank, compose, verify citations, record it all."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from search import selectors, throttling
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


def _history(conversation: Conversation) -> list[Turn]:
    earlier = conversation.answers.order_by("-created_at")[:HISTORY_TURNS]
    return [Turn(a.question, a.text) for a in reversed(list(earlier))]


def _cost(input_tokens: int, output_tokens: int) -> float:
    config = settings.CITEWISE
    return round(input_tokens / 1000 * config["LLM_USD_PER_1K_INPUT_TOKENS"]
                 + output_tokens / 1000 * config["LLM_USD_PER_1K_OUTPUT_TOKENS"], 6)


# -- answer cache ------------------------------------------------------------------------------------
# An answer is reused only for the same normalised question, rewritten search query (the conversation's
# context), answering settings, *exact* set of expanded principals, and index version. The index version
# is a token kept in the cache, replaced by bump_index_version() whenever a sync writes to the index, plus
# the sources' last sync times from the database, so a sync in another process invalidates answers even
# with the per-process local-memory cache. See docs/acl.md.
ANSWER_CACHE_PREFIX = "citewise:answer:v1:"
INDEX_VERSION_KEY = "citewise:index-version"
_ANSWER_SETTINGS = (
    "SEARCH_BACKEND", "INDEX_NAME", "EMBEDDING_MODEL", "FUSION", "RRF_K", "BM25_WEIGHT", "DENSE_WEIGHT",
    "CANDIDATES_PER_LEG", "KNN_NUM_CANDIDATES", "RERANKER", "RERANK_MODEL", "RERANK_CANDIDATES", "ANSWER_PASSAGES",
    "ANSWER_THRESHOLD", "COMPOSER", "LLM_MAX_INPUT_TOKENS", "LLM_MAX_OUTPUT_TOKENS", "COHERE_CHAT_MODEL",
    "COHERE_RERANK_MODEL", "OPENAI_BASE_URL", "OPENAI_MODEL",
)


def normalise_question(question: str) -> str:
    return " ".join(question.casefold().split())


def principals_digest(principals: frozenset[str]) -> str:
    """A hash of the sorted principals: two askers share cached answers only if they read as exactly the same."""
    return hashlib.sha256("\n".join(sorted(principals)).encode()).hexdigest()


def bump_index_version() -> None:
    """Invalidate every cached answer: called after a sync writes documents, ACLs or deletions to the index."""
    try:
        cache.set(INDEX_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:  # noqa: BLE001 - the sources' sync times in the key still change; see index_version()
        logger.warning("could not bump the answer cache's index version", exc_info=True)


def index_version() -> str:
    """The cache's generation token and the newest content and permission sync times of any source."""
    from django.db.models import Max

    from connectors.models import Source

    token = cache.get(INDEX_VERSION_KEY)
    if token is None:
        # A fresh random token (never a counter restarting at 1) so an evicted key cannot revive old entries.
        cache.add(INDEX_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        token = cache.get(INDEX_VERSION_KEY) or "none"
    stamps = Source.objects.aggregate(content=Max("last_synced_at"), permissions=Max("permissions_synced_at"))
    return f"{token}:{stamps['content']}:{stamps['permissions']}"


def answer_cache_key(question: str, search_query: str, principals: frozenset[str]) -> str:
    config = settings.CITEWISE
    material = json.dumps({
        "question": normalise_question(question), "search_query": normalise_question(search_query),
        "settings": [str(config.get(name, "")) for name in _ANSWER_SETTINGS], "prompt": PROMPT_VERSION,
        "principals": principals_digest(principals), "index": index_version(),
    }, sort_keys=True)
    return ANSWER_CACHE_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def _cache_lookup(question: str, search_query: str, principals: frozenset[str]) -> tuple[str, dict | None, str]:
    """(key, cached answer or None, "hit" | "miss" | "unavailable")."""
    try:
        key = answer_cache_key(question, search_query, principals)
        cached = cache.get(key)
    except Exception:  # noqa: BLE001 - a cache outage makes every question a miss, never a failure
        logger.warning("answer cache unavailable", exc_info=True)
        return "", None, "unavailable"
    if not isinstance(cached, dict):
        return key, None, "miss"
    return key, cached, "hit"


def _cache_set(key: str, value: dict[str, Any], ttl: int) -> None:
    try:
        cache.set(key, value, timeout=ttl)
    except Exception:  # noqa: BLE001
        logger.warning("answer cache unavailable", exc_info=True)


def _audit_ask(record: Answer, nearest: list[Citation], cache_status: str) -> None:
    """Who asked what from which surface, which documents were retrieved and which were shown to them."""
    from audit import services as audit

    retrieved = list(dict.fromkeys(r["document_id"] for r in record.retrieved))
    cited = list(dict.fromkeys(c["document_id"] for c in record.citations))
    shown = list(dict.fromkeys([*cited, *(c.document_id for c in nearest)]))
    audit.record(record.user, "ask", object_type="search.answer", object_id=record.id, surface=record.surface,
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
    chat channel asked in, for those limits (search/throttling.py).
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
    config = settings.CITEWISE
    started = time.perf_counter()
    conversation = _conversation(conversation_id, user, surface)
    history = _history(conversation)
    record = Answer(conversation=conversation, user=conversation.user, surface=surface, question=question)
    timings: dict[str, float] = {}
    ttl = int(config.get("ANSWER_CACHE_TTL_S", 0) or 0)
    cache_key, cache_status = "", "off"
    nearest: list[Citation] = []
    try:
        with timed("rewrite", timings):
            search_query = rewrite_query(question, history)
        record.search_query = search_query
        cached = None
        if ttl > 0:
            with timed("cache_lookup", timings):
                cache_key, cached, cache_status = _cache_lookup(question, search_query, principals)
        if cached:
            record.text, record.refused, record.status = cached["text"], cached["refused"], cached["status"]
            record.composer, record.prompt_version = cached["composer"], cached["prompt_version"]
            record.retrieved, record.citations = cached["retrieved"], cached["citations"]
            citations, nearest = list(cached["citation_objects"]), list(cached["nearest"])
        else:
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
                citations = []
            else:
                record.text = verified.text
                citations, nearest = verified.citations, []
            record.citations = [c.as_dict() for c in citations]
            # A degraded answer (a reranker or composer failed and a fallback answered) is not kept.
            if cache_key and not record.fallback_reason:
                _cache_set(cache_key, {
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
