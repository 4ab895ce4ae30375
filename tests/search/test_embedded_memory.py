"""The embedded backend's in-memory legs (search/backends/embedded_memory.py) against the SQL they replaced.

The SQL legs (EmbeddedBackend(search_in_memory=False)) are the reference: on a corpus with ACLs of every kind,
filters and identifiers, both must return the same hits with the same scores and ranks, and neither a chunk its
reader may not see.
"""

from __future__ import annotations

import random
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from search.analysis import analyzed_text, identifiers
from search.backends.base import DocumentChunks
from search.backends.embedded import EmbeddedBackend
from search.backends.embedded_memory import fts_tokens
from search.types import Chunk, DocumentAcl, FusionConfig, IndexedDocument, SearchFilters, SearchMode

MODEL, DIMENSIONS = "test-model", 16
WORDS = ["hotel", "travel", "budget", "laptop", "policy", "leave", "parental", "firmware", "deploy", "incident",
         "warehouse", "charger", "robot", "night", "receipt", "flight", "economy", "canteen", "parking", "bicycle",
         "café", "naïve", "Zürich", "façade", "résumé"]
IDENTIFIERS = ["AB-123", "X9000", "max_retries", "RFC-2616"]
PRINCIPALS = [f"group:{i}" for i in range(12)] + [f"user:{i}" for i in range(20)]
SOURCES, MIME_TYPES = ["1", "2", "3"], ["text/plain", "text/markdown", "application/pdf"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector, axis=-1, keepdims=True)).astype(np.float32)


def random_acl(rng: random.Random) -> DocumentAcl:
    kind = rng.random()
    if kind < 0.15:
        return DocumentAcl(public=True, status="ok")
    if kind < 0.2:
        return DocumentAcl(principals=frozenset(rng.sample(PRINCIPALS, 2)), public=rng.random() < 0.5,
                           status=rng.choice(["unknown", "error"]))
    return DocumentAcl(principals=frozenset(rng.sample(PRINCIPALS, rng.randint(1, 3))), status="ok")


def corpus(seed: int, documents: int, dimensions: int = DIMENSIONS, chunks_per_document: tuple[int, int] = (1, 4)
           ) -> tuple[list[DocumentChunks], dict[str, DocumentAcl]]:
    rng = random.Random(seed)
    vectors = np.random.default_rng(seed)
    # Embeddings live near a low-dimensional subspace; so do these (40 directions and a little noise).
    directions = vectors.standard_normal((40, dimensions))
    batch, acls = [], {}
    for d in range(documents):
        document_id = f"doc-{d:03d}"
        acl = random_acl(rng)
        acls[document_id] = acl
        document = IndexedDocument(document_id, rng.choice(SOURCES), f"Title {d}", f"https://x.example/{d}",
                                   rng.choice(MIME_TYPES), START + timedelta(days=rng.randrange(300)), acl)
        chunks, texts = [], []
        for ordinal in range(rng.randint(*chunks_per_document)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 30))]
            if rng.random() < 0.2:
                words.insert(rng.randrange(len(words)), rng.choice(IDENTIFIERS))
            if rng.random() < 0.1:  # the same text in two chunks: tied scores, settled by chunk id
                words = ["hotel", "night", "receipt"]
            text = " ".join(words)
            texts.append(text)
            chunks.append(Chunk(f"{document_id}:{ordinal}", document_id, ordinal, text, (), 0, 0, len(text),
                                f"hash-{d}-{ordinal}"))
        # Some vectors repeat too, for ties in the dense leg.
        matrix = unit(vectors.standard_normal((len(chunks), 40)) @ directions
                      + 0.05 * vectors.standard_normal((len(chunks), dimensions)))
        if rng.random() < 0.1:
            matrix[:] = matrix[0]
        batch.append(DocumentChunks(document, chunks, matrix, [analyzed_text(t) for t in texts],
                                    identifiers=[identifiers(t) for t in texts]))
    return batch, acls


def readable(acl: DocumentAcl, principals: frozenset[str]) -> bool:
    return acl.status == "ok" and (acl.public or bool(acl.principals & principals))


READERS = [frozenset(), frozenset({"user:3"}), frozenset({"group:1", "user:7"}), frozenset(PRINCIPALS[:10]),
           frozenset(PRINCIPALS), frozenset({"nobody"})]
FILTERS = [SearchFilters(), SearchFilters(source_ids=("1", "3")), SearchFilters(mime_types=("text/plain",)),
           SearchFilters(document_ids=("doc-001", "doc-007", "doc-042", "missing")),
           SearchFilters(modified_after=START + timedelta(days=100), modified_before=START + timedelta(days=200)),
           SearchFilters(source_ids=("nowhere",))]
QUERIES = ["hotel night receipt", "parental leave policy", "AB-123 firmware", "cafe naive zurich", "façade résumé",
           "X9000 robot charger max_retries", "flight", "nothing matches this", ""]


@pytest.fixture
def indexed(tmp_path):
    memory = EmbeddedBackend(tmp_path, "equivalence")
    memory.ensure_index(MODEL, DIMENSIONS)
    batch, acls = corpus(seed=3, documents=120)
    for start in range(0, len(batch), 25):
        memory.replace_documents(batch[start:start + 25], embedding_model=MODEL)
    reference = EmbeddedBackend(tmp_path, "equivalence", search_in_memory=False)
    return memory, reference, acls


FUSION = FusionConfig(candidates_per_leg=30)


def run(backend, principals, query, mode, filters, limit=10, fusion=FUSION, dimensions=DIMENSIONS):
    vector = unit(np.random.default_rng(zlib.crc32(query.encode())).standard_normal(dimensions))
    return backend.search(principals=principals, query=query, analyzed_query=analyzed_text(query),
                          query_vector=vector, embedding_model=MODEL, mode=mode, filters=filters, limit=limit,
                          fusion=fusion, identifiers=identifiers(query))


def hit_keys(hits):
    # Dense scores are float32 products, whose last bits depend on how many rows one BLAS call multiplies.
    return [(h.chunk_id, round(h.score, 6), h.bm25_rank, h.dense_rank) for h in hits]


@pytest.mark.parametrize("mode", list(SearchMode))
def test_in_memory_legs_return_what_the_sql_legs_return_and_only_what_the_reader_may_see(indexed, mode):
    memory, reference, acls = indexed
    compared = 0
    for principals in READERS:
        for filters in FILTERS:
            for query in QUERIES:
                if mode != SearchMode.BM25 or query:
                    expected = run(reference, principals, query, mode, filters)
                    found = run(memory, principals, query, mode, filters)
                    assert hit_keys(found) == hit_keys(expected), (principals, filters, query)
                    assert all(readable(acls[h.document_id], principals) for h in found)
                    compared += len(found)
    assert compared > 100  # the corpus and queries do find things


def test_each_leg_alone_matches_its_sql_leg_to_the_full_depth(indexed):
    """Deeper than the fused top 10: every candidate of each leg, in order, with its score."""
    memory, reference, _ = indexed
    state = memory._state()
    index = memory._memory_index(state)
    for principals in READERS:
        where, params = reference._filter_sql(principals, SearchFilters())
        visible = index.visible(principals, SearchFilters(), {})
        for query in QUERIES:
            terms = analyzed_text(query)
            assert [(h.chunk_id, round(h.score, 9)) for h in index.bm25(terms.split(), visible, 500)] == \
                [(h.chunk_id, round(h.score, 9)) for h in reference._bm25(state.connection, terms, where, params, 500)]
            named = identifiers(query)
            assert index.exact(named, visible, 500) == reference._exact(state.connection, named, where, params, 500)


def test_bm25_terms_are_tokenized_as_fts5_tokenizes_them(tmp_path):
    rows = ["hotel night", "café naïve", "zürich façade x9000", "ab 123", "", "Ω-meter 2nd"]
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE t USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2')")
    connection.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    connection.executemany("INSERT INTO t(rowid, terms) VALUES (?, ?)", list(enumerate(rows, 1)))
    for rowid, text in enumerate(rows, 1):
        expected = [term for (term,) in connection.execute("SELECT term FROM v WHERE doc = ? ORDER BY offset",
                                                            (rowid,))]
        assert fts_tokens(text) == expected


def test_a_permission_change_is_searched_at_once_without_reading_the_chunks_again(indexed):
    memory, _, acls = indexed
    private = next(d for d, acl in acls.items() if acl.status == "ok" and not acl.public)
    reader = frozenset({"user:newcomer"})

    def documents_found():
        return {h.document_id for q in QUERIES for h in run(memory, reader, q, SearchMode.HYBRID, SearchFilters(),
                                                             limit=200)}

    before = documents_found()
    matrix = memory._memory_index(memory._state()).matrix
    assert private not in before
    memory.update_acls([(private, DocumentAcl(principals=frozenset(reader), status="ok"))])
    assert documents_found() == before | {private}
    assert memory._memory_index(memory._state()).matrix is matrix  # the vectors were not read again

    batch, _ = corpus(seed=5, documents=1)
    memory.replace_documents(batch, embedding_model=MODEL)  # new text: everything is read again
    assert memory._memory_index(memory._state()).matrix is not matrix


def test_deleted_and_replaced_documents_leave_the_memory_index(indexed):
    memory, reference, _ = indexed
    everyone = frozenset(PRINCIPALS)
    found = run(memory, everyone, "hotel night receipt", SearchMode.HYBRID, SearchFilters(), limit=50)
    gone = found[0].document_id
    memory.delete_documents([gone])
    batch, _ = corpus(seed=99, documents=5)
    memory.replace_documents(batch, embedding_model=MODEL)  # doc-000..doc-004 replaced with other text
    for query in QUERIES:
        after = run(memory, everyone, query, SearchMode.HYBRID, SearchFilters(), limit=50)
        assert gone not in {h.document_id for h in after}
        assert hit_keys(after) == hit_keys(run(reference, everyone, query, SearchMode.HYBRID, SearchFilters(),
                                               limit=50))


def test_the_approximate_dense_pass_finds_what_exact_search_finds_and_nothing_unreadable(tmp_path):
    """The projected first pass (CITEWISE_EMBEDDED_DENSE_SEARCH=approximate) on an index past its threshold, where
    readers see more chunks than it rescores exactly, against exact search over the same file."""
    dimensions = 384
    approximate = EmbeddedBackend(tmp_path, "approximate", approximate_from=1000)
    approximate.ensure_index(MODEL, dimensions)
    batch, acls = corpus(seed=11, documents=400, dimensions=dimensions, chunks_per_document=(4, 8))
    for start in range(0, len(batch), 50):
        approximate.replace_documents(batch[start:start + 50], embedding_model=MODEL)
    exact = EmbeddedBackend(tmp_path, "approximate", dense_search="exact")
    index = approximate._memory_index(approximate._state())
    assert index.projection is not None and index.size > 2000
    assert exact._memory_index(exact._state()).projection is None
    fusion = FusionConfig(candidates_per_leg=100)  # 1,000 rescored: fewer than most readers may see
    engaged = 0
    for principals in READERS:
        engaged += int(index.visible(principals, SearchFilters(), {}).sum() > 1000)
        for query in QUERIES:
            for mode in (SearchMode.DENSE, SearchMode.HYBRID):
                found = run(approximate, principals, query, mode, SearchFilters(), fusion=fusion,
                            dimensions=dimensions)
                assert hit_keys(found) == hit_keys(run(exact, principals, query, mode, SearchFilters(),
                                                       fusion=fusion, dimensions=dimensions))
                assert all(readable(acls[h.document_id], principals) for h in found)
    assert engaged >= 2  # the approximate pass ran, for readers with more readable chunks than it rescores
