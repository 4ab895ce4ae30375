"""The SearchBackend contract, run identically against the embedded and the Elasticsearch backend."""

from __future__ import annotations

import dataclasses
import json
import queue
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from answers.scoring import score_units
from answers.types import Passage
from connectors.parsing import Section
from core.config import current
from retrieval import selectors
from retrieval.chunking import ChunkingConfig, chunk_sections
from retrieval.services import DocumentToIndex, fusion_config, index_documents
from retrieval.units import embedding_texts
from search.analysis import analyzed_text
from search.backends import elastic
from search.backends.base import DocumentChunks
from search.types import DocumentAcl, IndexedDocument, IndexModelMismatch, SearchFilters, SearchHit, SearchMode
from search.unit_vectors import decode_unit_vectors, unit_key

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


MEMOS = [doc(f"memo-{n:02d}", f"Memo {n}", ((f"Memo {n}",), f"Memo number {n} about the quarterly office move."),
             source=str(3 + n % 2)) for n in range(9)]


def test_document_ids_come_a_page_at_a_time(loaded):
    index_documents(MEMOS, backend=loaded)
    everything = sorted(["travel", "vpn", "leave", "secret", "unknown-acl", *(m.document.document_id for m in MEMOS)])

    pages = list(loaded.document_id_pages(page_size=3))
    assert len(pages) == 5 and all(1 <= len(page) <= 3 for page in pages)
    listed = [i for page in pages for i in page]
    assert listed == everything  # complete, each once, in id order

    odd = sorted(m.document.document_id for m in MEMOS if m.document.source_id == "4")
    assert [i for page in loaded.document_id_pages(source_ids=["4"], page_size=2) for i in page] == odd
    assert [i for page in loaded.document_id_pages(source_ids=["4", "2", "gone"], page_size=2) for i in page] \
        == sorted([*odd, "vpn", "leave"])
    assert list(loaded.document_id_pages(source_ids=[], page_size=2)) == []
    assert list(loaded.document_id_pages(source_ids=["gone"], page_size=2)) == []
    assert list(loaded.document_id_pages(page_size=100)) == [everything]
    with pytest.raises(ValueError):
        next(loaded.document_id_pages(page_size=0))


def test_a_caller_may_delete_each_page_before_reading_the_next(loaded):
    index_documents(MEMOS, backend=loaded)
    deleted = []
    for page in loaded.document_id_pages(source_ids=["3", "4"], page_size=2):
        loaded.delete_documents(page)
        deleted += page
    assert deleted == sorted(m.document.document_id for m in MEMOS)
    assert loaded.document_ids() == {"travel", "vpn", "leave", "secret", "unknown-acl"}


def test_chunk_texts_are_every_chunk_with_its_documents_current_acl_a_page_at_a_time(loaded):
    index_documents(MEMOS, backend=loaded)
    pages = list(loaded.chunk_texts(page_size=4))
    assert pages and all(1 <= len(page) <= 4 for page in pages)
    texts = {text: acl for page in pages for text, acl in page}
    assert len(texts) == sum(len(page) for page in pages) == len(CORPUS) + 1 + len(MEMOS)  # travel has two sections
    assert texts["Economy class is required for flights shorter than six hours."] == DocumentAcl.public_ok()
    secret = "The board plans to acquire the hotel booking startup Roomly next spring."
    assert texts[secret] == DocumentAcl(principals=BOARD, public=False, status="ok")
    assert texts["Hotel night allowances for executives are listed in the salary bands table."].status == "unknown"

    loaded.update_acls([("secret", DocumentAcl(principals=BOARD | ALICE, public=False, status="ok"))])
    texts = {text: acl for page in loaded.chunk_texts() for text, acl in page}
    assert texts[secret].principals == BOARD | ALICE
    with pytest.raises(ValueError):
        next(loaded.chunk_texts(page_size=0))


def test_an_index_that_does_not_exist_reads_as_empty_and_ignores_acl_updates(backend):
    assert list(backend.chunk_texts()) == []
    assert list(backend.document_id_pages(page_size=2)) == []
    assert list(backend.document_id_pages(source_ids=["1"])) == []
    assert backend.get_document("travel", EVERYONE) is None
    backend.update_acls([("travel", DocumentAcl.public_ok())])
    assert backend.index_info() is None  # nor created by it


BOARD = frozenset({"group:board"})
ALICE = frozenset({"user:alice"})


def test_get_document_returns_what_a_search_would_let_the_principals_read(loaded):
    travel = loaded.get_document("travel", EVERYONE)
    assert travel == CORPUS[0].document  # every document-level field, as indexed
    assert travel.acl == DocumentAcl.public_ok()
    assert loaded.get_document("travel", BOARD) == travel  # public: whoever asks

    assert loaded.get_document("secret", EVERYONE) is None  # no principals: only public documents
    assert loaded.get_document("secret", ALICE) is None
    secret = loaded.get_document("secret", BOARD | ALICE)
    assert secret is not None and (secret.title, secret.source_id) == ("Acquisition plan", "1")
    assert secret.acl == DocumentAcl(principals=BOARD, public=False, status="ok")

    for principals in (EVERYONE, BOARD, ALICE):  # unknown permissions: readable by nobody
        assert loaded.get_document("unknown-acl", principals) is None
    assert loaded.get_document("nothing-here", BOARD) is None
    loaded.delete_documents(["travel"])
    assert loaded.get_document("travel", EVERYONE) is None


def test_document_chunks_are_the_whole_document_in_order_for_those_who_may_read_it(make_backend, embedder, settings):
    settings.CITEWISE = settings.CITEWISE.replace(chunk_max_tokens=24, chunk_overlap_tokens=8)
    doors = " ".join(f"Rule {n} says that badge number {n} opens door {n} of the Portland lab." for n in range(1, 9))
    handbook = doc("handbook", "Badge handbook", (("Badge handbook",), "Badges are issued on the first day."),
                   (("Badge handbook", "Doors"), doors), (("Badge handbook", "Lost badges"), "Report a lost badge."),
                   acl=DocumentAcl(principals=BOARD, public=False, status="ok"))
    seen = {}
    for kind in ("embedded", "elasticsearch"):
        backend = make_backend(kind)
        index_documents([*CORPUS, handbook], backend=backend)
        chunks = backend.document_chunks("handbook", principals=BOARD | ALICE)
        assert [c.ordinal for c in chunks] == list(range(len(chunks))) and len(chunks) > 4
        assert {c.document_id for c in chunks} == {"handbook"}
        assert [c.section_ordinal for c in chunks] == sorted(c.section_ordinal for c in chunks)
        assert {c.section_ordinal: c.heading_path for c in chunks} == {
            0: ("Badge handbook",), 1: ("Badge handbook", "Doors"), 2: ("Badge handbook", "Lost badges")}
        # The same chunks a section read gives, section by section.
        for ordinal in (0, 1, 2):
            assert [(c.text, c.section_start, c.section_end) for c in chunks if c.section_ordinal == ordinal] == [
                tuple(piece) for piece in backend.section_chunks("handbook", ordinal, principals=BOARD)]
        assert len(backend.document_chunks("handbook", principals=BOARD, limit=2)) == 2
        # Not readable, unknown permissions and not indexed all read as nothing.
        assert backend.document_chunks("handbook", principals=ALICE) == []
        assert backend.document_chunks("handbook", principals=EVERYONE) == []
        assert backend.document_chunks("unknown-acl", principals=BOARD | ALICE) == []
        assert backend.document_chunks("nothing-here", principals=BOARD) == []
        assert [c.text for c in backend.document_chunks("vpn", principals=EVERYONE)] == [
            "Connect to the WireGuard VPN before opening the billing dashboard from public wifi."]

        shown = selectors.readable_document_text("handbook", BOARD, backend=backend)
        assert shown is not None and shown.document.title == "Badge handbook"
        assert [(s.ordinal, s.heading_path[-1], s.text) for s in shown.sections] == [
            (0, "Badge handbook", "Badges are issued on the first day."), (1, "Doors", doors),
            (2, "Lost badges", "Report a lost badge.")]
        assert selectors.readable_document_text("handbook", ALICE, backend=backend) is None
        seen[kind] = chunks
    assert seen["embedded"] == seen["elasticsearch"]


def visible(backend, document_id: str, principals: frozenset[str]) -> dict[str, bool]:
    """Whether each way of reading the index shows the document to the principals."""
    seen = {mode.value: any(h.document_id == document_id for h in search(
        backend, "hotel booking startup acquisition", mode, principals=principals, limit=20)) for mode in SearchMode}
    seen["get_document"] = backend.get_document(document_id, principals) is not None
    seen["section"] = bool(backend.section_chunks(document_id, 0, principals=principals))
    seen["document_chunks"] = bool(backend.document_chunks(document_id, principals=principals))
    return seen


def everywhere(shown: bool) -> dict[str, bool]:
    return {**{mode.value: shown for mode in SearchMode}, "get_document": shown, "section": shown,
            "document_chunks": shown}


def test_update_acls_changes_who_reads_a_document_everywhere_at_once(loaded):
    assert visible(loaded, "secret", BOARD) == everywhere(True)
    assert visible(loaded, "secret", ALICE) == everywhere(False)

    loaded.update_acls([("secret", DocumentAcl(principals=ALICE, public=False, status="ok"))])
    assert visible(loaded, "secret", ALICE) == everywhere(True)  # gained
    assert visible(loaded, "secret", BOARD) == everywhere(False)  # lost
    assert loaded.get_document("secret", ALICE).acl.principals == ALICE
    # Only the permissions changed: the text and vectors are those indexed.
    hit = next(h for h in search(loaded, "acquire Roomly", SearchMode.DENSE, principals=ALICE)
               if h.document_id == "secret")
    assert "Roomly next spring" in hit.text

    loaded.update_acls([("secret", DocumentAcl.public_ok())])
    assert visible(loaded, "secret", EVERYONE) == everywhere(True)

    # Fail closed: permissions that are not known, or that name nobody, show the document to nobody.
    for acl in (DocumentAcl(principals=ALICE | BOARD, public=True, status="unknown"),
                DocumentAcl(principals=ALICE, public=False, status="error"),
                DocumentAcl(status="ok"), DocumentAcl()):
        loaded.update_acls([("secret", acl)])
        for principals in (EVERYONE, ALICE, BOARD, ALICE | BOARD):
            assert visible(loaded, "secret", principals) == everywhere(False), (acl, principals)


def test_update_acls_for_a_document_not_indexed_is_harmless(loaded):
    before = loaded.document_ids()
    loaded.update_acls([("never-indexed", DocumentAcl.public_ok()),
                        ("travel", DocumentAcl(principals=ALICE, public=False, status="ok"))])
    assert loaded.document_ids() == before
    assert loaded.get_document("never-indexed", ALICE) is None
    assert visible(loaded, "travel", ALICE)["get_document"] and loaded.get_document("travel", EVERYONE) is None
    loaded.update_acls([])
    # A document indexed later gets the permissions it is indexed with, not the update sent before.
    index_documents([doc("never-indexed", "Late memo", (("Late memo",), "Filed after its permissions changed."),
                         acl=DocumentAcl(principals=BOARD, public=False, status="ok"))], backend=loaded)
    assert loaded.get_document("never-indexed", EVERYONE) is None
    assert loaded.get_document("never-indexed", BOARD) is not None


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


class CountingEmbedder:
    """The real embedder, keeping what it was asked to embed; its full-precision sibling (int8 backends) counts on
    its own."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.model_name, self.dimensions, self.max_tokens = embedder.model_name, embedder.dimensions, embedder.max_tokens
        self.documents: list[str] = []
        self.queries: list[str] = []
        self._full_precision: CountingEmbedder | None = None

    def full_precision(self):
        inner = self._embedder.full_precision()
        if inner is self._embedder:
            return self
        if self._full_precision is None:
            self._full_precision = CountingEmbedder(inner)
        return self._full_precision

    @property
    def rescored(self) -> list[str]:
        """Units re-embedded at full precision (int8 backends: answers.scoring re-scores the closest ones)."""
        return [] if self.full_precision() is self else self.full_precision().documents

    def embed_documents(self, texts):
        self.documents += texts
        return self._embedder.embed_documents(texts)

    def embed_query(self, text):
        self.queries.append(text)
        return self._embedder.embed_query(text)

    def count_tokens(self, texts):
        return self._embedder.count_tokens(texts)


def unit_texts(hit: SearchHit) -> list[str]:
    return embedding_texts(hit.title, hit.heading_path, hit.text)


def test_a_hit_carries_the_unit_vectors_stored_for_its_chunk_when_asked(loaded, embedder):
    hits = search(loaded, "hotel night receipts flights leave", limit=20, with_unit_vectors=True)
    assert {h.document_id for h in hits} >= {"travel", "vpn", "leave"}
    for hit in hits:
        texts = unit_texts(hit)
        stored = decode_unit_vectors(hit.unit_vectors)
        assert texts and len(stored) == len(texts), hit.chunk_id
        for text, vector in zip(texts, embedder.embed_documents(texts), strict=True):
            if embedder.full_precision() is embedder:
                np.testing.assert_allclose(stored[unit_key(text)], vector, atol=1e-3)  # float16, as stored
            else:  # int8 activations are quantised per batch: a text's vector moves a little with its batch
                assert float(stored[unit_key(text)] @ vector) > 0.98, text
    travel = next(h for h in hits if h.document_id == "travel" and "240 euros" in h.text)
    assert unit_texts(travel) == ["Travel policy > Travel policy > Hotels: Hotel stays are capped at 240 euros per "
                                  "night.", "Travel policy > Travel policy > Hotels: Receipts are mandatory."]
    # Not read for a plain search, and never shown.
    assert all(h.unit_vectors == b"" for h in search(loaded, "hotel night receipts flights leave", limit=20))
    assert "unit_vectors" not in travel.as_dict() and "unit_vectors" not in repr(travel)


def passages_of(hits) -> list[Passage]:
    return [Passage(number, hit, hit.text) for number, hit in enumerate(hits, start=1)]


def test_the_scorer_embeds_only_the_question_when_the_hits_carry_unit_vectors(loaded, embedder):
    question = "How much may a hotel night cost?"
    passages = passages_of(search(loaded, question, limit=5, with_unit_vectors=True))
    counting = CountingEmbedder(embedder)
    from_index = score_units(question, passages, embedder=counting)
    # The question is embedded at full precision; with int8 documents, so are the few units closest to it.
    assert counting.documents == [] and counting.full_precision().queries == [question]
    assert len(counting.rescored) <= 2 * current().answer_rescored_units
    assert set(counting.rescored) <= {t for p in passages for t in unit_texts(p.hit)}
    assert from_index[0].text == "Hotel stays are capped at 240 euros per night."

    # Hits from an index without them: every unit is embedded now, and scores the same.
    counting = CountingEmbedder(embedder)
    bare = [Passage(p.number, dataclasses.replace(p.hit, unit_vectors=b""), p.text) for p in passages]
    embedded_now = score_units(question, bare, embedder=counting)
    assert sorted(counting.documents) == sorted({t for p in passages for t in unit_texts(p.hit)})
    assert counting.full_precision().queries == [question]
    assert {(s.passage_number, s.start): s.score for s in embedded_now} \
        == pytest.approx({(s.passage_number, s.start): s.score for s in from_index}, abs=0.01)

    # A passage that is more than its chunk as indexed: only what the index lacks is embedded.
    counting = CountingEmbedder(embedder)
    first = passages[0]
    longer = [Passage(1, first.hit, first.text + " Breakfast is not included."), *passages[1:]]
    score_units(question, longer, embedder=counting)
    assert counting.documents == ["Travel policy > Travel policy > Hotels: Breakfast is not included."]


def make_index_from_before_unit_vectors(backend, embedder) -> None:
    """The backend's index as code from before unit vectors made it."""
    if backend.name == "embedded":
        backend.ensure_index(embedder.model_name, embedder.dimensions)
        with sqlite3.connect(backend.path) as connection:
            connection.execute("DROP TABLE chunk_unit_vectors")
        backend.drop_connection()
        return
    mappings = elastic._mappings(embedder.model_name, embedder.dimensions)
    del mappings["properties"]["unit_vectors"]
    mappings["_meta"]["schema_version"] = 1
    backend.client.indices.create(index=f"{backend.index_name}-v1", mappings=mappings,
                                  settings={"number_of_shards": 1, "number_of_replicas": 0},
                                  aliases={backend.index_name: {"is_write_index": True}})


def test_an_index_from_before_unit_vectors_keeps_serving_and_gains_them_when_written(backend, embedder):
    make_index_from_before_unit_vectors(backend, embedder)
    item = CORPUS[0]
    chunks = chunk_sections(item.document.document_id, item.document.title, item.sections, embedder.count_tokens,
                            ChunkingConfig())
    inputs = [c.embedding_input(item.document.title) for c in chunks]
    backend.replace_documents([DocumentChunks(item.document, chunks, embedder.embed_documents(inputs),
                                              [analyzed_text(text) for text in inputs])],
                              embedding_model=embedder.model_name)
    question = "How much may a hotel night cost?"
    hits = search(backend, question, with_unit_vectors=True)
    assert hits and all(h.unit_vectors == b"" for h in hits)
    counting = CountingEmbedder(embedder)
    assert score_units(question, passages_of(hits), embedder=counting)[0].text.startswith("Hotel stays")
    assert counting.documents  # what the index lacks is embedded at question time

    index_documents(CORPUS, backend=backend)
    hits = search(backend, question, with_unit_vectors=True)
    assert hits and all(len(decode_unit_vectors(h.unit_vectors)) == len(unit_texts(h)) for h in hits)
    assert backend.index_info().embedding_model == embedder.model_name


REPO = Path(__file__).resolve().parents[2]

# Another process serving searches from the same index, as a web worker does: its backend, and so its
# connections, stay open between searches. "search" answers once; "watch" searches again and again until its
# input ends, so it is searching whenever the other process switches indices.
SEARCHER = r"""
import json, sys, threading
import numpy as np
from search.backends.elastic import ElasticsearchBackend
from search.backends.embedded import EmbeddedBackend
from search.types import FusionConfig, SearchFilters, SearchMode

kind, location, name = sys.argv[1:]
backend = EmbeddedBackend(location, name) if kind == "embedded" else ElasticsearchBackend(location, name)


def search(request):
    try:
        hits = backend.search(
            principals=frozenset(), query=request["query"], analyzed_query=request["terms"],
            query_vector=np.asarray(request["vector"], dtype=np.float32), embedding_model=request["model"],
            mode=SearchMode(request["mode"]), filters=SearchFilters(), limit=10, fusion=FusionConfig())
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"hits": [[h.document_id, h.text] for h in hits]}


for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "search":
        print(json.dumps(search(request)), flush=True)
    elif request["op"] == "watch":
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        while not done.is_set():
            print(json.dumps(search(request)), flush=True)
        break
    else:
        break
"""


class Searcher:
    """A second OS process searching `backend`'s index through a backend of its own."""

    def __init__(self, backend) -> None:
        location = str(backend.directory) if backend.name == "embedded" else backend.url
        self.process = subprocess.Popen([sys.executable, "-c", SEARCHER, backend.name, location, backend.index_name],
                                        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _send(self, op: str, query: str, mode: SearchMode, embedder) -> None:
        from search.analysis import analyzed_text

        request = {"op": op, "query": query, "terms": analyzed_text(query), "mode": mode.value,
                   "vector": embedder.embed_query(query).tolist(), "model": embedder.model_name}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def search(self, query: str, mode: SearchMode, embedder) -> list[list[str]]:
        self._send("search", query, mode, embedder)
        line = self.process.stdout.readline()
        assert line, f"the searcher died (exit code {self.process.poll()})"
        answer = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer["hits"]

    @contextmanager
    def watching(self, query: str, mode: SearchMode, embedder) -> Iterator[queue.Queue]:
        """Every answer of a search repeated until the block ends, as soon as it comes; None once it died."""
        answers: queue.Queue = queue.Queue()

        def read() -> None:  # drained as it is written: a full pipe would pause the searcher
            for line in self.process.stdout:
                answers.put(json.loads(line))
            answers.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self._send("watch", query, mode, embedder)
        try:
            yield answers
        finally:
            self.process.stdin.close()  # ends the watch
            self.process.wait(timeout=60)
            reader.join(timeout=60)

    def quit(self) -> None:
        if self.process.poll() is None:
            if not self.process.stdin.closed:
                self.process.stdin.close()
            self.process.wait(timeout=60)


def edition(name: str, document_ids: list[str]) -> list:
    return [doc(i, f"Menu {i}", ((f"Menu {i}",), f"The {name} edition of canteen menu {i} lists soup and salad."))
            for i in document_ids]


def test_a_process_searching_through_rebuilds_in_another_sees_whole_indices_only(backend, embedder):
    """One process rebuilds the index into staging and promotes it, three times, while another keeps searching:
    every answer is a whole edition (never an error, nothing missing, no mix of two), and once an edition is
    promoted the searcher reaches it and never goes back."""
    editions = [edition("first", ["a", "b", "c"]), edition("second", ["a", "b", "c", "d"]),
                edition("third", ["b", "c", "d"])]
    expected = [frozenset((item.document.document_id, item.sections[0].text) for item in items)
                for items in editions]
    index_documents(editions[0], backend=backend)
    searcher = Searcher(backend)
    answers_seen: list[int] = []
    try:
        with searcher.watching("canteen menu soup", SearchMode.HYBRID, embedder) as answers:

            def next_edition() -> int:
                answer = answers.get(timeout=120)
                assert answer is not None, f"the searcher died (exit code {searcher.process.poll()})"
                assert "error" not in answer, f"after {len(answers_seen)} answers: {answer['error']}"
                found = frozenset(tuple(hit) for hit in answer["hits"])
                assert found in expected, f"a partial or mixed answer after {len(answers_seen)}: {sorted(found)}"
                answers_seen.append(expected.index(found))
                return answers_seen[-1]

            assert next_edition() == 0
            for number, items in enumerate(editions[1:], start=1):
                staged = backend.staging(embedder.model_name, embedder.dimensions)
                index_documents(items, backend=staged)
                backend.promote(staged)
                while next_edition() != number:
                    pass
            for _ in range(3):  # and it stays there
                assert next_edition() == len(editions) - 1
    finally:
        searcher.quit()
    assert answers_seen == sorted(answers_seen)  # never back to a replaced edition
    assert set(answers_seen) == {0, 1, 2}
    assert backend.document_ids() == {"b", "c", "d"}


# -- identifiers and versions ---------------------------------------------------------------------------------

PARTS = [
    # Each exact document names its identifier and little else; its near neighbour names a similar identifier and
    # says much more about what the query asks (more shared terms, a closer embedding).
    doc("stock-12", "Stock sheet 12", (("Stock sheet 12",), "Bin 12 holds NA-4471-B.")),
    doc("gasket-c", "Gasket NA-4471-C for the K2 pump housing", (
        ("Gasket NA-4471-C for the K2 pump housing",),
        "NA-4471-C is the gasket for the K2 pump housing; it replaced part B. Replace the K2 pump housing gasket "
        "yearly.")),
    doc("pager-log", "Pager log", (("Pager log",), "INC-2291 closed at 14:05.")),
    doc("incident-2219", "INC-2219 payments outage", (
        ("INC-2219 payments outage",),
        "INC-2219: payments were delayed for an hour during the payments outage; the payments queue was drained.")),
    doc("settings", "Client settings", (("Client settings",), "max_retries: 5")),
    doc("retry-policy", "Retry policy for the client", (
        ("Retry policy for the client",),
        "How the client retries: a failed call is retried at most three times (the max retries setting), with "
        "backoff between retries.")),
    doc("changelog", "Changelog", (("Changelog",), "K2-FW-3.4.1 shipped on 3 May.")),
    doc("fw-342", "K2 firmware K2-FW-3.4.2 release notes", (
        ("K2 firmware K2-FW-3.4.2 release notes",),
        "K2-FW-3.4.2 release notes: the K2 firmware boot loop fix of K2-FW-3.4.0 is kept and boot is faster.")),
]


@pytest.mark.parametrize(("query", "exact", "neighbour"), [
    ("NA-4471-B gasket for the K2 pump housing", "stock-12", "gasket-c"),
    ("INC-2291 payments delayed outage", "pager-log", "incident-2219"),
    ("how does max_retries make the client retry a failed call", "settings", "retry-policy"),
    ("K2-FW-3.4.1 K2 firmware boot loop release notes", "changelog", "fw-342"),
])
def test_an_exact_identifier_outranks_its_near_neighbours(backend, query, exact, neighbour):
    index_documents(PARTS, backend=backend)
    without = [h.document_id for h in search(backend, query, fusion=fusion_config(identifier_weight=0.0))]
    assert without.index(neighbour) < without.index(exact), "the neighbour must win on terms and meaning alone"
    ranked = [h.document_id for h in search(backend, query)]
    assert ranked[0] == exact, ranked


def test_identifiers_match_whole_and_by_their_parts(backend):
    index_documents(PARTS, backend=backend)
    # Case and the kind of dash do not matter to the whole form.
    assert search(backend, "na\u20114471\u2011b")[0].document_id == "stock-12"
    # The parts stay ordinary terms: a part number's number finds both parts, a key's words find the key.
    assert {h.document_id for h in search(backend, "4471", SearchMode.BM25)} == {"stock-12", "gasket-c"}
    assert "settings" in {h.document_id for h in search(backend, "max", SearchMode.BM25)}


TRAVEL_2025 = doc("travel-2025", "Travel Policy 2025", (
    ("Travel Policy 2025", "Per diem"), "Effective: 2025-01-01. The per diem for meals is 45 euros a day."))
TRAVEL_2026 = doc("travel-2026", "Travel Policy 2026", (
    ("Travel Policy 2026", "Per diem"), "Effective: 2026-01-01. Supersedes: Travel Policy 2025. The per diem for "
                                        "meals is 52 euros a day."))


def versioned(item, effective, supersedes=(), acl=None):
    document = dataclasses.replace(item.document, effective_date=effective, supersedes=supersedes,
                                   acl=acl or item.document.acl)
    return DocumentToIndex(document, item.sections)


def test_a_superseded_edition_ranks_below_its_successor_and_says_so(backend):
    from datetime import date

    index_documents([versioned(TRAVEL_2025, date(2025, 1, 1)),
                     versioned(TRAVEL_2026, date(2026, 1, 1), ("travel policy 2025",))], backend=backend)
    hits = search(backend, "what is the per diem for meals on a trip")
    assert [h.document_id for h in hits][:2] == ["travel-2026", "travel-2025"]
    assert hits[0].effective_date == date(2026, 1, 1) and hits[0].superseded_by == ""
    assert hits[1].superseded_by == "Travel Policy 2026"
    # Asked about the old edition by name, it is found first, still marked superseded.
    old = search(backend, "what was the 2025 per diem for meals")
    assert old[0].document_id == "travel-2025" and old[0].superseded_by == "Travel Policy 2026"
    stored = backend.get_document("travel-2026", EVERYONE)
    assert stored.effective_date == date(2026, 1, 1) and stored.supersedes == ("travel policy 2025",)


def test_a_later_edition_of_the_same_family_supersedes_without_saying_so(backend):
    from datetime import date

    index_documents([versioned(TRAVEL_2025, date(2025, 1, 1)), versioned(TRAVEL_2026, date(2026, 1, 1))],
                    backend=backend)
    by_id = {h.document_id: h for h in search(backend, "per diem for meals")}
    assert by_id["travel-2025"].superseded_by == "Travel Policy 2026" and by_id["travel-2026"].superseded_by == ""


def test_a_successor_the_asker_cannot_read_is_never_named_nor_counted(backend):
    from datetime import date

    finance = DocumentAcl(principals=frozenset({"group:finance"}), public=False, status="ok")
    index_documents([versioned(TRAVEL_2025, date(2025, 1, 1)),
                     versioned(TRAVEL_2026, date(2026, 1, 1), ("travel policy 2025",), acl=finance)], backend=backend)
    outsider = search(backend, "what is the per diem for meals on a trip")
    assert [h.document_id for h in outsider] == ["travel-2025"] and outsider[0].superseded_by == ""
    candidates = backend.version_candidates(title_keys=["travel policy 2025"], families=["travel policy"],
                                            principals=EVERYONE)
    assert [c.document_id for c in candidates] == ["travel-2025"]  # the old edition itself, nothing newer
    member = search(backend, "what is the per diem for meals on a trip", principals=frozenset({"group:finance"}))
    assert {h.document_id: h.superseded_by for h in member} == {"travel-2026": "", "travel-2025": "Travel Policy 2026"}
    [candidate] = backend.version_candidates(title_keys=["travel policy 2025"], families=[],
                                             principals=frozenset({"group:finance"}))
    assert (candidate.document_id, candidate.effective_date, candidate.supersedes) == (
        "travel-2026", date(2026, 1, 1), ("travel policy 2025",))
