"""How long, how often and how much an LLM provider call may take, from settings; shared by every provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import current


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_retries: int
    max_input_tokens: int
    max_output_tokens: int

    @classmethod
    def from_settings(cls) -> Limits:
        config = current()
        return cls(timeout_s=float(config.llm_timeout_s), max_retries=int(config.llm_max_retries),
                   max_input_tokens=int(config.llm_max_input_tokens),
                   max_output_tokens=int(config.llm_max_output_tokens))


def token_count(value: Any) -> int:
    """A token count from a provider's usage report; 0 when it is missing or not a number."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
