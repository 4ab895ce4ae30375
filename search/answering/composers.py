"""Choose the answer composer from settings: extractive (default, no LLM), Cohere chat, or OpenAI-compatible."""

from __future__ import annotations

from django.conf import settings

from search.answering.types import Composer

# The prompt templates in search/answering/prompts/ carry this version; answers record it.
PROMPT_VERSION = "answer-v1"


def get_composer(name: str | None = None) -> Composer:
    name = name or settings.CITEWISE["COMPOSER"]
    if name == "extractive":
        from search.answering.extractive import ExtractiveComposer

        return ExtractiveComposer()
    if name == "cohere":
        from search.answering.llm import CohereComposer

        return CohereComposer.from_settings()
    if name == "openai":
        from search.answering.llm import OpenAICompatibleComposer

        return OpenAICompatibleComposer.from_settings()
    raise ValueError(f"unknown composer {name!r} (expected extractive, cohere or openai)")
