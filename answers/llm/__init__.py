"""LLM providers behind the answer pipeline: Cohere chat (native citations) and any OpenAI-compatible server.

prompting.py builds the provider-neutral prompts and reads the replies, retries.py is the one retry policy
every provider call goes through, and openai.py / cohere.py are the composers. Each composer answers from
the numbered passages with [n] markers that refer to Passage.number, and raises ComposerError on any
failure (timeout, HTTP error after bounded retries, unreadable or empty reply) so that the pipeline falls
back to the extractive composer. A reply of NOT_FOUND is a decline, not a failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from answers.llm.cohere import CohereComposer
from answers.llm.openai import OpenAICompatibleComposer
from answers.llm.pii import RedactingComposer
from answers.types import ComposerError, Turn
from core.config import current


def rewrite_with_llm(question: str, history: Sequence[Turn]) -> str:
    """The follow-up as a standalone search query, by the configured LLM; ComposerError if that fails."""
    name = current().composer
    composers: dict[str, type[OpenAICompatibleComposer | CohereComposer]] = {
        "openai": OpenAICompatibleComposer, "cohere": CohereComposer}
    if name not in composers:
        raise ComposerError(f"no LLM is configured to rewrite queries (COMPOSER={name!r})")
    from answers import budget

    budget.check(current())
    composer = composers[name].from_settings()
    if current().pii_redaction:
        return RedactingComposer(composer, current().pii_phone_region).rewrite(question, history)
    return composer.rewrite(question, history)
