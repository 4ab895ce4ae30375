"""Links in a source folder: read where they stay inside it, refused (and said so) where they lead out."""

from __future__ import annotations

import os
import shutil

import pytest

from connectors import services
from connectors.base import ItemError
from connectors.models import Document
from connectors.sources.filesystem import FilesystemConnector
from tests.connectors.conftest import found

pytestmark = pytest.mark.django_db
SECRET = "The vault combination is 4711 for the zebra room.\n"


@pytest.fixture
def outside(tmp_path):
    """Files next to the source folder that the worker can read but nobody connected."""
    folder = tmp_path / "outside"
    (folder / "secrets").mkdir(parents=True)
    (folder / "secret.txt").write_text(SECRET)
    (folder / "secrets" / "plan.md").write_text("# Plan\n\nThe zebra room vault opens with 4711.\n")
    return folder


@pytest.fixture
def folder(tmp_path, outside):
    root = tmp_path / "docs"
    (root / "real").mkdir(parents=True)
    (root / "handbook.md").write_text("# Handbook\n\nThe cafeteria serves ramen on Thursdays.\n")
    (root / "real" / "inner.md").write_text("# Inner\n\nBadges must be worn above the waist.\n")
    (root / "leak.txt").symlink_to(outside / "secret.txt")  # a link to a file outside
    (root / "up.txt").symlink_to("../outside/secret.txt")  # the same, relative
    (root / "shared").symlink_to(outside / "secrets", target_is_directory=True)  # a link to a folder outside
    (root / "real" / "escape.txt").symlink_to(outside / "secret.txt")  # inside a folder reached through a link
    (root / "linked").symlink_to(root / "real", target_is_directory=True)  # a folder link that stays inside
    (root / "alias.md").symlink_to("handbook.md")  # a file link that stays inside
    (root / "hop.txt").symlink_to("leak.txt")  # a chain of links that ends outside
    return root


def test_links_that_leave_the_source_folder_are_refused_and_recorded(folder, make_folder_source):
    """Reproduces issue 10 item 3: ingest followed links out of the source folder and indexed what they led to."""
    source = make_folder_source(folder, public=True)
    report = services.sync_source(source)

    assert found(source, "vault combination zebra") == []
    refused = {"leak.txt", "up.txt", "shared", "real/escape.txt", "linked/escape.txt", "hop.txt"}
    errors = {where: message for where, message in report.errors}
    assert {where for where in errors if errors[where].startswith("symlink_outside_root: ")} == refused - {
        "linked/escape.txt"}  # the folder link inside the root is not walked twice: real/ is listed already
    documents = {d.external_id: d for d in Document.objects.filter(source=source)}
    assert documents["leak.txt"].status == "error"
    assert documents["leak.txt"].error.startswith("symlink_outside_root: ")
    assert not documents["leak.txt"].indexed_hash and not any(p.startswith("shared/") for p in documents)
    # Links that stay inside are read.
    assert documents["alias.md"].status == documents["real/inner.md"].status == "indexed"
    assert set(found(source, "ramen")) == {documents["alias.md"].id, documents["handbook.md"].id}
    assert (report.indexed, report.failed) == (3, 5)


def test_a_file_that_becomes_a_link_out_of_the_folder_leaves_the_index(folder, outside, make_folder_source):
    """Reproduces issue 10 item 3: what a link to a file outside the folder led to stayed searchable."""
    for link in ("leak.txt", "up.txt", "shared", "real/escape.txt", "hop.txt"):
        os.unlink(folder / link)
    source = make_folder_source(folder, public=True)
    assert services.sync_source(source).failed == 0
    handbook = Document.objects.get(source=source, external_id="handbook.md")
    assert found(source, "ramen") == [handbook.id] or set(found(source, "ramen")) == {
        handbook.id, Document.objects.get(source=source, external_id="alias.md").id}

    (folder / "handbook.md").unlink()
    (folder / "handbook.md").symlink_to(outside / "secret.txt")
    report = services.sync_source(source)
    handbook.refresh_from_db()
    assert handbook.status == "error" and handbook.error.startswith("symlink_outside_root: ")
    assert found(source, "vault combination zebra") == []
    assert handbook.id not in found(source, "ramen")  # its earlier chunks are withdrawn, not kept as "last good"
    assert (handbook.indexed_hash, handbook.chunk_count) == ("", 0)
    assert ("handbook.md", handbook.error) in report.errors


def test_the_check_is_made_again_when_the_file_is_read(folder, outside):
    """Reproduces issue 10 item 3: a file swapped for a link between listing and reading was read through it."""
    for link in ("leak.txt", "up.txt", "shared", "real/escape.txt", "hop.txt"):
        os.unlink(folder / link)
    items = {item.external_id: item for item in FilesystemConnector(folder).load()}
    assert items["handbook.md"].read().startswith(b"# Handbook")

    (folder / "handbook.md").unlink()
    (folder / "handbook.md").symlink_to(outside / "secret.txt")
    shutil.rmtree(folder / "real")
    (folder / "real").symlink_to(outside / "secrets", target_is_directory=True)
    (outside / "secrets" / "inner.md").write_text(SECRET)
    for external_id in ("handbook.md", "real/inner.md", "alias.md"):
        with pytest.raises(ItemError) as refused:
            items[external_id].read()
        assert refused.value.code == "symlink_outside_root", external_id
