"""Choose the answer composer from settings: extractive (default, no LLM), Cohere chat, or OpenAI-compatible."""

from __future__ import annotations

from answers.types import Composer
from core.config import current

# The prompt templates in answers/prompts/ carry this version; answers record it.
PROMPT_VERSION = "answer-v1"


def get_composer(name: str | None = None) -> Composer:
    """The composer named (else the configured one); an external one behind PII redaction unless turned off."""
    config = current()
    name = name or config.composer
    if name == "extractive":
        from answers.extractive import ExtractiveComposer

        return ExtractiveComposer()
    from answers.llm.pii import redacting

    if name == "cohere":
        from answers.llm.cohere import CohereComposer

        return redacting(CohereComposer.from_settings(), enabled=config.pii_redaction,
                         phone_region=config.pii_phone_region)
    if name == "openai":
        from answers.llm.openai import OpenAICompatibleComposer

        return redacting(OpenAICompatibleComposer.from_settings(), enabled=config.pii_redaction,
                         phone_region=config.pii_phone_region)
    raise ValueError(f"unknown composer {name!r} (expected extractive, cohere or openai)")
