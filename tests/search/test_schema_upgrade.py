"""Indices made before identifiers and versions were indexed are upgraded in place when next opened."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from retrieval import selectors
from retrieval.services import DocumentToIndex, index_documents
from search.backends import elastic
from search.types import SearchMode
from tests.search.test_backend_contract import TRAVEL_2025, doc

pytestmark = pytest.mark.django_db

PART = doc("stock-12", "Stock sheet 12", (("Stock sheet 12",), "Bin 12 holds NA-4471-B. Effective: 2026-02-01."))


def _upgraded_and_searchable(backend) -> None:
    import dataclasses

    dated = DocumentToIndex(dataclasses.replace(PART.document, effective_date=date(2026, 2, 1)), PART.sections)
    index_documents([dated, TRAVEL_2025], backend=backend)
    hits = selectors.search("NA-4471-B", principals=frozenset(), mode=SearchMode.HYBRID, backend=backend)
    assert hits[0].document_id == "stock-12" and hits[0].effective_date == date(2026, 2, 1)
    assert backend.get_document("stock-12", frozenset()).effective_date == date(2026, 2, 1)


def test_an_elasticsearch_index_of_schema_1_gains_the_new_fields(make_backend, embedder, monkeypatch):
    backend = make_backend("elasticsearch")
    old = elastic._mappings(embedder.model_name, embedder.dimensions)
    for name in elastic._SCHEMA_2_FIELDS:
        del old["properties"][name]
    old["_meta"]["schema_version"] = 1
    monkeypatch.setattr(elastic, "_mappings", lambda model, dimensions: old)
    backend.ensure_index(embedder.model_name, embedder.dimensions)
    monkeypatch.undo()
    assert "identifiers" not in backend.client.indices.get_mapping(index=backend.index_name).body[
        backend._physical_indices()[0]]["mappings"]["properties"]
    _upgraded_and_searchable(backend)
    mapping = next(iter(backend.client.indices.get_mapping(index=backend.index_name).body.values()))["mappings"]
    assert mapping["_meta"]["schema_version"] == elastic.SCHEMA_VERSION
    assert mapping["_meta"]["embedding_model"] == embedder.model_name
    assert set(elastic._SCHEMA_2_FIELDS) <= set(mapping["properties"])


def test_an_embedded_file_without_the_new_columns_gains_them(make_backend, embedder):
    backend = make_backend("embedded")
    backend.ensure_index(embedder.model_name, embedder.dimensions)
    path = backend.path
    backend.drop_connection()
    with sqlite3.connect(path) as connection:  # as files made before versions were read
        connection.execute("DROP INDEX documents_family")
        for column in ("effective_date", "title_key", "title_family", "supersedes"):
            connection.execute(f"ALTER TABLE documents DROP COLUMN {column}")
        connection.execute("DROP TABLE chunk_identifiers")
        connection.execute("DROP TABLE document_supersedes")
    _upgraded_and_searchable(backend)
