"""Answer units: chunk text split into sentences, table rows with their header, list items and code blocks."""

from __future__ import annotations

from retrieval.units import embedding_texts, split_blocks, split_units

PTO = """PTO accrues every pay period, so you earn a little with every paycheck.

| Years of service | Days per year | Hours accrued per pay period |
| --- | --- | --- |
| Less than 3 years | 15 days | 5.0 hours |
| 3 to 6 years | 20 days | 6.67 hours |
| More than 6 years | 25 days | 8.33 hours |

Your new rate starts in the first pay period after your work anniversary."""

# Chunk text as the parser wrote it before tables had a separator line: one "a | b | c" block per row.
LEGACY_PTO = """Your accrual rate depends on your length of service.

Years of service | Days per year | Hours accrued per pay period

Less than 3 years | 15 days | 5.0 hours

3 to 6 years | 20 days | 6.67 hours

More than 6 years | 25 days | 8.33 hours"""

ROLLBACK = """If a release misbehaves after the canary completes, roll back first and investigate later. You do not need \
approval to roll back, even during the freeze.

```
/rollback fleetview-api prod-us
```

This redeploys the previous stable image in a single step, without a canary, and usually completes in under four \
minutes."""

PASSWORD = """Policy owner: Security Engineering (Samir Haddad, CISO). Version 3.2, effective April 2025. Applies to: all \
employees, contractors and service accounts.

We do not force periodic password changes. You must change your password immediately, however, if:

1. you typed it into a page you are not sure was legitimate;
2. a security alert or the Security team tells you to;
3. you shared it with anyone, for any reason."""


def by_kind(text: str) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for unit in split_units(text):
        kinds.setdefault(unit.kind, []).append(unit.text)
    return kinds


def test_a_table_row_is_a_unit_with_its_header_and_a_small_table_is_one_too():
    units = by_kind(PTO)
    header = "| Years of service | Days per year | Hours accrued per pay period |\n| --- | --- | --- |\n"
    assert units["row"] == [header + "| Less than 3 years | 15 days | 5.0 hours |",
                            header + "| 3 to 6 years | 20 days | 6.67 hours |",
                            header + "| More than 6 years | 25 days | 8.33 hours |"]
    assert units["table"] == [header + "| Less than 3 years | 15 days | 5.0 hours |\n| 3 to 6 years | 20 days | "
                              "6.67 hours |\n| More than 6 years | 25 days | 8.33 hours |"]
    assert units["sentence"] == ["PTO accrues every pay period, so you earn a little with every paycheck.",
                                 "Your new rate starts in the first pay period after your work anniversary."]
    row = next(u for u in split_units(PTO) if u.kind == "row" and "20 days" in u.text)
    # Embedded as a statement: the header names each value.
    assert row.embedding_text == ("Years of service is 3 to 6 years, Days per year is 20 days, Hours accrued per pay "
                                  "period is 6.67 hours.")
    assert PTO[row.start:row.end] == "| 3 to 6 years | 20 days | 6.67 hours |"


def test_pipe_lines_without_a_separator_are_a_table_whose_first_line_is_the_header():
    [table] = [b for b in split_blocks(LEGACY_PTO) if b.kind == "table"]
    assert table.header_text(LEGACY_PTO) == "Years of service | Days per year | Hours accrued per pay period"
    assert len(table.parts) == 3
    rows = by_kind(LEGACY_PTO)["row"]
    assert rows[1] == ("| Years of service | Days per year | Hours accrued per pay period |\n| --- | --- | --- |\n"
                       "| 3 to 6 years | 20 days | 6.67 hours |")


def test_a_code_block_is_one_unit_whole():
    units = by_kind(ROLLBACK)
    assert units["code"] == ["```\n/rollback fleetview-api prod-us\n```"]
    [code] = [u for u in split_units(ROLLBACK) if u.kind == "code"]
    # Embedded with the sentence that says what it is for.
    assert code.embedding_text == ("You do not need approval to roll back, even during the freeze. "
                                   "/rollback fleetview-api prod-us")
    assert ROLLBACK[code.start:code.end] == "```\n/rollback fleetview-api prod-us\n```"
    assert units["sentence"][1] == "You do not need approval to roll back, even during the freeze."


def test_dependent_sentences_take_their_neighbour():
    text = "Hotels are booked in Navan. This is how we know where you are. Flights are economy."
    sentences = by_kind(text)["sentence"]
    assert sentences == ["Hotels are booked in Navan.",
                         "Hotels are booked in Navan. This is how we know where you are.",
                         "Flights are economy."]


def test_list_items_and_the_whole_list_carry_their_lead_in_for_embedding_and_the_lead_in_is_no_unit_alone():
    units = split_units(PASSWORD)
    items = [u for u in units if u.kind == "item"]
    assert [u.text for u in items] == ["1. you typed it into a page you are not sure was legitimate;",
                                       "2. a security alert or the Security team tells you to;",
                                       "3. you shared it with anyone, for any reason."]
    assert items[2].embedding_text == ("You must change your password immediately, however, if: you shared it with "
                                       "anyone, for any reason.")
    [whole] = [u for u in units if u.kind == "list"]
    assert whole.text.count("\n") == 2
    assert not any(u.kind == "sentence" and u.text.endswith("if:") for u in units)


def test_metadata_lines_are_marked():
    metadata = [u.text for u in split_units(PASSWORD) if u.metadata]
    assert metadata == ["Policy owner: Security Engineering (Samir Haddad, CISO).",
                        "Version 3.2, effective April 2025.",
                        "Applies to: all employees, contractors and service accounts."]
    assert not any(u.metadata for u in split_units("Austin office manager: Tessa Nguyen (#atx-office)."))


def test_a_heading_line_is_never_run_into_a_sentence():
    text = ("Rolling back\nIf a release misbehaves, roll back first and investigate later.\n"
            "This redeploys the previous stable image.")
    units = split_units(text)
    assert [b.kind for b in split_blocks(text)] == ["heading", "paragraph"]
    assert all("Rolling back" not in u.text for u in units)
    assert units[-1].text == ("If a release misbehaves, roll back first and investigate later.\n"
                              "This redeploys the previous stable image.")


def test_embedding_texts_put_title_and_headings_before_every_unit_in_unit_order():
    texts = embedding_texts("PTO Policy", ("How much PTO you earn",), PTO)
    units = split_units(PTO)
    assert len(texts) == len(units)
    assert texts[0] == "PTO Policy > How much PTO you earn: PTO accrues every pay period, so you earn a little with " \
                       "every paycheck."
    assert all(t == f"PTO Policy > How much PTO you earn: {u.embedding_text}" for t, u in zip(texts, units, strict=True))
    assert embedding_texts("", (), "Plain sentence.") == ["Plain sentence."]
    assert embedding_texts("T", (), "") == []


def test_a_chunk_starting_inside_a_table_has_rows_but_no_made_up_header():
    text = "| 3 to 6 years | 20 days |\n| More than 6 years | 25 days |\n\nYour new rate starts after your anniversary."
    [table] = [b for b in split_blocks(text) if b.kind == "table"]
    assert table.header is None and len(table.parts) == 2
    rows = by_kind(text)["row"]
    assert rows == ["| 3 to 6 years | 20 days |", "| More than 6 years | 25 days |"]
