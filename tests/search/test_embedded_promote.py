"""The embedded index swaps files through a pointer every process follows, and hides what an ACL change hides."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.parsing import Section
from retrieval.services import DocumentToIndex, fusion_config, index_documents
from search.backends.embedded import EmbeddedBackend
from search.types import DocumentAcl, IndexedDocument, SearchFilters, SearchMode
from tests.search.test_backend_contract import Searcher

pytestmark = pytest.mark.django_db

EVERYONE = frozenset()


def doc(doc_id: str, text: str, acl: DocumentAcl | None = None) -> DocumentToIndex:
    return DocumentToIndex(
        IndexedDocument(document_id=doc_id, source_id="1", title=doc_id, url=f"https://intranet.example/{doc_id}",
                        mime_type="text/markdown", modified_at=datetime(2026, 1, 15, tzinfo=UTC),
                        acl=acl or DocumentAcl.public_ok()),
        [Section((doc_id,), text)],
    )


def physical_files(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.glob(f"{name}*.sqlite3"))


def test_another_process_serving_the_index_follows_a_promote(tmp_path, embedder):
    """Reproduces issue 10 item 9: promote renames a file over the live index, so a process with an open
    connection keeps serving the orphaned old file."""
    directory, name = tmp_path / "index", "shared"
    live = EmbeddedBackend(directory, name)
    index_documents([doc("canteen", "The canteen opens at eight in the morning.")], backend=live)
    old_file = Path(live.index_info().physical_name)
    searcher = Searcher(live)
    try:
        for mode in (SearchMode.BM25, SearchMode.DENSE):
            assert "eight" in searcher.search("when does the canteen open", mode, embedder)[0][1]

        staged = live.staging(embedder.model_name, embedder.dimensions)
        index_documents([doc("canteen", "The canteen now opens at nine in the morning.")], backend=staged)
        live.promote(staged)
        # The searcher still has the old file open: it is not removed from under it.
        assert old_file.exists()

        for mode in (SearchMode.BM25, SearchMode.DENSE):
            assert "nine" in searcher.search("when does the canteen open", mode, embedder)[0][1], mode
    finally:
        searcher.quit()
    assert Path(live.index_info().physical_name) != old_file
    # Once no process uses it, the old file goes (at the latest with the next rebuild's collection).
    live.remove_stale_versions()
    assert not old_file.exists()
    assert physical_files(directory, name) == [Path(live.index_info().physical_name).name]


def test_a_thread_opening_the_promoted_file_never_uses_the_old_files_vectors(tmp_path, embedder):
    """Reproduces issue 10 item 9: the in-memory vectors are keyed by a generation number alone, which the
    promoted file shares with the old one, so a new connection ranks the new file with the old vectors."""
    directory, name = tmp_path / "index", "threads"
    serving = EmbeddedBackend(directory, name)
    index_documents([doc("canteen", "The canteen opens at eight in the morning."),
                     doc("parking", "The parking garage closes at ten at night.")], backend=serving)
    rebuilder = EmbeddedBackend(directory, name)  # another process's view of the same index
    staged = rebuilder.staging(embedder.model_name, embedder.dimensions)
    index_documents([doc("canteen", "The canteen opens at eight in the morning."),
                     doc("parking", "The parking garage closes at ten at night."),
                     doc("bikes", "Bicycles are stored in the locked shed behind building B.")], backend=staged)

    def generation(backend: EmbeddedBackend) -> int:
        with sqlite3.connect(backend.index_info().physical_name) as connection:
            return int(connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    # Each write counts one generation up; equal counts in two files are what production meets by chance.
    while generation(serving) < generation(staged):
        serving.update_acls([("canteen", DocumentAcl.public_ok())])
    while generation(staged) < generation(serving):
        staged.update_acls([("canteen", DocumentAcl.public_ok())])

    def dense(query: str) -> list[str]:
        found: list[str] = []

        def run() -> None:  # each thread has its own connection, as a threaded web server's would
            found.extend(h.document_id for h in serving.search(
                principals=EVERYONE, query=query, analyzed_query="", query_vector=embedder.embed_query(query),
                embedding_model=embedder.model_name, mode=SearchMode.DENSE, filters=SearchFilters(), limit=3,
                fusion=fusion_config()))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return found

    assert dense("where do I park my car")[0] == "parking"
    rebuilder.promote(staged)

    assert dense("where can I leave my bicycle")[0] == "bikes"


@pytest.mark.parametrize("mode", list(SearchMode))
def test_a_chunk_made_private_between_the_legs_and_hydration_is_not_returned(tmp_path, embedder, mode):
    """Reproduces issue 10 item 9: hydration reads chunks without the ACL filter, so a document made private
    after the legs ran is still returned."""
    directory, name = tmp_path / "index", "acl"
    backend = EmbeddedBackend(directory, name)
    index_documents([doc("plan", "The board plans to acquire the hotel booking startup Roomly.")], backend=backend)
    board_only = DocumentAcl(principals=frozenset({"group:board"}), public=False, status="ok")
    writer = EmbeddedBackend(directory, name)  # another connection, as the permission-sync worker's would be
    revoked: list[str] = []

    def revoke_before_hydration(statement: str) -> None:
        # SQLite calls this as each statement starts: the revocation commits after the legs, before hydration.
        if "c.heading_path" in statement and not revoked:
            revoked.append(statement)
            writer.update_acls([("plan", board_only)])

    query = "hotel booking startup acquisition"
    backend._connection().set_trace_callback(revoke_before_hydration)
    hits = backend.search(principals=EVERYONE, query=query, analyzed_query="hotel book startup acquisit",
                          query_vector=embedder.embed_query(query), embedding_model=embedder.model_name, mode=mode,
                          filters=SearchFilters(), limit=5, fusion=fusion_config())
    assert revoked, "the hydration statement never ran"
    assert hits == []
