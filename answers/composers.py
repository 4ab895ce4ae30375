"""Choose the answer composer from settings: extractive (default, no LLM), Cohere chat, or OpenAI-compatible."""

from __future__ import annotations

from answers.types import Composer
from core.config import current

# The prompt templates in answers/prompts/ carry this version; answers record it.
PROMPT_VERSION = "answer-v1"


def get_composer(name: str | None = None) -> Composer:
    name = name or current().composer
    if name == "extractive":
        from answers.extractive import ExtractiveComposer

        return ExtractiveComposer()
    if name == "cohere":
        from answers.llm.cohere import CohereComposer

        return CohereComposer.from_settings()
    if name == "openai":
        from answers.llm.openai import OpenAICompatibleComposer

        return OpenAICompatibleComposer.from_settings()
    raise ValueError(f"unknown composer {name!r} (expected extractive, cohere or openai)")
