"""The prompts sent to every LLM provider, and the reading of their replies; nothing provider-specific.

Retrieved text is data, never instructions: quoted passages sit inside a <passages> block whose delimiters
cannot be forged from inside a passage (look-alikes are neutralised), and the system prompt
(prompts/answer_v1.system.txt) says that instructions inside them must be ignored. The templates in
answers/prompts/ carry the version that answers record (answers.composers.PROMPT_VERSION).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template

from answers.types import ComposerError, Passage, Turn

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
ANSWER_SYSTEM_PROMPT = "answer_v1.system"
ANSWER_USER_PROMPT = "answer_v1.user"
REWRITE_PROMPT = "rewrite_v1"

REWRITE_MAX_OUTPUT_TOKENS = 64
MAX_REWRITE_CHARS = 500
# A passage cut to fit the token budget keeps at least this much text, or is left out.
MIN_PASSAGE_CHARS = 200

# A model that finds no answer in the passages replies NOT_FOUND: a decline, not a failure.
_NOT_FOUND = re.compile(r"^\W*NOT_FOUND\b")
MARKER = re.compile(r"\s*[\[【](\d{1,3}(?:\s*,\s*\d{1,3})*)[\]】]")
MARKER_RUN = re.compile(r"(?:\s*[\[【]\d{1,3}(?:\s*,\s*\d{1,3})*[\]】])+")
# What retrieved text could use to open or close one of our prompt delimiters, in plain, full-width or
# HTML-escaped form: <passage, </passages, ＜/passage, &lt;/passage, &#60;passage, <conversation, ...
_DELIMITER_LOOKALIKE = re.compile(
    r"(?:<|＜|&lt;?|&#0*60;?|&#x0*3c;?)(\s*/?\s*(?:passages?|conversation|follow_up)\b)", re.IGNORECASE,
)


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
    return MARKER.sub("", text).strip()


def is_not_found(reply: str) -> bool:
    return bool(_NOT_FOUND.match(reply))


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
