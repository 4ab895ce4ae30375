"""LLM composers: Cohere chat with documents (native citations) and any OpenAI-compatible chat endpoint.

Both answer from the numbered passages with [n] markers that refer to Passage.number, and raise
ComposerError on any failure (timeout, HTTP error after bounded retries, unreadable or empty reply) so
that the pipeline falls back to the extractive composer. A reply of NOT_FOUND is a decline, not a failure.

Retrieved text is data, never instructions: the OpenAI-compatible prompt quotes passages inside a
<passages> block whose delimiters cannot be forged from inside a passage (look-alikes are neutralised),
Cohere receives them as `documents`, and the system prompt (prompts/answer_v1.system.txt) says that
instructions inside them must be ignored.

Retries are ours, not the SDKs' (both SDKs are built with max_retries=0): the SDKs honour Retry-After
for up to 60 s (cohere) or 120 s (openai), and the openai SDK also retries timeouts, which would multiply
the time a person waits. Here a call is retried at most LLM_MAX_RETRIES times on 408/409/429/5xx and
connection failures, after Retry-After when the server sends one (giving up at once when it asks for
more than MAX_RETRY_WAIT_S) or else exponential backoff; a timeout is not retried.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any, TypeVar


from answers.types import ComposerError, Composition, Passage, Turn
from core.config import current

logger = logging.getLogger("citewise.answering.llm")

PROMPTS_DIR = Path(__file__).parent / "prompts"
ANSWER_SYSTEM_PROMPT = "answer_v1.system"
ANSWER_USER_PROMPT = "answer_v1.user"
REWRITE_PROMPT = "rewrite_v1"

NOT_FOUND = "NOT_FOUND"
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx
MAX_RETRY_WAIT_S = 10.0
INITIAL_BACKOFF_S = 0.5
REWRITE_MAX_OUTPUT_TOKENS = 64
MAX_REWRITE_CHARS = 500
# A passage cut to fit the token budget keeps at least this much text, or is left out.
MIN_PASSAGE_CHARS = 200

_NOT_FOUND = re.compile(r"^\W*NOT_FOUND\b")
_MARKER = re.compile(r"\s*[\[【](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]】]")
_MARKER_RUN = re.compile(r"(?:\s*[\[【]\d{1,3}(?:\s*,\s*\d{1,3})*[\]】])+")
# What retrieved text could use to open or close one of our prompt delimiters, in plain, full-width or
# HTML-escaped form: <passage, </passages, ＜/passage, &lt;/passage, &#60;passage, <conversation, ...
_DELIMITER_LOOKALIKE = re.compile(
    r"(?:<|＜|&lt;?|&#0*60;?|&#x0*3c;?)(\s*/?\s*(?:passages?|conversation|follow_up)\b)", re.IGNORECASE,
)

T = TypeVar("T")


# Prompt building ---------------------------------------------------------------------------------


@lru_cache
def load_prompt(name: str) -> str:
    return (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8")


def estimate_tokens(text: str) -> int:
    """About four characters a token (tiktoken is not a dependency, and would fetch its tables)."""
    return math.ceil(len(text) / 4)


def quote_data(text: str) -> str:
    """Retrieved text with every look-alike of our delimiters defused, so it cannot leave its block."""
    return _DELIMITER_LOOKALIKE.sub(r"‹\1", text)


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text).strip()


def passage_context(passage: Passage) -> str:
    """The title and section headings, without repeating a title that heads the heading path."""
    parts = [passage.title] if passage.title else []
    for heading in passage.hit.heading_path:
        if heading and (not parts or heading != parts[-1]):
            parts.append(heading)
    return " > ".join(parts)


def render_passage(passage: Passage, text: str) -> str:
    return (f'<passage number="{passage.number}">\n'
            f"Source: {quote_data(passage_context(passage))}\n"
            f"{quote_data(text)}\n"
            "</passage>")


def passages_block(rendered: Sequence[str]) -> str:
    return "<passages>\n" + "\n".join(rendered) + "\n</passages>"


def fit_passages(passages: Sequence[Passage], budget: int,
                 cost: Callable[[Passage, str], int]) -> list[tuple[Passage, str]]:
    """Passages in order, with the text to send, while their estimated tokens fit the budget.

    The first passage alone may be too long: then its beginning is sent.
    """
    chosen: list[tuple[Passage, str]] = []
    for passage in passages:
        needed = cost(passage, passage.text)
        if needed <= budget:
            chosen.append((passage, passage.text))
            budget -= needed
            continue
        if not chosen:
            room = (budget - cost(passage, "")) * 4
            if room >= MIN_PASSAGE_CHARS:
                cut = passage.text[:room]
                cut = cut.rsplit(" ", 1)[0] if " " in cut[room // 2:] else cut
                chosen.append((passage, cut + " …"))
        break
    return chosen


def history_messages(history: Sequence[Turn]) -> list[dict[str, str]]:
    """Earlier turns as prior chat messages; their [n] markers referred to other passages, so they go."""
    messages: list[dict[str, str]] = []
    for turn in history:
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": strip_markers(turn.answer) or "(no answer)"})
    return messages


@dataclass(frozen=True)
class Prompt:
    system: str
    history: list[dict[str, str]]
    user: str
    passages: list[tuple[Passage, str]]  # what was sent: the passage and its (possibly cut) text

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, *self.history, {"role": "user", "content": self.user}]


def build_prompt(question: str, passages: Sequence[Passage], history: Sequence[Turn], *, max_input_tokens: int,
                 passages_inline: bool, passage_cost: Callable[[Passage, str], int]) -> Prompt:
    """System prompt, prior turns and the question, with as many passages as the input budget allows.

    With `passages_inline` the passages are quoted in a <passages> block of the user message (OpenAI);
    otherwise they travel separately as documents (Cohere) and the user message says so.
    """
    system = load_prompt(ANSWER_SYSTEM_PROMPT).strip()
    template = Template(load_prompt(ANSWER_USER_PROMPT).strip())
    placeholder = "" if passages_inline else (
        "The numbered passages are attached as documents; each document's id is its passage number.")
    bare_user = template.substitute(passages=placeholder, question=question)
    turns = list(history)
    prior = history_messages(turns)

    def fixed_cost() -> int:
        return estimate_tokens(system) + estimate_tokens(bare_user) + sum(estimate_tokens(m["content"]) + 4
                                                                           for m in prior)

    # Earlier turns may take at most half the budget; the oldest go first.
    while turns and fixed_cost() > max_input_tokens // 2:
        turns = turns[1:]
        prior = history_messages(turns)
    chosen = fit_passages(passages, max_input_tokens - fixed_cost() - 8, passage_cost)
    if not chosen:
        raise ComposerError(f"no passage fits the input budget of {max_input_tokens} tokens")
    user = template.substitute(
        passages=passages_block([render_passage(p, text) for p, text in chosen]) if passages_inline else placeholder,
        question=question)
    return Prompt(system, prior, user, chosen)


# Retries -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """How a provider call failed: what to say, and whether (and after how long) to try again."""

    message: str
    retryable: bool = False
    retry_after_s: float | None = None


def parse_retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds to wait from Retry-After-Ms, or Retry-After as seconds or an HTTP date; None if absent."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def status_failure(status: int, body: Any, headers: Mapping[str, Any] | None) -> Failure:
    retryable = status in RETRYABLE_STATUS or status >= 500
    return Failure(f"HTTP {status}: {short(body)}", retryable, parse_retry_after(headers) if retryable else None)


def short(value: Any, limit: int = 200) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, default=str)
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def call_with_retries(call: Callable[[], T], *, describe: Callable[[Exception], Failure], max_retries: int,
                      what: str, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried at most `max_retries` times on retryable failures; ComposerError when it gives up."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes a ComposerError
            failure = describe(exc)
            attempts = f" (after {attempt + 1} attempts)" if attempt else ""
            if not failure.retryable or attempt >= max(0, max_retries):
                raise ComposerError(f"{what}: {failure.message}{attempts}") from exc
            if failure.retry_after_s is not None:
                if failure.retry_after_s > MAX_RETRY_WAIT_S:
                    raise ComposerError(f"{what}: {failure.message}; Retry-After {failure.retry_after_s:.0f} s is "
                                        f"longer than the {MAX_RETRY_WAIT_S:.0f} s this will wait{attempts}") from exc
                wait = failure.retry_after_s
            else:
                wait = min(INITIAL_BACKOFF_S * 2 ** attempt, MAX_RETRY_WAIT_S) * random.uniform(0.8, 1.0)
            attempt += 1
            logger.warning("%s: %s; retry %d of %d in %.2f s", what, failure.message, attempt, max_retries, wait)
            sleep(wait)


# Settings ----------------------------------------------------------------------------------------


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


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def rewrite_prompt(question: str, history: Sequence[Turn]) -> str:
    lines = []
    for turn in history:
        lines.append(f"User: {quote_data(turn.question)}")
        answer = quote_data(strip_markers(turn.answer))
        lines.append(f"Assistant: {answer[:600] + ' …' if len(answer) > 600 else answer}")
    return Template(load_prompt(REWRITE_PROMPT).strip()).substitute(
        conversation="\n".join(lines) or "(none)", question=quote_data(question))


def read_rewrite(text: str | None, what: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise ComposerError(f"{what}: empty rewrite")
    query = re.sub(r"^(?:standalone\s+)?(?:search\s+)?query\s*:\s*", "", lines[0], flags=re.IGNORECASE)
    query = query.strip().strip("\"'`“”‘’").strip()
    if not query:
        raise ComposerError(f"{what}: empty rewrite")
    return query[:MAX_REWRITE_CHARS]


# OpenAI-compatible -------------------------------------------------------------------------------


class OpenAICompatibleComposer:
    """Chat completions on any OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM ...)."""

    name = "openai"

    def __init__(self, *, base_url: str, api_key: str, model: str, limits: Limits) -> None:
        import openai

        self.model = model
        self.limits = limits
        # Local servers take no key, but the SDK insists on one.
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "no-key", timeout=limits.timeout_s,
                                     max_retries=0)

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

    def _complete(self, messages: list[dict[str, str]], max_tokens: int, what: str) -> tuple[str, int, int]:
        response = call_with_retries(
            lambda: self._client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_tokens,
                                                         temperature=0, timeout=self.limits.timeout_s),
            describe=self._describe, max_retries=self.limits.max_retries, what=what)
        try:
            choice = response.choices[0]
            content = choice.message.content
            finish_reason = getattr(choice, "finish_reason", None)
            usage = getattr(response, "usage", None)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            raise ComposerError(f"{what}: malformed reply ({type(exc).__name__}: {short(exc)})") from exc
        if not isinstance(content, str) or not content.strip():
            raise ComposerError(f"{what}: empty answer (finish_reason={finish_reason})")
        if finish_reason == "length":
            logger.warning("%s: the answer was cut at %d output tokens", what, max_tokens)
        return (content.strip(), _count(getattr(usage, "prompt_tokens", 0)),
                _count(getattr(usage, "completion_tokens", 0)))

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        prompt = build_prompt(question, passages, history, max_input_tokens=self.limits.max_input_tokens,
                              passages_inline=True,
                              passage_cost=lambda p, text: estimate_tokens(render_passage(p, text)) + 1)
        text, input_tokens, output_tokens = self._complete(prompt.messages(), self.limits.max_output_tokens,
                                                           f"{self.name} chat ({self.model})")
        if _NOT_FOUND.match(text):
            return Composition("", self.name, input_tokens, output_tokens, declined=True)
        return Composition(text, self.name, input_tokens, output_tokens)

    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        what = f"{self.name} query rewrite ({self.model})"
        text, _, _ = self._complete([{"role": "user", "content": rewrite_prompt(question, history)}],
                                    REWRITE_MAX_OUTPUT_TOKENS, what)
        return read_rewrite(text, what)


# Cohere ------------------------------------------------------------------------------------------


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
        self._client = cohere.ClientV2(api_key=api_key, base_url=base_url, timeout=limits.timeout_s, max_retries=0)

    @classmethod
    def from_settings(cls) -> CohereComposer:
        config = current()
        return cls(api_key=config.cohere_api_key, base_url=config.cohere_base_url,
                   model=config.cohere_chat_model, limits=Limits.from_settings())

    def _describe(self, exc: Exception) -> Failure:
        return describe_cohere_failure(exc, self.limits.timeout_s)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int, what: str,
              documents: list[dict[str, Any]] | None = None) -> Any:
        extra = {"documents": documents} if documents else {}
        return call_with_retries(
            lambda: self._client.chat(model=self.model, messages=messages, max_tokens=max_tokens, temperature=0,
                                      request_options={"timeout": self.limits.timeout_s, "max_retries": 0}, **extra),
            describe=self._describe, max_retries=self.limits.max_retries, what=what)

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
        return (_count(getattr(billed, "input_tokens", None)) or _count(getattr(tokens, "input_tokens", None)),
                _count(getattr(billed, "output_tokens", None)) or _count(getattr(tokens, "output_tokens", None)))

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
        if _NOT_FOUND.match(text):
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
    spans = []
    for citation in citations:
        numbers = tuple(sorted({n for s in (getattr(citation, "sources", None) or [])
                                if (n := _source_number(s)) is not None and n in sent}))
        if not numbers:
            continue
        base = offsets.get(getattr(citation, "content_index", None), first)
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
    pieces, previous = [], 0
    for position in sorted(at):
        # The model may already have written the marker there; do not repeat it.
        run = _MARKER_RUN.match(text, position)
        present = {int(n) for m in _MARKER.finditer(run.group(0)) for n in m.group(1).split(",")} if run else set()
        numbers = [n for n in at[position] if n not in present]
        if not numbers:
            continue
        marker = " " + "".join(f"[{n}]" for n in numbers)
        pieces.extend((text[previous:position], marker))
        inserted.append((position, len(marker)))
        previous = position
    pieces.append(text[previous:])

    def shifted(position: int, *, inclusive: bool) -> int:
        return position + sum(length for at_, length in inserted if at_ < position or (inclusive and at_ == position))

    native = [(shifted(start, inclusive=True), shifted(end, inclusive=False), numbers) for start, end, numbers in spans]
    return "".join(pieces), native


def rewrite_with_llm(question: str, history: Sequence[Turn]) -> str:
    """The follow-up as a standalone search query, by the configured LLM; ComposerError if that fails."""
    name = current().composer
    composers = {"openai": OpenAICompatibleComposer, "cohere": CohereComposer}
    if name not in composers:
        raise ComposerError(f"no LLM is configured to rewrite queries (COMPOSER={name!r})")
    return composers[name].from_settings().rewrite(question, history)
