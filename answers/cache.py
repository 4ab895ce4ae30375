"""The answer cache: an answer is reused only while nothing it depends on has changed.

An answer is reused only for the same normalised question, rewritten search query (the conversation's context),
answering settings, *exact* set of expanded principals, and index version. The index version is a token kept in the
cache, replaced by bump_index_version() whenever the index changes (retrieval's index_changed signal; the receiver
is connected in answers/apps.py), plus the sources' last sync times from the database, so a sync in another process
invalidates answers even with the per-process local-memory cache. See docs/acl.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from django.core.cache import cache
from django.db.models import Max

from answers.composers import PROMPT_VERSION
from answers.pipeline import Outcome, Run
from connectors.models import Source
from core.config import CitewiseSettings, current
from retrieval import selectors as retrieval_selectors
from retrieval.metrics import timed

logger = logging.getLogger("citewise.answering")
ANSWER_CACHE_PREFIX = "citewise:answer:v2:"  # v2: the pipeline's Outcome, pickled
INDEX_VERSION_KEY = "citewise:index-version"
_ANSWER_SETTINGS = frozenset({
    "search_backend", "index_name", "embedding_model", "embedding_backend", "answer_rescored_units", "fusion",
    "rrf_k", "bm25_weight", "dense_weight",
    "candidates_per_leg", "knn_num_candidates", "reranker", "rerank_model", "rerank_candidates", "answer_passages",
    "answer_threshold", "spell_correction", "composer", "llm_max_input_tokens", "llm_max_output_tokens", "cohere_chat_model",
    "cohere_rerank_model", "openai_base_url", "openai_model",
})


def normalise_question(question: str) -> str:
    return " ".join(question.casefold().split())


def principals_digest(principals: frozenset[str]) -> str:
    """A hash of the sorted principals: two askers share cached answers only if they read as exactly the same."""
    return hashlib.sha256("\n".join(sorted(principals)).encode()).hexdigest()


def bump_index_version() -> None:
    """Invalidate every cached answer."""
    try:
        cache.set(INDEX_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:
        logger.warning("could not bump the answer cache's index version", exc_info=True)


def invalidate_on_index_change(sender: type, **kwargs: Any) -> None:
    """The index_changed receiver: documents, ACLs or deletions were written to an index, or a rebuild swapped in."""
    bump_index_version()


def index_version() -> str:
    """The cache's generation token, the newest content and permission sync times of any source, and the ranking
    rules' version (a rule added or undone changes what searches return)."""
    token = cache.get(INDEX_VERSION_KEY)
    if token is None:
        # A fresh random token (never a counter restarting at 1) so an evicted key cannot revive old entries.
        cache.add(INDEX_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        token = cache.get(INDEX_VERSION_KEY) or "none"
    stamps = Source.objects.aggregate(content=Max("last_synced_at"), permissions=Max("permissions_synced_at"))
    return f"{token}:{stamps['content']}:{stamps['permissions']}:{retrieval_selectors.ranking_version()}"


def answer_cache_key(question: str, search_query: str, principals: frozenset[str],
                     config: CitewiseSettings | None = None) -> str:
    config = config or current()
    material = json.dumps({
        "question": normalise_question(question), "search_query": normalise_question(search_query),
        "settings": config.model_dump(mode="json", include=set(_ANSWER_SETTINGS)), "prompt": PROMPT_VERSION,
        "principals": principals_digest(principals), "index": index_version(),
    }, sort_keys=True)
    return ANSWER_CACHE_PREFIX + hashlib.sha256(material.encode()).hexdigest()


def cached_answer(run: Run, search_query: str) -> tuple[Outcome, str]:
    """The pipeline's outcome for this question, from the cache when an identical one was answered within the TTL.

    Returns the outcome and "hit", "miss", "unavailable" (the cache is down: answered afresh) or "off". A degraded
    outcome (a reranker or composer failed and a fallback answered) is not kept.
    """
    ttl = run.config.answer_cache_ttl_s
    if ttl <= 0:
        return run.answer(search_query), "off"
    with timed("cache_lookup", run.timings):
        # A question asked again with the conversation's topic when nothing answers it alone depends on that too.
        contextual = run.contextual_query(search_query)
        keyed_query = f"{search_query} | {contextual}" if contextual else search_query
        key, hit, status = _lookup(run.question, keyed_query, run.principals, run.config)
    if hit is not None:
        return hit, status
    outcome = run.answer(search_query)
    if key and not outcome.fallback_reason:
        _store(key, outcome, ttl)
    return outcome, status


def _lookup(question: str, search_query: str, principals: frozenset[str],
            config: CitewiseSettings) -> tuple[str, Outcome | None, str]:
    """(key, cached outcome or None, "hit" | "miss" | "unavailable")."""
    try:
        key = answer_cache_key(question, search_query, principals, config)
        cached = cache.get(key)
    except Exception:
        logger.warning("answer cache unavailable", exc_info=True)
        return "", None, "unavailable"
    if not isinstance(cached, Outcome):
        return key, None, "miss"
    return key, cached, "hit"


def _store(key: str, outcome: Outcome, ttl: int) -> None:
    try:
        cache.set(key, outcome, timeout=ttl)
    except Exception:
        logger.warning("answer cache unavailable", exc_info=True)
