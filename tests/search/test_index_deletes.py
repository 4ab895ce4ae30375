"""Deletes reach the index or fail loudly: a row goes only after the index confirms, drop() deletes by name."""

from __future__ import annotations

import pytest

from connectors import services
from connectors.models import Document
from retrieval import selectors
from retrieval.services import get_backend, index_documents
from search.types import SearchMode, SearchUnavailable
from tests.search.test_backend_contract import CORPUS

pytestmark = pytest.mark.django_db


def _bm25(query: str) -> set[str]:
    return {h.title for h in selectors.search(query, principals=frozenset(), mode=SearchMode.BM25, limit=20)}


def test_a_delete_elasticsearch_refuses_raises_and_keeps_the_row(tmp_path, settings, isolated_index,
                                                                   elasticsearch_node):
    """Reproduces issue 10 item 8: a bulk delete Elasticsearch refuses is ignored, the row is deleted anyway
    and the document stays searchable under its last ACL."""
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="elasticsearch")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "gym.md").write_text("# Gym\n\nThe rooftop gym opens at six in the morning.\n")
    (folder / "canteen.md").write_text("# Canteen\n\nThe canteen serves lasagne on Thursdays.\n")
    source = services.ensure_source("filesystem", folder, config={"public": True})
    services.sync_source(source)
    backend = get_backend()
    physical = backend.index_info().physical_name
    (folder / "canteen.md").unlink()

    backend.client.indices.put_settings(index=physical, settings={"index.blocks.write": True})
    try:
        with pytest.raises(SearchUnavailable, match="delete"):
            services.sync_source(source)
        # Nothing half-done: the row is kept, so the next sync deletes it again.
        assert Document.objects.filter(source=source, external_id="canteen.md").exists()
    finally:
        backend.client.indices.put_settings(index=physical, settings={"index.blocks.write": None})

    assert services.sync_source(source).deleted == 1
    assert not Document.objects.filter(source=source, external_id="canteen.md").exists()
    assert _bm25("lasagne canteen") == set()
    assert _bm25("rooftop gym") == {"Gym"}


def test_deleting_a_document_the_index_no_longer_has_is_not_an_error(backend):
    """A chunk already gone (deleted by an earlier, interrupted call) is what a delete wants: no error."""
    index_documents(CORPUS[:1], backend=backend)
    backend.delete_documents(["travel"])
    backend.delete_documents(["travel", "never-indexed"])
    assert backend.document_ids() == set()


def test_drop_deletes_every_version_by_name_on_a_cluster_that_refuses_wildcards(make_backend, embedder,
                                                                                 elasticsearch_node):
    """Reproduces issue 10 item 8: drop() deletes `{index}-v*` by wildcard, which a production cluster
    (action.destructive_requires_name=true) refuses."""
    backend = make_backend("elasticsearch")
    settings = backend.client.cluster.get_settings(flat_settings=True)["persistent"]
    assert settings["action.destructive_requires_name"] == "true"
    index_documents(CORPUS[:1], backend=backend)
    backend.staging(embedder.model_name, embedder.dimensions)  # a version not behind the alias
    assert sorted(backend.client.indices.get(index=f"{backend.index_name}-v*")) == [
        f"{backend.index_name}-v1", f"{backend.index_name}-v2"]

    backend.drop()

    assert backend.client.indices.get(index=f"{backend.index_name}-v*") == {}
    assert backend.index_info() is None
