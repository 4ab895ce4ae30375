"""Text no reader sees: the one definition both the indexer and every surface strip; heading anchors."""

from __future__ import annotations

import re

# Characters a reader never sees but a search index, a language model or a copy-paste does: zero-width spaces,
# the word joiner and invisible operators, BOMs inside text, the soft hyphen, bidi controls (which reorder what
# is displayed) and Unicode tag characters (which can spell out a whole instruction no one sees).
_HIDDEN = dict.fromkeys([
    0x00AD, 0x061C, 0x200B, 0x200E, 0x200F, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF,
    *range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0xE0000, 0xE0080),
])
# The zero-width non-joiner and joiner: emoji sequences and some scripts need them, and they can also split a
# word so that a filter misses it.
_JOINERS = dict.fromkeys([0x200C, 0x200D])
_HIDDEN_AND_JOINERS = {**_HIDDEN, **_JOINERS}


def remove_hidden_characters(text: str, *, keep_joiners: bool = False) -> str:
    """`text` without the characters no reader sees; everything visible is kept.

    Indexed text loses the joiners too (a word split by one must still be found); text shown may keep them.
    """
    return text.translate(_HIDDEN if keep_joiners else _HIDDEN_AND_JOINERS)


def heading_anchor(heading: str) -> str:
    """GitHub/Markdown-style anchor for a heading, for deep links into a section."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r"\s+", "-", slug)
