"""A rebuilt Elasticsearch index is merged into few segments before it serves (search/backends/elastic.py)."""

from __future__ import annotations

import pytest

from retrieval.services import index_documents
from tests.search.test_backend_contract import CORPUS

pytestmark = pytest.mark.django_db


def segment_count(backend, index: str) -> int:
    shards = backend.client.indices.segments(index=index)["indices"][index]["shards"]
    return sum(len(copy["segments"]) for copies in shards.values() for copy in copies if copy["routing"]["primary"])


def live_index(backend) -> str:
    (name,) = backend.client.indices.get_alias(name=backend.index_name)
    return name


def test_a_rebuilt_index_is_merged_into_one_segment_before_it_serves(make_backend, embedder):
    live = make_backend("elasticsearch")
    index_documents(CORPUS[:1], backend=live)
    staged = live.staging(embedder.model_name, embedder.dimensions)
    for document in CORPUS:  # as a rebuild writes: batch by batch, each refreshed, each a segment
        index_documents([document], backend=staged)
    assert segment_count(staged, staged.index_name) == len(CORPUS) > 2

    live.promote(staged)

    assert live_index(live) == staged.index_name
    assert segment_count(live, staged.index_name) == 1
    assert live.document_ids() == {item.document.document_id for item in CORPUS}
    # Written to after it serves, as syncs do: new segments beside the merged one, searched as before.
    index_documents(CORPUS[:1], backend=live)
    assert segment_count(live, staged.index_name) >= 1
    assert live.document_ids() == {item.document.document_id for item in CORPUS}
