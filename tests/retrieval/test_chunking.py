from __future__ import annotations

import re

from hypothesis import given
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
def test_chunks_cover_the_section_and_merge_back_exactly(sentences, max_tokens, overlap):
    text = " ".join(sentences)
    chunks = chunk_sections("d", "T", [Section(("H",), text)], words,
                            ChunkingConfig(max_tokens=max_tokens, overlap_tokens=overlap))
    assert merge_section_text([(c.text, c.section_start, c.section_end) for c in chunks]) == text
    for chunk in chunks:
        assert text[chunk.section_start:chunk.section_end] == chunk.text
        assert len(chunk.text.split()) <= max_tokens
