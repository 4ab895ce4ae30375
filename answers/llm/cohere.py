"""The composer for Cohere v2 chat: the passages travel as documents, and Cohere's own citations become markers.

Cohere grounds each claim it takes from the documents in a citation (a span of the answer and the
documents it came from); cited_spans() maps those onto the answer text and insert_markers() writes the
[n] markers where each span ends. describe_cohere_failure() also serves Cohere Rerank (answers/rerankers.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from answers.llm.limits import Limits, token_count
from answers.llm.prompting import (
    MARKER,
    MARKER_RUN,
    REWRITE_MAX_OUTPUT_TOKENS,
    build_prompt,
    estimate_tokens,
    is_not_found,
    passage_context,
    quote_data,
    read_rewrite,
    rewrite_prompt,
)
from answers.llm.retries import Failure, call_with_retry, short, status_failure
from answers.types import ComposerError, Composition, Passage, Turn
from core.config import current
from core.outbound import MeteredClient


def describe_cohere_failure(exc: Exception, timeout_s: float) -> Failure:
    """How a cohere SDK call failed; shared by the chat composer and the reranker."""
    import httpx
    from cohere.core.api_error import ApiError
    from cohere.core.parse_error import ParsingError

    if isinstance(exc, httpx.TimeoutException):
        return Failure(f"timed out after {timeout_s:g} s")
    if isinstance(exc, httpx.TransportError):
        return Failure(f"could not connect ({short(exc)})", retryable=True)
    if isinstance(exc, ApiError) and exc.status_code is not None and not 200 <= exc.status_code < 300:
        return status_failure(exc.status_code, exc.body, exc.headers)
    if isinstance(exc, ApiError):  # a 2xx whose body is not JSON
        return Failure(f"unreadable reply (HTTP {exc.status_code}, not JSON: {short(exc.body)})")
    if isinstance(exc, ParsingError | ValueError):  # pydantic's ValidationError is a ValueError
        return Failure(f"unreadable reply ({type(exc).__name__}: {short(exc)})")
    return Failure(f"call failed ({type(exc).__name__}: {short(exc)})")


class CohereComposer:
    """Cohere v2 chat with the passages as documents; Cohere's own citations become [n] markers."""

    name = "cohere"

    def __init__(self, *, api_key: str, base_url: str, model: str, limits: Limits) -> None:
        import cohere

        self.model = model
        self.limits = limits
        self._client = cohere.ClientV2(api_key=api_key, base_url=base_url, timeout=limits.timeout_s, max_retries=0,
                                       httpx_client=MeteredClient("llm.cohere", timeout=limits.timeout_s))

    @classmethod
    def from_settings(cls) -> CohereComposer:
        config = current()
        return cls(api_key=config.cohere_api_key, base_url=config.cohere_base_url,
                   model=config.cohere_chat_model, limits=Limits.from_settings())

    def _describe(self, exc: Exception) -> Failure:
        return describe_cohere_failure(exc, self.limits.timeout_s)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int, what: str,
              documents: list[dict[str, Any]] | None = None) -> Any:
        # The SDK's TypedDicts describe exactly these plain dicts (role/content messages, id/data documents).
        extra: dict[str, Any] = {"documents": documents} if documents else {}
        return call_with_retry(
            lambda: self._client.chat(model=self.model, messages=cast(Any, messages), max_tokens=max_tokens,
                                      temperature=0,
                                      request_options={"timeout": self.limits.timeout_s, "max_retries": 0}, **extra),
            describe=self._describe, what=what, max_retries=self.limits.max_retries)

    @staticmethod
    def _texts(response: Any, what: str) -> tuple[str, dict[int, int]]:
        """The answer text (text content items joined) and each item's offset in it, by content index."""
        try:
            items = list(response.message.content or [])
            text, offsets = "", {}
            for index, item in enumerate(items):
                if getattr(item, "type", None) == "text" and isinstance(getattr(item, "text", None), str):
                    offsets[index] = len(text)
                    text += item.text
        except (AttributeError, TypeError) as exc:
            raise ComposerError(f"{what}: malformed reply ({type(exc).__name__}: {short(exc)})") from exc
        if not text.strip():
            raise ComposerError(f"{what}: empty answer (finish_reason={getattr(response, 'finish_reason', None)})")
        return text, offsets

    @staticmethod
    def _usage(response: Any) -> tuple[int, int]:
        # Billed units are what the price applies to; `tokens` also counts Cohere's own prompt template.
        usage = getattr(response, "usage", None)
        billed, tokens = getattr(usage, "billed_units", None), getattr(usage, "tokens", None)

        def count(name: str) -> int:
            return token_count(getattr(billed, name, None)) or token_count(getattr(tokens, name, None))

        return count("input_tokens"), count("output_tokens")

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        prompt = build_prompt(
            question, passages, history, max_input_tokens=self.limits.max_input_tokens, passages_inline=False,
            passage_cost=lambda p, text: estimate_tokens(passage_context(p)) + estimate_tokens(text) + 12)
        documents = [{"id": str(p.number),
                      "data": {"title": quote_data(passage_context(p)), "snippet": quote_data(text)}}
                     for p, text in prompt.passages]
        what = f"{self.name} chat ({self.model})"
        response = self._chat(prompt.messages(), self.limits.max_output_tokens, what, documents)
        text, offsets = self._texts(response, what)
        input_tokens, output_tokens = self._usage(response)
        if is_not_found(text):
            return Composition("", self.name, input_tokens, output_tokens, declined=True)
        sent = {p.number for p, _ in prompt.passages}
        try:
            spans = cited_spans(text, offsets, getattr(response.message, "citations", None) or [], sent)
        except (AttributeError, TypeError, ValueError) as exc:
            raise ComposerError(f"{what}: malformed citations ({type(exc).__name__}: {short(exc)})") from exc
        if not spans:
            # Cohere grounds every claim it takes from documents; an answer citing none is not from them.
            return Composition("", self.name, input_tokens, output_tokens, declined=True)
        marked, native = insert_markers(text, spans)
        return Composition(marked, self.name, input_tokens, output_tokens, native_citations=native)

    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        what = f"{self.name} query rewrite ({self.model})"
        response = self._chat([{"role": "user", "content": rewrite_prompt(question, history)}],
                              REWRITE_MAX_OUTPUT_TOKENS, what)
        text, _ = self._texts(response, what)
        return read_rewrite(text, what)


def _source_number(source: Any) -> int | None:
    raw = getattr(source, "id", None)
    document = getattr(source, "document", None)
    if raw is None and isinstance(document, dict):
        raw = document.get("id")
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    return raw if isinstance(raw, int) else None


def cited_spans(text: str, offsets: dict[int, int], citations: Sequence[Any],
                sent: set[int]) -> list[tuple[int, int, tuple[int, ...]]]:
    """Cohere's citations as (start, end, passage numbers) in `text`, keeping only passages that were sent."""
    first = min(offsets.values(), default=0)
    spans: list[tuple[int, int, tuple[int, ...]]] = []
    for citation in citations:
        numbers = tuple(sorted({n for s in (getattr(citation, "sources", None) or [])
                                if (n := _source_number(s)) is not None and n in sent}))
        if not numbers:
            continue
        content_index = getattr(citation, "content_index", None)
        base = offsets.get(content_index, first) if isinstance(content_index, int) else first
        start, end = getattr(citation, "start", None), getattr(citation, "end", None)
        cited = getattr(citation, "text", None)
        if isinstance(start, int) and isinstance(end, int) and 0 <= base + start < base + end <= len(text) and (
                not cited or text[base + start:base + end] == cited):
            spans.append((base + start, base + end, numbers))
            continue
        if not isinstance(cited, str) or not cited:
            continue
        # Offsets that do not match the text (another unit, another content item): find the cited text.
        near = max(0, base + (start if isinstance(start, int) else 0) - len(cited))
        found = text.find(cited, near)
        found = found if found >= 0 else text.find(cited)
        if found >= 0:
            spans.append((found, found + len(cited), numbers))
    return sorted(spans)


def insert_markers(text: str, spans: Sequence[tuple[int, int, tuple[int, ...]]]
                   ) -> tuple[str, list[tuple[int, int, tuple[int, ...]]]]:
    """Put " [n]" markers where cited spans end; return the text and the spans' positions in it."""
    at: dict[int, list[int]] = {}
    for _, end, numbers in spans:
        wanted = at.setdefault(end, [])
        wanted.extend(n for n in numbers if n not in wanted)
    inserted: list[tuple[int, int]] = []  # (position in the original text, length inserted)
    pieces: list[str] = []
    previous = 0
    for position in sorted(at):
        # The model may already have written the marker there; do not repeat it.
        run = MARKER_RUN.match(text, position)
        present = {int(n) for m in MARKER.finditer(run.group(0)) for n in m.group(1).split(",")} if run else set()
        missing = [n for n in at[position] if n not in present]
        if not missing:
            continue
        marker = " " + "".join(f"[{n}]" for n in missing)
        pieces.extend((text[previous:position], marker))
        inserted.append((position, len(marker)))
        previous = position
    pieces.append(text[previous:])

    def shifted(position: int, *, inclusive: bool) -> int:
        return position + sum(length for at_, length in inserted if at_ < position or (inclusive and at_ == position))

    native = [(shifted(start, inclusive=True), shifted(end, inclusive=False), numbers) for start, end, numbers in spans]
    return "".join(pieces), native
