"""Answer units: the pieces of a chunk the answer scorer ranks, and the exact strings it embeds for them.

Indexing stores a vector for each string (search/unit_vectors.py) and the scorer looks them up by the string, so
the two stay in step through embedding_texts alone.
"""

from __future__ import annotations

import re

from retrieval.chunking import split_sentences


def unit_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the units of a chunk's text: its sentences that hold a word."""
    return [(start, end) for start, end in split_sentences(text) if re.search(r"\w", text[start:end])]


def embedding_texts(title: str, heading_path: tuple[str, ...], text: str) -> list[str]:
    """The strings the scorer embeds for a chunk, one per unit_spans span, in order.

    A unit is embedded with its title and headings: "15 days" alone says nothing.
    """
    context = " > ".join(part for part in (title, *heading_path) if part)
    return [f"{context}: {text[start:end]}" if context else text[start:end] for start, end in unit_spans(text)]
