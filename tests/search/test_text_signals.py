"""What is read from text at index time: identifiers kept whole, and a document's stated version."""

from __future__ import annotations

from datetime import date

import pytest

from search.analysis import identifiers
from search.versions import (
    VersionInfo,
    asks_for_this_version,
    demoted,
    effective_date,
    stated_version,
    successor,
    supersedes,
    title_family,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("Order NA-4471-B, not NA-4471-C.", ["na-4471-b", "na-4471-c"]),
    ("See INC-2291 and INC-2219.", ["inc-2291", "inc-2219"]),
    ("Set max_retries (maxRetries in the JS client).", ["max_retries", "maxretries"]),
    ("Firmware K2-FW-3.4.1 fixes it.", ["k2-fw-3.4.1"]),
    ("Part NA\u20114471\u2013B", ["na-4471-b"]),  # any dash is a hyphen
    ("SKU12345 and db.pool_size", ["sku12345", "db.pool_size"]),
])
def test_identifiers_are_found_whole_and_lowercased(text, expected):
    assert identifiers(text) == expected


@pytest.mark.parametrize("text", [
    "On 2026-01-01 at 10am the 4th floor", "a well-known e-mail", "version 3.4.1", "24h or 5kg", "__init__",
    "a 30-minute call", "FleetView and PowerDock",
])
def test_dates_quantities_and_plain_words_are_not_identifiers(text):
    assert identifiers(text) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Effective: 2026-01-01", date(2026, 1, 1)),
    ("Effective date: January 1, 2026", date(2026, 1, 1)),
    ("**Effective from** 1st March 2025.", date(2025, 3, 1)),
    ("This guide is valid from Sept. 3, 2025.", date(2025, 9, 3)),
    ("Changes take effect immediately.", None),
    ("Effective: 2026-02-30", None),
])
def test_the_stated_effective_date(text, expected):
    assert effective_date(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Supersedes: Travel Policy 2025", ("travel policy 2025",)),
    ("**Supersedes:** Travel Policy 2024; Per Diem Table (dated 2023)", ("travel policy 2024", "per diem table")),
    ("This policy replaces the Travel Policy 2025.", ("travel policy 2025",)),
    ('This document supersedes "Expense Guide v3" from now on.', ("expense guide v3",)),
    ("The new laptop replaces the old one.", ()),
    # The list ends with its sentence: what follows on the line is about something else.
    ("Supersedes: Benefits Overview 2025. Sections not repeated here carry over from 2025.",
     ("benefits overview 2025",)),
    ("Supersedes: Deploy Guide v1.2. See the changelog.", ("deploy guide v1 2",)),
])
def test_what_a_document_says_it_supersedes(text, expected):
    assert supersedes(text) == expected


def test_a_document_never_supersedes_itself_and_only_its_opening_counts():
    assert stated_version("Travel Policy 2026", "Supersedes: Travel Policy 2026; Travel Policy 2025") == (
        None, ("travel policy 2025",))
    late = "x" * 5000 + " Effective: 2020-01-01. Supersedes: Old Thing 2019"
    assert stated_version("Doc", late) == (None, ())


def test_title_families_drop_years_and_versions():
    assert title_family("Travel Policy 2025") == title_family("Travel policy (2026)") == "travel policy"
    assert title_family("Expense Guide v3") == title_family("Expense Guide, Revision 4") == "expense guide"
    assert title_family("Security Handbook") == "security handbook"


def test_the_newest_superseding_candidate_is_the_successor():
    old = VersionInfo("a", "Travel Policy 2024", date(2024, 1, 1))
    named = VersionInfo("b", "Travel Policy 2025", date(2025, 1, 1), ("travel policy 2024",))
    later = VersionInfo("c", "Travel Policy 2026", date(2026, 1, 1))
    undated = VersionInfo("d", "Travel Policy 2027")
    other = VersionInfo("e", "Expense Guide 2030", date(2030, 1, 1))
    assert successor(old, [old, named, later, undated, other]) == later
    assert successor(later, [old, named, later, undated]) is None
    assert successor(VersionInfo("f", "Travel Policy 2023"), [named]) is None  # undated: only an explicit claim
    assert successor(VersionInfo("g", "Travel Policy 2024"), [named]) == named


def test_a_query_naming_the_old_edition_wants_it():
    assert asks_for_this_version("what was the 2025 per diem", "Travel Policy 2025", "Travel Policy 2026")
    assert not asks_for_this_version("what is the per diem", "Travel Policy 2025", "Travel Policy 2026")
    assert demoted(1.0) < 1.0 and demoted(-0.5) < -0.5
