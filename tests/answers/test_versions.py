"""Superseded editions and document dates, through ingestion and the answer pipeline, on both backends: a folder of
Markdown files with an ACL manifest, read by the filesystem connector."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from answers.services import ask
from connectors import services as connector_services
from connectors.models import Document

pytestmark = pytest.mark.django_db

FINANCE = frozenset({"group:finance"})
EVERYONE = frozenset()
FILES = {
    "policies/travel-2025.md": "# Travel Policy 2025\n\nEffective date: January 1, 2025\n\n## Per diem\n\n"
                               "The per diem for meals on business trips is 45 euros a day.\n",
    "policies/travel-2026.md": "# Travel Policy 2026\n\nEffective: 2026-01-01\n\nThis policy replaces the Travel "
                               "Policy 2025.\n\n## Per diem\n\nThe per diem for meals on business trips is 52 euros "
                               "a day.\n",
    "handbook/parking.md": "# Parking\n\nParking passes for the garage are issued by reception.\n",
    "handbook/lockers.md": "# Lockers\n\nDay lockers on the ground floor open with your badge; they are emptied every "
                           "Friday at 18:00.\n",
}
PARKING_MODIFIED = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["embedded", "elasticsearch"])
def corpus(request, tmp_path, settings, isolated_index) -> Path:
    """The folder ingested into the test's main index on each backend; the 2026 policy is finance's alone."""
    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=request.param, answer_cache_ttl_s=0)
    root = tmp_path / "corpus"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    os.utime(root / "handbook/parking.md", (PARKING_MODIFIED.timestamp(), PARKING_MODIFIED.timestamp()))
    (root / ".citewise-acl.json").write_text(json.dumps({"rules": [
        {"paths": ["*"], "public": True}, {"paths": ["policies/travel-2026.md"], "principals": ["group:finance"]},
    ]}))
    [report] = connector_services.ingest_paths([root])
    assert report.indexed == len(FILES), report.errors
    return root


def test_ingestion_records_the_stated_effective_date_and_what_a_document_replaces(corpus):
    stored = {d.external_id: d for d in Document.objects.all()}
    assert stored["policies/travel-2026.md"].effective_date == date(2026, 1, 1)
    assert stored["policies/travel-2026.md"].supersedes == ["travel policy 2025"]
    assert stored["policies/travel-2025.md"].effective_date == date(2025, 1, 1)
    assert stored["policies/travel-2025.md"].supersedes == []
    assert stored["handbook/parking.md"].effective_date is None


def test_an_answer_from_a_superseded_edition_says_which_readable_edition_replaced_it(corpus):
    result = ask("What was the per diem for meals in the Travel Policy 2025?", principals=FINANCE)
    assert "45 euros" in result.text
    old = next(c for c in result.citations if c.title == "Travel Policy 2025")
    assert old.superseded_by == "Travel Policy 2026"
    assert result.text.endswith(f"Note: [{old.number}] is from Travel Policy 2025, superseded by Travel Policy 2026.")
    assert old.as_dict()["date_label"] == "effective 2025-01-01"


def test_the_current_edition_comes_first_for_an_undated_question(corpus):
    result = ask("What is the per diem for meals on business trips?", principals=FINANCE)
    assert result.citations[0].title == "Travel Policy 2026" and "52 euros" in result.text
    assert result.citations[0].superseded_by == "" and result.citations[0].effective_date == date(2026, 1, 1)


def test_a_successor_the_asker_cannot_read_is_never_mentioned(corpus):
    result = ask("What was the per diem for meals in the Travel Policy 2025?", principals=EVERYONE)
    assert "45 euros" in result.text
    assert "2026" not in result.text and "superseded" not in result.text.lower()
    assert all(c.superseded_by == "" for c in [*result.citations, *result.nearest])
    assert "Travel Policy 2026" not in json.dumps(result.as_dict())


def test_a_citation_shows_the_sources_own_modified_time_when_no_date_is_stated(corpus):
    result = ask("Who issues parking passes for the garage?", principals=EVERYONE)
    [parking] = [c for c in result.citations if c.title == "Parking"]
    assert parking.effective_date is None and parking.modified_at == PARKING_MODIFIED
    assert parking.as_dict()["date_label"] == "modified 2024-05-06"


def test_an_old_edition_is_not_quoted_beside_its_newer_edition(corpus):
    result = ask("per diem for meals on business trips?", principals=FINANCE)
    assert "52 euros" in result.text and "45 euros" not in result.text
    assert all(c.title != "Travel Policy 2025" for c in result.citations)
    # Asked for by name, the old edition is still what answers.
    named = ask("What was the per diem for meals in the Travel Policy 2025?", principals=FINANCE)
    assert "45 euros" in named.text


def test_each_part_of_a_two_part_question_is_searched_and_answered_from_its_own_document(corpus):
    result = ask("who issues garage parking passes and when are the day lockers emptied?", principals=EVERYONE)
    assert not result.refused
    assert "reception" in result.text and "Friday at 18:00" in result.text
    assert {c.title for c in result.citations} == {"Parking", "Lockers"}
