"""A source folder that is missing, unmounted or partly unreadable: a clear error, and nothing pruned."""

from __future__ import annotations

import os
import subprocess

import pytest

from connectors import services, tasks
from connectors.base import SourceUnavailable
from connectors.models import Document, Source
from identity.models import Group
from tests.connectors.conftest import found, unprivileged, write_manifest

pytestmark = pytest.mark.django_db


def write_folder(folder):
    (folder / "private").mkdir(parents=True)
    (folder / "notes.txt").write_text("The cafeteria serves ramen on Thursdays.\n")
    (folder / "private" / "salaries.md").write_text("# Salaries\n\nThe quokka bonus is paid in March.\n")
    write_manifest(folder, groups={"group:finance": ["email:alice@corp.example"]})
    return folder


def test_a_missing_source_folder_fails_the_sync_and_deletes_nothing(tmp_path, make_folder_source):
    """Reproduces issue 10 item 6: a missing or unmounted source folder pruned every document of the source."""
    folder = write_folder(tmp_path / "docs")
    source = make_folder_source(folder)
    assert services.sync_source(source).indexed == 2
    services.sync_permissions(source)
    documents = dict(Document.objects.filter(source=source).values_list("external_id", "id"))
    assert found(source, "ramen") == [documents["notes.txt"]]

    folder.rename(tmp_path / "unmounted")
    with pytest.raises(SourceUnavailable, match=f"{folder}: the folder does not exist or is not mounted"):
        services.sync_source(source)
    with pytest.raises(SourceUnavailable, match="nothing was pruned"):
        tasks.sync_source.delay(source.id)  # the task fails with the same message (eager here)
    with pytest.raises(SourceUnavailable, match="does not exist or is not mounted"):
        services.sync_permissions(source)
    assert dict(Document.objects.filter(source=source).values_list("external_id", "id")) == documents
    assert found(source, "ramen") == [documents["notes.txt"]]
    assert Group.objects.get(source=source).memberships.count() == 1  # group memberships are not emptied either

    (tmp_path / "unmounted").rename(folder)
    again = services.sync_source(source)
    assert (again.unchanged, again.deleted, again.listing_complete) == (2, 0, True)


def test_an_unreadable_subfolder_is_reported_and_its_files_are_not_pruned(shared_tmp, make_folder_source, settings,
                                                                          embedder):
    """Reproduces issue 10 item 6: an unreadable subfolder was skipped silently and its files pruned."""
    from retrieval import services as retrieval_services

    settings.CITEWISE = settings.CITEWISE.replace(embedded_index_dir=shared_tmp / "index")
    retrieval_services._backends.clear()
    with unprivileged():
        folder = write_folder(shared_tmp / "docs")
        source = make_folder_source(folder)
        assert services.sync_source(source).indexed == 2
        os.chmod(folder / "private", 0)
        try:
            content = services.sync_source(source)
            prune = services.run_sync(source, "prune")
        finally:
            os.chmod(folder / "private", 0o755)  # noqa: S103 - restores the directory the test made unreadable
    salaries = Document.objects.get(source=source, external_id="private/salaries.md")
    assert (content.deleted, content.listing_complete) == (0, False)
    [(where, message)] = content.errors
    assert where == "private" and message.startswith("unreadable_folder: ")
    assert (prune.deleted, prune.state) == (0, "partial")
    assert [(error["item"], error["error"]) for error in prune.errors] == content.errors
    assert found(source, "quokka bonus") == [salaries.id]

    # Readable again: a complete listing prunes what is really gone.
    (folder / "private" / "salaries.md").unlink()
    assert services.sync_source(source).deleted == 1
    assert found(source, "quokka bonus") == []


def test_an_unmounted_share_fails_the_sync_and_deletes_nothing(tmp_path, make_folder_source):
    """Reproduces issue 10 item 6: an unmounted share leaves its mount point behind as an empty folder, which
    listed as "every file was deleted" and pruned the whole source. Needs root, as CI runs, to mount a tmpfs."""
    share = tmp_path / "share"
    share.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "citewise-test", str(share)], check=True)
    try:
        write_folder(share)
        source = make_folder_source(share)
        assert services.sync_source(source).indexed == 2
        source.refresh_from_db()
        assert source.sync_state == {"mount_point": str(share)}
    finally:
        subprocess.run(["umount", str(share)], check=True)
    documents = dict(Document.objects.filter(source=source).values_list("external_id", "id"))

    assert share.is_dir() and not any(share.iterdir())  # what an unmounted share looks like
    with pytest.raises(SourceUnavailable, match="looks unmounted; nothing was indexed and nothing was pruned"):
        services.sync_source(source)
    with pytest.raises(SourceUnavailable, match="looks unmounted"):
        services.sync_permissions(source)
    assert dict(Document.objects.filter(source=source).values_list("external_id", "id")) == documents
    assert found(source, "ramen") == [documents["notes.txt"]]

    # An admin who moved the folder off the share on purpose clears the remembered mount point.
    Source.objects.filter(pk=source.pk).update(sync_state={})
    source.refresh_from_db()
    assert services.sync_source(source).deleted == 2
    assert found(source, "ramen") == []
