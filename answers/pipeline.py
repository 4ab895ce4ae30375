"""The answer pipeline, pure: rewrite → correct spelling → retrieve → rerank → judge → compose → verify.

Nothing here writes to the database or the cache; what it returns (`Outcome`) is all the caller needs to record.
answers/services.py wraps it: the answer cache around `answer()`, and one transaction that records the outcome,
whatever it was, with its audit event. Each step is a field of `Steps`, so a caller (an evaluation, a test) can run
the same pipeline with a step of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from answers import budget, progress
from answers.answerability import Decision, judge
from answers.citations import Citation, VerifiedAnswer, verify
from answers.composers import PROMPT_VERSION, get_composer
from answers.extractive import ExtractiveComposer
from answers.formatting import strip_foreign_links
from answers.question_type import split_parts
from answers.rerankers import get_reranker
from answers.rewrite import in_context, rewrite_query
from answers.types import ComposerError, Composition, Passage, Turn
from connectors import selectors as source_selectors
from core.config import CitewiseSettings
from retrieval import selectors
from retrieval.metrics import timed
from retrieval.reranking import RerankerError
from retrieval.spelling import Correction, confirmed, unchanged
from search.types import SearchHit, SearchMode, SearchUnavailable
from search.versions import asks_for_this_version

logger = logging.getLogger("citewise.answering")

REFUSAL = ("I couldn't find an answer to that in the sources you have access to. "
           "The nearest documents are listed below; they may help, but they do not answer it.")
NEAREST_DOCUMENTS = 3
# For a question asking two or three things: each part's own best passages join the question's.
PASSAGES_PER_PART = 2


@dataclass
class Outcome:
    """What the pipeline made of a question: an answer with verified citations, or a refusal with the nearest
    documents. `fallback_reason` says a reranker or composer failed and a simpler one stood in."""

    search_query: str  # what was searched: the rewritten question, its spelling corrected
    text: str
    refused: bool
    citations: list[Citation]
    nearest: list[Citation]
    retrieved: list[dict[str, Any]]
    composer: str = ""
    prompt_version: str = ""
    fallback_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    corrected_query: str = ""  # the search query when spelling correction changed it, shown to the asker; else ""

    @property
    def status(self) -> str:
        return "refused" if self.refused else "answered"


def _retrieve(search_query: str, principals: frozenset[str], config: CitewiseSettings,
              timings: dict[str, float]) -> list[SearchHit]:
    hits = selectors.search(search_query, principals=principals, mode=SearchMode.HYBRID,
                            limit=config.rerank_candidates, timings=timings, with_unit_vectors=True)
    return source_selectors.with_section_links(hits)


def _correct(search_query: str, principals: frozenset[str], config: CitewiseSettings) -> Correction:
    if not config.spell_correction:
        return unchanged(search_query)
    try:
        return selectors.correct_spelling(search_query, principals=principals)
    except SearchUnavailable as exc:  # the search right after says so, or answers without the correction
        logger.warning("spelling correction skipped: %s", exc)
        return unchanged(search_query)


def _rerank(search_query: str, hits: list[SearchHit], config: CitewiseSettings) -> tuple[list[tuple[SearchHit, float]], str]:
    """The best `answer_passages` hits with their scores, and why the fused order stood in (or "")."""
    reranker = get_reranker(config.reranker)
    try:
        return reranker.rerank(search_query, hits, top_n=config.answer_passages), ""
    except RerankerError as exc:
        logger.warning("reranker %s failed, keeping fused order: %s", reranker.name, exc)
        return [(hit, hit.score) for hit in hits[:config.answer_passages]], f"reranker {reranker.name} failed: {exc}"


def _compose(question: str, passages: Sequence[Passage], history: Sequence[Turn],
             config: CitewiseSettings) -> tuple[Composition, str]:
    """The configured composer's answer, and why the extractive composer stood in (or "")."""
    try:
        if config.composer != "extractive":
            budget.check(config)
        return get_composer(config.composer).compose(question, passages, history=history), ""
    except budget.BudgetSpent as exc:
        logger.warning("composer %s not called: %s", config.composer, exc)
        return ExtractiveComposer().compose(question, passages, history=history), str(exc)
    except (ComposerError, ImportError) as exc:
        logger.warning("composer %s failed, falling back to extractive: %s", config.composer, exc)
        fallback = f"composer {config.composer} failed: {exc}"
        return ExtractiveComposer().compose(question, passages, history=history), fallback


@dataclass(frozen=True)
class Steps:
    rewrite: Callable[[str, Sequence[Turn]], str] = rewrite_query
    correct: Callable[[str, frozenset[str], CitewiseSettings], Correction] = _correct
    retrieve: Callable[[str, frozenset[str], CitewiseSettings, dict[str, float]], list[SearchHit]] = _retrieve
    rerank: Callable[[str, list[SearchHit], CitewiseSettings], tuple[list[tuple[SearchHit, float]], str]] = _rerank
    judge: Callable[[str, Sequence[Passage]], Decision] = judge
    compose: Callable[[str, Sequence[Passage], Sequence[Turn], CitewiseSettings], tuple[Composition, str]] = _compose
    verify: Callable[[Composition, Sequence[Passage]], VerifiedAnswer] = verify


DEFAULT_STEPS = Steps()


@dataclass
class Run:
    """One question through the pipeline: its inputs, and the timings the steps add to."""

    question: str
    history: Sequence[Turn]
    principals: frozenset[str]
    config: CitewiseSettings
    steps: Steps = DEFAULT_STEPS
    timings: dict[str, float] = field(default_factory=dict)

    def rewrite(self) -> str:
        with timed("rewrite", self.timings):
            return self.steps.rewrite(self.question, self.history)

    def _search(self, search_query: str) -> tuple[str, str, list[SearchHit]]:
        """The query searched (its spelling corrected, as far as what it finds confirms), the correction shown to the
        asker ("" when none), and the hits."""
        progress.report("searching")
        with timed("spelling", self.timings):
            correction = self.steps.correct(search_query, self.principals, self.config)
        hits = self.steps.retrieve(correction.query, self.principals, self.config, self.timings)
        if not correction.changed:
            return search_query, "", hits
        kept = confirmed(correction, hits)
        if kept.query != correction.query:  # a corrected word the asker's search did not find: searched as typed
            hits = self.steps.retrieve(kept.query, self.principals, self.config, self.timings)
        return kept.query, kept.query if kept.changed else "", hits

    def _with_parts(self, search_query: str, parts: Sequence[str],
                    ranked: list[tuple[SearchHit, float]]) -> list[tuple[SearchHit, float]]:
        """The question's passages and, for a question asking two or three things, the best few for each part
        searched alone: "the K2's charge time and how long it runs" needs the charging table and the spec sheet,
        and the whole question's search may find only one of them."""
        seen = {hit.chunk_id for hit, _ in ranked}
        # A part is searched as a question of its own: a document reviewers hid for the whole question stays out.
        hidden = selectors.hidden_documents(search_query)
        added: list[tuple[SearchHit, float]] = []
        for part in parts:
            hits = [hit for hit in self.steps.retrieve(part, self.principals, self.config, self.timings)
                    if hit.document_id not in hidden]
            with timed("rerank", self.timings):
                part_ranked, _ = self.steps.rerank(part, hits, self.config)
            for hit, score in part_ranked[:PASSAGES_PER_PART]:
                if hit.chunk_id not in seen:
                    seen.add(hit.chunk_id)
                    added.append((hit, score))
        return [*ranked, *added]

    def answer(self, search_query: str) -> Outcome:
        """Correct the query's spelling, retrieve what the principals may read, rerank, judge, compose and verify: an
        answer or a refusal. A follow-up that seemed to stand alone but that nothing answers on its own ("how long do
        I have to hand the old one back" after the laptop refresh cycle) is asked again with the conversation's topic
        beside it (rewrite.in_context), and that answer kept if there is one."""
        outcome = self._answer(search_query)
        contextual = self.contextual_query(search_query) if outcome.refused else None
        if contextual is not None:
            retried = self._answer(contextual)
            if not retried.refused:
                return retried
        return outcome

    def contextual_query(self, search_query: str) -> str | None:
        """What the question is asked again as if nothing answers it alone (None when it is not): part of what its
        outcome depends on, besides the search query."""
        return in_context(self.question, self.history) if search_query == self.question else None

    def _answer(self, search_query: str) -> Outcome:
        search_query, corrected_query, hits = self._search(search_query)
        with timed("rerank", self.timings):
            ranked, fallback = self.steps.rerank(search_query, hits, self.config)
        parts = split_parts(search_query)
        if len(parts) > 1:
            ranked = self._with_parts(search_query, parts, ranked)
        ranked = current_editions(search_query, ranked, self.steps.judge)
        passages = [Passage(number, hit, hit.text) for number, (hit, _) in enumerate(ranked, start=1)]
        progress.report("reading", passages=len(passages))
        retrieved = [{"number": passage.number, "chunk_id": passage.hit.chunk_id,
                      "document_id": passage.hit.document_id, "score": round(float(score), 6)}
                     for passage, (_, score) in zip(passages, ranked, strict=True)]
        with timed("answerability", self.timings):
            decision = self.steps.judge(search_query, passages)
            if not decision.answerable and len(parts) > 1:
                # A question asking two things is answerable when either is: the composer answers each part that is.
                decision = next((d for d in (self.steps.judge(part, passages) for part in parts) if d.answerable),
                                decision)
        outcome = Outcome(search_query=search_query, text="", refused=True, citations=[], nearest=[],
                          retrieved=retrieved, fallback_reason=fallback, corrected_query=corrected_query)
        verified: VerifiedAnswer | None = None
        if decision.answerable:
            # An LLM reads the conversation and the question as asked; the extractive composer reads neither, so it
            # picks sentences for the standalone query (a follow-up resolved, a misspelling corrected).
            asked = self.question if self.config.composer != "extractive" else search_query
            progress.report("writing")
            with timed("compose", self.timings):
                composition, composer_fallback = self.steps.compose(asked, passages, self.history, self.config)
            outcome.fallback_reason = "; ".join(reason for reason in (fallback, composer_fallback) if reason)
            outcome.composer = composition.composer
            outcome.prompt_version = PROMPT_VERSION if composition.composer != "extractive" else ""
            outcome.input_tokens, outcome.output_tokens = composition.input_tokens, composition.output_tokens
            progress.report("checking")
            with timed("verify", self.timings):
                verified = self.steps.verify(composition, passages)
        if verified is None or not verified.citations:
            outcome.text, outcome.nearest = REFUSAL, nearest_documents(passages)
        else:
            # A document cannot send the reader anywhere: the only links an answer keeps are its cited sources.
            outcome.text = strip_foreign_links(verified.text, (citation.url for citation in verified.citations))
            outcome.text += superseded_note(verified.citations)
            outcome.refused, outcome.citations = False, verified.citations
        return outcome


def current_editions(search_query: str, ranked: list[tuple[SearchHit, float]],
                     judge: Callable[[str, Sequence[Passage]], Decision]) -> list[tuple[SearchHit, float]]:
    """The passages without those of a superseded edition whose newer edition is among them too, when the newer
    edition's passages answer the question on their own (the judge says so) and the question does not name the old
    one ("the 2025 policy"): quoting both invites the old figure, and the note under an answer cannot undo a wrong
    number. A question only the old edition answers (a section the new one carries over unchanged) keeps it, with
    the note saying it is superseded."""
    current = {hit.document_id for hit, _ in ranked if not hit.superseded_by}
    titles = {hit.title for hit, _ in ranked if hit.document_id in current}
    kept = [(hit, score) for hit, score in ranked
            if not hit.superseded_by or hit.superseded_by not in titles
            or asks_for_this_version(search_query, hit.title, hit.superseded_by)]
    if not kept or len(kept) == len(ranked):
        return ranked
    newer_only = [Passage(number, hit, hit.text) for number, (hit, _) in enumerate(kept, start=1)]
    return kept if judge(search_query, newer_only).answerable else ranked


def superseded_note(citations: Sequence[Citation]) -> str:
    """A closing paragraph saying which cited passages come from a superseded edition (and which one replaces it),
    or "". Citation.superseded_by names only editions the asker may read (retrieval.selectors)."""
    notes = [f"[{c.number}] is from {c.title}, superseded by {c.superseded_by}." for c in citations if c.superseded_by]
    return "\n\nNote: " + " ".join(notes) if notes else ""


def nearest_documents(passages: Sequence[Passage], limit: int = NEAREST_DOCUMENTS) -> list[Citation]:
    """A refusal's pointers: the first passages of distinct documents, numbered 1..limit."""
    seen: dict[str, Citation] = {}
    for passage in passages:
        if passage.hit.document_id not in seen and len(seen) < limit:
            seen[passage.hit.document_id] = Citation.from_passage(len(seen) + 1, passage)
    return list(seen.values())
