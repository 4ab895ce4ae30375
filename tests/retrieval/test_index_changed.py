"""Every write to the index is announced with index_changed, naming the documents and sources it touched."""

from __future__ import annotations

import pytest

from retrieval import services
from retrieval.signals import index_changed
from search.types import DocumentAcl


class RecordingBackend:
    """Takes writes without an index behind it; only what the announcement says is under test."""

    name, index_name = "recording", "test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def delete_documents(self, document_ids: list[str]) -> None:
        self.calls.append(("delete", document_ids))

    def update_acls(self, acls: list[tuple[str, DocumentAcl]]) -> None:
        self.calls.append(("acls", acls))

    def promote(self, staged: object) -> None:
        self.calls.append(("promote", staged))


@pytest.fixture
def announced():
    heard: list[dict] = []

    def listen(sender: type, **kwargs: object) -> None:
        heard.append(kwargs)

    index_changed.connect(listen)
    yield heard
    index_changed.disconnect(listen)


def test_deletes_acl_changes_and_a_swap_are_announced(announced):
    backend = RecordingBackend()
    services.delete_documents(["d1", "d2"], backend=backend, source_ids=[7])
    services.update_acls([("d3", DocumentAcl.public_ok())], backend=backend)
    services.promote(backend, "staged")
    assert [call[0] for call in backend.calls] == ["delete", "acls", "promote"]
    assert [(a["backend"], a["document_ids"], a["source_ids"]) for a in announced] == [
        (backend, frozenset({"d1", "d2"}), frozenset({"7"})),
        (backend, frozenset({"d3"}), frozenset()),
        (backend, None, frozenset()),  # a rebuilt index: everything may have changed
    ]


def test_nothing_to_write_is_neither_written_nor_announced(announced):
    backend = RecordingBackend()
    services.delete_documents([], backend=backend)
    services.update_acls([], backend=backend)
    assert backend.calls == [] and announced == []
