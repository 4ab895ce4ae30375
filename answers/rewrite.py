"""Turn a follow-up question into a standalone search query using the conversation so far."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from answers.types import ComposerError, Turn
from core.config import current
from search.analysis import ENGLISH_STOP_WORDS

logger = logging.getLogger("citewise.answering.rewrite")
_FOLLOW_UP = re.compile(
    r"^(and|also|what about|how about|and what|same for|then)\b|\b(it|its|that|this|those|these|they|them|"
    r"there|he|she|him|her|one)\b", re.I,
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def _keywords(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.lower() not in ENGLISH_STOP_WORDS and len(w) > 2]


def rewrite_query(question: str, history: Sequence[Turn]) -> str:
    """The question alone if it stands alone; else the question plus the earlier question's key words.

    With an LLM composer configured, the LLM rewrites it (prompts/rewrite_v1.txt); if that fails,
    the heuristic answers.
    """
    if not history:
        return question
    if current().composer != "extractive":
        try:
            from answers.llm import rewrite_with_llm

            return rewrite_with_llm(question, history)
        except (ComposerError, ImportError) as exc:
            logger.warning("LLM query rewrite failed, using the heuristic: %s", exc)
    words = _keywords(question)
    if len(words) > 6 and not _FOLLOW_UP.search(question):
        return question
    previous = history[-1].question
    extra = [w for w in _keywords(previous) if w.lower() not in {x.lower() for x in words}]
    return f"{question} {' '.join(extra)}".strip()
