"""The management commands, run as a person would run them."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db

@pytest.fixture
def dataset(tiny_beir_dataset):
    return tiny_beir_dataset


@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_evaluate_prints_the_metrics_as_one_json_object(dataset, backend, mode, capsys, isolated_index, request):
    if backend == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    call_command("evaluate", dataset=dataset, backend=backend, mode=mode, json=True)
    result = json.loads(capsys.readouterr().out)
    assert {"ndcg@10", "recall@100", "mrr@10"} <= result.keys()
    assert result["queries"] == 2  # only queries that have judgements
    assert result["ndcg@10"] == result["mrr@10"] == result["recall@100"] == 1.0


def test_evaluate_rejects_a_folder_that_is_not_a_beir_dataset(tmp_path):
    with pytest.raises(CommandError, match=r"corpus\.jsonl is missing"):
        call_command("evaluate", dataset=tmp_path, json=True)


def test_ingest_then_search_json(tmp_path, capsys, isolated_index):
    (tmp_path / "kitchen.md").write_text("# Kitchen\n\nThe espresso machine is descaled every Friday.\n")
    (tmp_path / "parking.txt").write_text("Visitor parking is on level minus two.\n")
    call_command("ingest", str(tmp_path), json=True, no_progress=True, public=True)
    summary = json.loads(capsys.readouterr().out)[0]
    assert (summary["indexed"], summary["failed"], summary["embedded"]) == (2, 0, 2)
    call_command("search", "when is the coffee machine cleaned", json=True, limit=1)
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert hits[0]["title"] == "Kitchen" and "descaled every Friday" in hits[0]["text"]

    call_command("ingest", str(tmp_path), json=True, no_progress=True, public=True)
    again = json.loads(capsys.readouterr().out)[0]
    assert (again["indexed"], again["unchanged"], again["embedded"]) == (0, 2, 0)


def test_ingest_of_a_missing_path_is_a_clear_error():
    with pytest.raises(CommandError, match="no such file or directory"):
        call_command("ingest", "/nonexistent/citewise", no_progress=True)


def test_search_against_an_unreachable_elasticsearch_is_a_clear_error(settings):
    from retrieval import services

    settings.CITEWISE = settings.CITEWISE.replace(elasticsearch_url="http://127.0.0.1:9", elasticsearch_timeout_s=2)
    services._backends.clear()
    try:
        with pytest.raises(CommandError, match=r"Elasticsearch at http://127\.0\.0\.1:9 failed"):
            call_command("search", "anything", backend="elasticsearch", index=f"down-{uuid.uuid4().hex[:6]}")
    finally:
        services._backends.clear()
