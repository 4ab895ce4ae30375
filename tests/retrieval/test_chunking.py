from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connectors.parsing import Section
from retrieval.chunking import ChunkingConfig, chunk_sections, merge_section_text, split_sentences


def words(texts):
    return [len(t.split()) for t in texts]


def test_sentences_split_on_punctuation_but_not_abbreviations_or_decimals():
    text = "Dr. Smith approved v2.5 of the plan, e.g. the budget. It ships in Q3! Does it? Yes.\nNext line here"
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == [
        "Dr. Smith approved v2.5 of the plan, e.g. the budget.", "It ships in Q3!", "Does it?", "Yes.",
        "Next line here",
    ]


def test_chunks_are_token_bounded_carry_title_and_headings_and_never_split_sentences():
    sentences = [f"Sentence number {n} explains rule {n} of the expense policy in detail." for n in range(40)]
    sections = [Section(("Expenses", "Meals"), " ".join(sentences[:25])), Section(("Expenses", "Taxis"),
                                                                                  " ".join(sentences[25:]))]
    chunks = chunk_sections("doc", "Expense policy", sections, words, ChunkingConfig(max_tokens=40, overlap_tokens=12))
    assert len(chunks) > 4
    for chunk in chunks:
        assert len(chunk.text.split()) <= 40
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith("detail.")
        assert chunk.embedding_input("Expense policy").startswith("Expense policy > Expenses > ")
    assert {c.heading_path for c in chunks} == {("Expenses", "Meals"), ("Expenses", "Taxis")}
    # no chunk straddles two sections
    assert all(("Meals" in c.heading_path) == (int(re.search(r"\d+", c.text).group()) < 25) for c in chunks)
    meals = [c for c in chunks if c.section_ordinal == 0]
    assert meals[1].section_start < meals[0].section_end, "consecutive chunks overlap"


def test_a_sentence_longer_than_a_chunk_is_cut_between_words():
    long_sentence = " ".join(f"word{n}" for n in range(100))
    chunks = chunk_sections("doc", "", [Section((), long_sentence)], words, ChunkingConfig(max_tokens=30,
                                                                                          overlap_tokens=0))
    assert all(len(c.text.split()) <= 30 for c in chunks)
    assert " ".join(c.text for c in chunks) == long_sentence


def test_content_hash_changes_with_title_and_text_only():
    section = [Section(("A",), "One sentence here.")]
    first = chunk_sections("doc", "Title", section, words, ChunkingConfig())[0]
    same = chunk_sections("other-doc", "Title", section, words, ChunkingConfig())[0]
    renamed = chunk_sections("doc", "New title", section, words, ChunkingConfig())[0]
    assert first.content_hash == same.content_hash != renamed.content_hash


sentence = st.builds(
    lambda ws, end: " ".join(ws).capitalize() + end,
    st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "policy", "laptop", "vpn", "leave", "budget", "42",
                              "3.5"]), min_size=1,
             max_size=30),
    st.sampled_from([".", "!", "?"]),
)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(sentence, min_size=1, max_size=40), st.integers(16, 60), st.integers(0, 7))
# Prose whose next sentence reads like a numbered list item ("42."): the space before it is not a line break.
@example(sentences=[" ".join(["alpha"] * 26).capitalize() + ".", "42.", "Alpha."], max_tokens=26, overlap=0)
def test_chunks_cover_the_section_and_merge_back_exactly(sentences, max_tokens, overlap):
    text = " ".join(sentences)
    chunks = chunk_sections("d", "T", [Section(("H",), text)], words,
                            ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap))
    assert merge_section_text([(c.text, c.section_start, c.section_end) for c in chunks]) == text
    for chunk in chunks:
        assert text[chunk.section_start:chunk.section_end] == chunk.text
        assert len(chunk.text.split()) <= max_tokens


TABLE_HEADER = "| Tenure | Days of leave |\n| --- | --- |"


def test_a_table_longer_than_a_chunk_is_cut_by_rows_and_every_piece_repeats_the_header():
    rows = [f"| {n} to {n + 1} years | {15 + n} days, plus {n} carried over |" for n in range(30)]
    text = "Leave grows with tenure.\n\n" + TABLE_HEADER + "\n" + "\n".join(rows) + "\n\nAsk HR for details."
    chunks = chunk_sections("d", "PTO", [Section(("Leave",), text)], words, ChunkingConfig(max_tokens=60,
                                                                                          overlap_tokens=10))
    pieces = [c for c in chunks if "| --- |" in c.text]
    assert len(pieces) > 3
    seen_rows = []
    for piece in pieces:
        lines = piece.text.split("\n")
        assert "\n".join(lines[:2]) == TABLE_HEADER and len(lines) > 2
        assert all(line in rows for line in lines[2:])
        assert len(piece.text.split()) <= 60
        seen_rows += lines[2:]
    assert seen_rows == rows, "every row once, in order"
    assert chunks[0].text == "Leave grows with tenure." and chunks[-1].text == "Ask HR for details."
    assert merge_section_text([(c.text, c.section_start, c.section_end) for c in chunks]) == text


def test_a_table_that_fits_is_never_split_from_its_header_and_code_that_fits_stays_whole():
    table = TABLE_HEADER + "\n| 0 to 3 years | 15 days |\n| 3 to 6 years | 20 days |"
    code = "```bash\nworkday leave --days 2\n\nworkday leave --cancel\n```"
    filler = " ".join(f"Sentence {n} is about leave." for n in range(6))
    text = f"{filler}\n\n{table}\n\n{filler}\n\n{code}\n\nDone."
    chunks = chunk_sections("d", "", [Section((), text)], words, ChunkingConfig(max_tokens=40, overlap_tokens=0))
    assert [c.text for c in chunks if "|" in c.text] and all(table in c.text for c in chunks if "|" in c.text)
    assert all(code in c.text for c in chunks if "workday" in c.text)
    for chunk in chunks:
        assert text[chunk.section_start:chunk.section_end] == chunk.text


def test_a_code_block_longer_than_a_chunk_is_cut_by_lines_and_each_piece_fenced_again():
    lines = [f"echo step {n} of the failover" for n in range(40)]
    for fence in ("```bash", "```"):
        code = fence + "\n" + "\n".join(lines) + "\n```"
        text = f"Run this:\n\n{code}\n\nThen verify."
        chunks = chunk_sections("d", "", [Section((), text)], words, ChunkingConfig(max_tokens=50, overlap_tokens=5))
        pieces = [c.text for c in chunks if "echo" in c.text]
        assert len(pieces) > 2
        body = []
        for piece in pieces:
            piece_lines = piece.split("\n")
            assert piece_lines[0] == fence and piece_lines[-1] == "```"
            body += piece_lines[1:-1]
        assert body == lines
        assert merge_section_text([(c.text, c.section_start, c.section_end) for c in chunks]) == text


def test_table_rows_and_list_items_are_units_and_separators_and_fences_are_not_sentences():
    text = ("Intro. Next sentence.\n- Item one. It has two sentences.\n1. Numbered. Item.\n"
            "| Plan. Name | Cost |\n| --- | ---: |\n| Basic. Tier | $5 |\n\n```\nprint('a. B')\n```")
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Intro.", "Next sentence.", "- Item one. It has two sentences.", "1. Numbered. Item.",
        "| Plan. Name | Cost |", "| Basic. Tier | $5 |", "print('a. B')",
    ]


def test_a_section_of_paragraphs_lists_tables_and_code_merges_back_exactly():
    paragraph = " ".join(f"Sentence {n} explains the policy." for n in range(12))
    table = TABLE_HEADER + "\n" + "\n".join(f"| {n} years | {n + 15} days |" for n in range(25))
    items = "\n".join(f"- Item {n} of the checklist." for n in range(10))
    code = "```\n" + "\n".join(f"run step {n}" for n in range(30)) + "\n```"
    text = "\n\n".join([paragraph, table, items, code, paragraph])
    for overlap in (0, 8):
        chunks = chunk_sections("d", "", [Section((), text)], words, ChunkingConfig(max_tokens=40,
                                                                                   overlap_tokens=overlap))
        assert merge_section_text([(c.text, c.section_start, c.section_end) for c in chunks]) == text
