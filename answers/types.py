"""Values the answer pipeline passes between retrieval, reranking, composing and citation checking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from search.types import SearchHit


@dataclass(frozen=True)
class Passage:
    """A retrieved passage as shown to a composer: numbered from 1, in the order given."""

    number: int
    hit: SearchHit
    text: str

    @property
    def title(self) -> str:
        return self.hit.title


@dataclass(frozen=True)
class Turn:
    """An earlier question and answer in the same conversation.

    `search_query` is what that question was resolved to and searched for (itself a follow-up's rewrite, perhaps),
    and `sources` the titles and section headings its answer cited: the conversation's topic at that turn.
    """

    question: str
    answer: str
    search_query: str = ""
    sources: tuple[str, ...] = ()


@dataclass
class Composition:
    """A composer's raw answer: text whose [n] markers refer to Passage.number."""

    text: str
    composer: str
    input_tokens: int = 0
    output_tokens: int = 0
    # The composer itself judged that the passages do not answer the question.
    declined: bool = False
    # Citations a provider returned natively, as (answer text span start, end, passage numbers).
    native_citations: list[tuple[int, int, tuple[int, ...]]] = field(default_factory=list)


class ComposerError(Exception):
    """A provider call failed (timeout, HTTP error, malformed reply); the pipeline falls back to extractive."""


class Composer(Protocol):
    name: str

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        ...
