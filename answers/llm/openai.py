"""The composer for any OpenAI-compatible chat completions server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM ...).

The passages are quoted in the user message; the model writes the [n] markers itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from answers import progress
from answers.llm.limits import Limits, token_count
from answers.llm.prompting import (
    REWRITE_MAX_OUTPUT_TOKENS,
    build_prompt,
    estimate_tokens,
    is_not_found,
    read_rewrite,
    render_passage,
    rewrite_prompt,
)
from answers.llm.retries import Failure, call_with_retry, short, status_failure
from answers.types import ComposerError, Composition, Passage, Turn
from core.config import current
from core.outbound import MeteredClient

logger = logging.getLogger("citewise.answering.llm")


class OpenAICompatibleComposer:
    """Chat completions on any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM ...)."""

    name = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str, limits: Limits) -> None:
        import openai

        self.model = model
        self.limits = limits
        # Local servers take no key, but the SDK insists on one.
        http_client = MeteredClient("llm.openai", timeout=limits.timeout_s, follow_redirects=True,
                                    limits=openai.DEFAULT_CONNECTION_LIMITS)  # the SDK's own client's defaults
        # The SDK takes httpx clients as well as its own httpx2 ones (openai._httpx2.is_legacy_httpx_sync_client).
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "no-key", timeout=limits.timeout_s,
                                     max_retries=0, http_client=cast(Any, http_client))

    @classmethod
    def from_settings(cls) -> OpenAICompatibleComposer:
        config = current()
        return cls(base_url=config.openai_base_url, api_key=config.openai_api_key,
                   model=config.openai_model, limits=Limits.from_settings())

    def _describe(self, exc: Exception) -> Failure:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return Failure(f"timed out after {self.limits.timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return Failure(f"could not connect ({short(exc.__cause__ or exc)})", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            return status_failure(exc.status_code, exc.body if exc.body is not None else exc.message,
                                  exc.response.headers)
        if isinstance(exc, openai.APIResponseValidationError | ValueError):  # JSONDecodeError is a ValueError
            return Failure(f"unreadable reply ({type(exc).__name__}: {short(exc)})")
        return Failure(f"call failed ({type(exc).__name__}: {short(exc)})")

    def _stream(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[str, str | None, Any]:
        """One streamed completion: each piece of text reported as a draft as it arrives; the whole text, the
        finish reason and the usage (the last chunk's, as `include_usage` asks) once it is done."""
        progress.report("writing")  # again on a retry: what was drafted before is void
        pieces: list[str] = []
        finish_reason, usage = None, None
        stream = self._client.chat.completions.create(
            model=self.model, messages=cast(Any, messages), max_tokens=max_tokens, temperature=0,
            timeout=self.limits.timeout_s, stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            usage = getattr(chunk, "usage", None) or usage
            for choice in chunk.choices or ():
                text = getattr(choice.delta, "content", None)
                if text:
                    pieces.append(text)
                    progress.report("draft", text=text)
                finish_reason = getattr(choice, "finish_reason", None) or finish_reason
        return "".join(pieces), finish_reason, usage

    def _complete(self, messages: list[dict[str, str]], max_tokens: int, what: str,
                  streamed: bool = False) -> tuple[str, int, int]:
        if streamed:
            drafted, last_finish_reason, streamed_usage = call_with_retry(
                lambda: self._stream(messages, max_tokens), describe=self._describe, what=what,
                max_retries=self.limits.max_retries)
            return self._read(drafted, last_finish_reason, streamed_usage, max_tokens, what)
        response = call_with_retry(
            lambda: self._client.chat.completions.create(model=self.model, messages=cast(Any, messages), max_tokens=max_tokens,
                                                         temperature=0, timeout=self.limits.timeout_s),
            describe=self._describe, what=what, max_retries=self.limits.max_retries)
        try:
            choice = response.choices[0]
            content = choice.message.content
            finish_reason = getattr(choice, "finish_reason", None)
            usage = getattr(response, "usage", None)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            raise ComposerError(f"{what}: malformed reply ({type(exc).__name__}: {short(exc)})") from exc
        return self._read(content, finish_reason, usage, max_tokens, what)

    def _read(self, content: Any, finish_reason: str | None, usage: Any, max_tokens: int,
              what: str) -> tuple[str, int, int]:
        if not isinstance(content, str) or not content.strip():
            raise ComposerError(f"{what}: empty answer (finish_reason={finish_reason})")
        if finish_reason == "length":
            logger.warning("%s: the answer was cut at %d output tokens", what, max_tokens)
        return (content.strip(), token_count(getattr(usage, "prompt_tokens", 0)),
                token_count(getattr(usage, "completion_tokens", 0)))

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        prompt = build_prompt(question, passages, history, max_input_tokens=self.limits.max_input_tokens,
                              passages_inline=True,
                              passage_cost=lambda p, text: estimate_tokens(render_passage(p, text)) + 1)
        # Streamed only where someone watches the draft (the web chat); the answer shown in the end is the
        # verified one either way.
        text, input_tokens, output_tokens = self._complete(prompt.messages(), self.limits.max_output_tokens,
                                                           f"{self.name} chat ({self.model})",
                                                           streamed=progress.wants_drafts())
        if is_not_found(text):
            return Composition("", self.name, input_tokens, output_tokens, declined=True)
        return Composition(text, self.name, input_tokens, output_tokens)

    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        what = f"{self.name} query rewrite ({self.model})"
        text, _, _ = self._complete([{"role": "user", "content": rewrite_prompt(question, history)}],
                                    REWRITE_MAX_OUTPUT_TOKENS, what)
        return read_rewrite(text, what)
