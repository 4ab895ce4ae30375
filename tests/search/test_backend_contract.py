"""The SearchBackend contract, run identically against the embedded and the Elasticsearch backend."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from connectors.parsing import Section
from retrieval import selectors
from retrieval.chunking import ChunkingConfig, chunk_sections
from retrieval.services import DocumentToIndex, fusion_config, index_documents
from search.backends.base import DocumentChunks
from search.types import DocumentAcl, IndexedDocument, IndexModelMismatch, SearchFilters, SearchHit, SearchMode

pytestmark = pytest.mark.django_db

EVERYONE = frozenset()


def doc(doc_id: str, title: str, *sections: tuple[tuple[str, ...], str], source: str = "1",
        mime: str = "text/markdown", modified: datetime | None = None, acl: DocumentAcl | None = None):
    return DocumentToIndex(
        IndexedDocument(document_id=doc_id, source_id=source, title=title, url=f"https://intranet.example/{doc_id}",
                        mime_type=mime, modified_at=modified or datetime(2026, 1, 15, tzinfo=UTC),
                        acl=acl or DocumentAcl.public_ok()),
        [Section(path, text) for path, text in sections],
    )


CORPUS = [
    doc("travel", "Travel policy",
        (("Travel policy", "Hotels"), "Hotel stays are capped at 240 euros per night. Receipts are mandatory."),
        (("Travel policy", "Flights"), "Economy class is required for flights shorter than six hours."),
        modified=datetime(2025, 6, 1, tzinfo=UTC)),
    doc("vpn", "VPN runbook",
        (("VPN runbook",), "Connect to the WireGuard VPN before opening the billing dashboard from public wifi."),
        source="2", mime="text/plain", modified=datetime(2026, 3, 1, tzinfo=UTC)),
    doc("leave", "Parental leave",
        (("Parental leave",), "Parents receive sixteen weeks of fully paid leave after a birth or adoption."),
        source="2", mime="application/pdf", modified=datetime(2026, 9, 1, tzinfo=UTC)),
    doc("secret", "Acquisition plan",
        (("Acquisition plan",), "The board plans to acquire the hotel booking startup Roomly next spring."),
        acl=DocumentAcl(principals=frozenset({"group:board"}), public=False, status="ok")),
    doc("unknown-acl", "Salary bands",
        (("Salary bands",), "Hotel night allowances for executives are listed in the salary bands table."),
        acl=DocumentAcl(status="unknown")),
]


@pytest.fixture
def loaded(backend):
    index_documents(CORPUS, backend=backend)
    return backend


def search(backend, query, mode=SearchMode.HYBRID, principals=EVERYONE, **kwargs):
    return selectors.search(query, principals=principals, mode=mode, backend=backend, **kwargs)


@pytest.mark.parametrize("mode", list(SearchMode))
def test_each_mode_finds_the_right_document_with_the_full_hit_shape(loaded, mode):
    hits = search(loaded, "how much can a hotel night cost", mode)
    assert hits, f"{loaded.name} {mode} found nothing"
    top = hits[0]
    assert isinstance(top, SearchHit)
    assert top.document_id == "travel"
    assert top.heading_path == ("Travel policy", "Hotels")
    assert top.title == "Travel policy" and top.url == "https://intranet.example/travel"
    assert top.mime_type == "text/markdown" and top.source_id == "1"
    assert top.modified_at == datetime(2025, 6, 1, tzinfo=UTC)
    assert "240 euros" in top.text
    assert isinstance(top.score, float)
    if mode == SearchMode.BM25:
        assert (top.bm25_rank, top.dense_rank) == (1, None)
    elif mode == SearchMode.DENSE:
        assert (top.bm25_rank, top.dense_rank) == (None, 1)
    else:
        assert top.bm25_rank == 1 and top.dense_rank == 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_both_backends_return_the_same_hits_for_the_same_query(make_backend):
    results = {}
    for kind in ("embedded", "elasticsearch"):
        backend = make_backend(kind)
        index_documents(CORPUS, backend=backend)
        hits = search(backend, "paid leave after adoption", SearchMode.HYBRID)
        results[kind] = [(h.chunk_id, h.bm25_rank, h.dense_rank) for h in hits]
        fields = {f.name for f in dataclasses.fields(hits[0])}
    assert results["embedded"][0] == results["elasticsearch"][0]
    assert {c for c, _, _ in results["embedded"]} == {c for c, _, _ in results["elasticsearch"]}
    assert fields == {f.name for f in dataclasses.fields(SearchHit)}


def test_highlight_marks_query_terms(loaded):
    hit = search(loaded, "WireGuard VPN", SearchMode.BM25)[0]
    assert hit.document_id == "vpn"
    assert "<em>WireGuard</em>" in hit.highlight and "<em>VPN</em>" in hit.highlight


def test_an_update_is_visible_as_soon_as_the_call_returns(loaded):
    index_documents([doc("travel", "Travel policy", (("Travel policy",), "Rail travel is preferred for trips under "
                                                     "four hours; the zeppelin allowance was withdrawn."))],
                    backend=loaded)
    assert search(loaded, "zeppelin allowance", SearchMode.BM25)[0].document_id == "travel"
    # The old chunks are gone: nothing about hotel caps remains for this document.
    stale = [h for h in search(loaded, "hotel stays capped receipts", SearchMode.BM25) if h.document_id == "travel"]
    assert stale == []
    assert loaded.section_chunks("travel", 1, principals=EVERYONE) == []


def test_a_delete_is_visible_as_soon_as_the_call_returns(loaded):
    assert search(loaded, "WireGuard", SearchMode.BM25)[0].document_id == "vpn"
    loaded.delete_documents(["vpn"])
    for mode in SearchMode:
        assert all(h.document_id != "vpn" for h in search(loaded, "WireGuard VPN", mode))
    assert "vpn" not in loaded.document_ids()


@pytest.mark.parametrize("mode", list(SearchMode))
def test_filters_by_source_type_date_and_document(loaded, mode):
    def docs(**filters):
        return {h.document_id for h in search(loaded, "hotel leave VPN flights", mode,
                                              filters=SearchFilters(**filters), limit=20)}

    assert docs(source_ids=("2",)) == {"vpn", "leave"}
    assert docs(mime_types=("application/pdf",)) == {"leave"}
    assert docs(modified_after=datetime(2026, 1, 1, tzinfo=UTC)) == {"vpn", "leave"}
    assert docs(modified_before=datetime(2026, 1, 1, tzinfo=UTC)) == {"travel"}
    assert docs(document_ids=("travel", "leave")) == {"travel", "leave"}
    assert docs(source_ids=("2",), mime_types=("text/plain",)) == {"vpn"}


@pytest.mark.parametrize("mode", list(SearchMode))
def test_acl_filter_runs_inside_every_leg_and_fails_closed(loaded, mode):
    outsider = {h.document_id for h in search(loaded, "hotel booking startup acquisition", mode, limit=20)}
    assert "secret" not in outsider and "unknown-acl" not in outsider
    board = {h.document_id for h in search(loaded, "hotel booking startup acquisition", mode,
                                           principals=frozenset({"group:board"}), limit=20)}
    assert "secret" in board
    assert "unknown-acl" not in board  # unknown permissions: visible to nobody
    assert loaded.section_chunks("secret", 0, principals=EVERYONE) == []


def test_parent_section_expansion_rebuilds_the_whole_section(make_backend, embedder, settings):
    settings.CITEWISE = settings.CITEWISE.replace(chunk_max_tokens=24, chunk_overlap_tokens=8)
    sentences = [f"Rule {n} says that badge number {n} opens door {n} of the Portland lab." for n in range(1, 9)]
    section_text = " ".join(sentences)
    for kind in ("embedded", "elasticsearch"):
        backend = make_backend(kind)
        index_documents([doc("badges", "Badge rules", (("Badge rules", "Doors"), section_text))], backend=backend)
        hits = search(backend, "badge 7 door", SearchMode.BM25)
        assert len(backend.section_chunks("badges", 0, principals=EVERYONE)) > 2
        assert selectors.expand_to_section(hits[0], principals=EVERYONE, backend=backend) == section_text


def test_an_index_refuses_vectors_from_another_model(backend, embedder):
    index_documents(CORPUS[:1], backend=backend)
    with pytest.raises(IndexModelMismatch, match="re-index"):
        backend.ensure_index("another/model", embedder.dimensions)
    item = CORPUS[1]
    chunks = chunk_sections(item.document.document_id, item.document.title, item.sections, embedder.count_tokens,
                            ChunkingConfig())
    vectors = np.zeros((len(chunks), embedder.dimensions), dtype=np.float32)
    with pytest.raises(IndexModelMismatch):
        backend.replace_documents([DocumentChunks(item.document, chunks, vectors, ["vpn"] * len(chunks))],
                                  embedding_model="another/model")
    with pytest.raises(IndexModelMismatch):
        backend.search(principals=EVERYONE, query="vpn", analyzed_query="vpn", query_vector=vectors[0],
                       embedding_model="another/model", mode=SearchMode.DENSE, filters=SearchFilters(), limit=5,
                       fusion=fusion_config())
    assert "vpn" not in backend.document_ids()


def test_empty_index_and_empty_query_return_nothing(backend):
    assert search(backend, "anything at all", SearchMode.HYBRID) == []
    index_documents(CORPUS[:1], backend=backend)
    assert search(backend, "the of and", SearchMode.BM25) == []


@pytest.mark.parametrize("query", [
    'NEAR(hotel) AND "unbalanced OR * ^ -vpn', "hotel " * 5000, "\x00\ufffd😀 </em><script>", "   ",
])
def test_hostile_queries_return_results_or_nothing_never_an_error(loaded, query):
    for mode in SearchMode:
        hits = search(loaded, query, mode)
        assert all("<script>" not in h.highlight for h in hits)


def test_documents_and_sources_are_listed(loaded):
    assert loaded.source_ids() == {"1", "2"}
    assert loaded.document_ids(source_ids=["2"]) == {"vpn", "leave"}
    assert loaded.document_ids(source_ids=["2", "gone"]) == {"vpn", "leave"}
    assert loaded.document_ids(source_ids=[]) == set()
    assert loaded.document_ids() == {"travel", "vpn", "leave", "secret", "unknown-acl"}


def physical_versions(backend) -> list[str]:
    if backend.name == "embedded":
        return sorted(p.name for p in backend.directory.glob(f"{backend.index_name}*"))
    return sorted(backend.client.indices.get(index=f"{backend.index_name}-v*"))


def test_staging_promote_discard_and_drop_never_touch_what_they_should_not(backend, embedder):
    index_documents(CORPUS[:1], backend=backend)
    staged = backend.staging(embedder.model_name, embedder.dimensions)
    index_documents(CORPUS[1:2], backend=staged)
    assert "vpn" not in backend.document_ids()  # a staging index is not searched
    backend.promote(staged)
    assert backend.document_ids() == {"vpn"}
    backend.discard(staged)  # the live index now: kept
    assert backend.document_ids() == {"vpn"}

    abandoned = backend.staging(embedder.model_name, embedder.dimensions)
    index_documents(CORPUS[2:3], backend=abandoned)
    backend.discard(abandoned)
    assert backend.document_ids() == {"vpn"}
    leftover = backend.staging(embedder.model_name, embedder.dimensions)
    getattr(leftover, "close", lambda: None)()  # as if its process had died
    before = physical_versions(backend)
    assert backend.remove_stale_versions() and len(physical_versions(backend)) < len(before)
    assert backend.document_ids() == {"vpn"}

    backend.staging(embedder.model_name, embedder.dimensions)
    backend.drop()
    assert backend.index_info() is None and backend.document_ids() == set()
    assert physical_versions(backend) == []
