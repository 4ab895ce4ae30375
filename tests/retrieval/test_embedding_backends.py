"""The embedding backends: ONNX Runtime (fp32 and int8) against plain PyTorch, the setting that picks one, the export
cache, and length-sorted batching."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.config import CitewiseSettings, SettingsError, load
from retrieval import embeddings
from retrieval.embeddings import OnnxEmbedder, SentenceTransformerEmbedder, get_embedder, length_sorted_batches
from retrieval.onnx_export import FP32_FILE, INT8_FILE, MANIFEST, ensure_export, export_directory, read_export

MODEL = "all-MiniLM-L6-v2"
SENTENCES = [
    "Parental leave is 16 weeks at full pay for every employee.",
    "   How do I reset my VPN password?   ",
    "Expense reports over 500 EUR need a director's approval.",
    "p53 (TP53) mutations were found in 40% of the tumours.",
    # Longer than the model's 256-token limit: both backends must truncate it the same way.
    "The committee reviewed the quarterly security incidents and the remediation plans. " * 30,
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(MODEL)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """A cache directory holding one export, made once for the module (an export takes seconds)."""
    cache = tmp_path_factory.mktemp("models")
    ensure_export(MODEL, embeddings.resolve_model_path(MODEL), cache)
    return cache


@pytest.mark.parametrize(("quantized", "least"), [(False, 0.9999), (True, 0.98)])
def test_onnx_vectors_match_the_torch_vectors(torch_embedder, model_cache, quantized, least):
    onnx = OnnxEmbedder(MODEL, quantized=quantized, cache_dir=model_cache)
    expected = torch_embedder.embed_documents(SENTENCES)
    vectors = onnx.embed_documents(SENTENCES)

    assert vectors.shape == expected.shape and vectors.dtype == np.float32
    cosines = np.sum(vectors * expected, axis=1)
    assert cosines.min() > least, cosines
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Same neighbours: each sentence is still closest to itself across the two backends.
    assert list(np.argmax(vectors @ expected.T, axis=1)) == list(range(len(SENTENCES)))
    assert onnx.embed_query(SENTENCES[0]) @ expected[0] > least
    assert onnx.count_tokens(SENTENCES) == torch_embedder.count_tokens(SENTENCES)
    assert (onnx.dimensions, onnx.max_tokens) == (torch_embedder.dimensions, torch_embedder.max_tokens)
    # The index and the embedding cache know the model, not the backend (docs/benchmarks.md, "Embedding backends").
    assert onnx.model_name == torch_embedder.model_name == MODEL


def test_length_sorted_batches_return_vectors_in_input_order(model_cache):
    onnx = OnnxEmbedder(MODEL, quantized=False, batch_size=2, cache_dir=model_cache)
    texts = [SENTENCES[4], "Short.", SENTENCES[0], "A medium sentence about the holiday calendar for 2026.",
             SENTENCES[1], "Tiny", SENTENCES[3]]

    together = onnx.embed_documents(texts)
    alone = np.stack([onnx.embed_documents([text])[0] for text in texts])

    assert np.allclose(together, alone, atol=1e-4)


def test_length_sorted_batches_group_similar_lengths_longest_first():
    lengths = [5, 300, 12, 7, 300, 40, 6, 9]
    batches = length_sorted_batches(lengths, max_tokens=600, max_rows=3)

    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert [lengths[batch[0]] for batch in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    for batch in batches:
        assert len(batch) <= 3
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 600
    assert batches[0] == [1, 4]  # two 300-token texts fill the 600-token budget
    assert length_sorted_batches([], 100, 4) == []


def test_the_export_is_reused(model_cache):
    directory = export_directory(MODEL, embeddings.resolve_model_path(MODEL), model_cache)
    before = {name: (directory / name).stat() for name in (FP32_FILE, INT8_FILE, MANIFEST)}

    found = ensure_export(MODEL, embeddings.resolve_model_path(MODEL), model_cache)
    OnnxEmbedder(MODEL, quantized=True, cache_dir=model_cache)

    assert found.directory == directory
    for name, stat in before.items():
        after = (directory / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), name


def test_a_damaged_or_partial_export_is_made_again(model_cache, tmp_path):
    path = embeddings.resolve_model_path(MODEL)
    cache = tmp_path / "models"
    directory = export_directory(MODEL, path, cache)
    shutil.copytree(export_directory(MODEL, path, model_cache), directory)
    assert read_export(directory) is not None
    damaged = directory / INT8_FILE
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])  # a half-written file
    assert read_export(directory) is None

    found = ensure_export(MODEL, path, cache)
    assert found.directory == directory and read_export(directory) is not None
    assert OnnxEmbedder(MODEL, quantized=True, cache_dir=cache).embed_query("leave policy").shape == (384,)

    (directory / MANIFEST).unlink()  # an export interrupted before its manifest was written
    assert read_export(directory) is None
    ensure_export(MODEL, path, cache)
    manifest = json.loads((directory / MANIFEST).read_text())
    assert set(manifest["files"]) >= {FP32_FILE, INT8_FILE}
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging directory left behind


@pytest.mark.parametrize(("backend", "kind"), [("torch", SentenceTransformerEmbedder), ("onnx", OnnxEmbedder),
                                               ("onnx-int8", OnnxEmbedder)])
def test_the_setting_selects_the_backend(settings, model_cache, backend, kind):
    settings.CITEWISE = settings.CITEWISE.replace(embedding_backend=backend, model_cache_dir=str(model_cache))

    embedder = get_embedder()

    assert isinstance(embedder, kind) and embedder.backend == backend
    assert get_embedder() is embedder  # kept for the process


def test_the_backend_setting_is_read_from_the_environment(monkeypatch, tmp_path):
    assert CitewiseSettings.model_fields["embedding_backend"].default == "onnx-int8"
    monkeypatch.setenv("CITEWISE_EMBEDDING_BACKEND", "torch")
    assert load(tmp_path).embedding_backend == "torch"
    monkeypatch.setenv("CITEWISE_EMBEDDING_BACKEND", "tensorflow")
    with pytest.raises(SettingsError, match="CITEWISE_EMBEDDING_BACKEND"):
        load(tmp_path)


SPOT_AWARDS = ("Managers can give a spot award of $250 to $1,000 to recognise exceptional work. Spot awards are paid "
               "in the next regular paycheck and are taxed as ordinary income. Nominations close on the 15th of each "
               "month. Peer bonuses of $50 can be sent by anyone through the recognition portal. Awards above $1,000 "
               "need a director's approval.")
LEAVE = ("Parental leave is 16 weeks at full pay. Employees must give four weeks' notice. Leave can be taken in up to "
         "three blocks within the first year.")


def test_int8_unit_scores_are_rescored_at_full_precision(settings, model_cache):
    from answers.scoring import score_units
    from tests.answers.test_extractive import passage

    fp32 = OnnxEmbedder(MODEL, quantized=False, cache_dir=model_cache)
    int8 = OnnxEmbedder(MODEL, quantized=True, cache_dir=model_cache)
    assert fp32.full_precision() is fp32
    assert int8.full_precision() is int8.full_precision() is not int8
    assert int8.full_precision().backend == "onnx"
    passages = [passage(1, SPOT_AWARDS, "rewards", "Total Rewards", "Recognition"),
                passage(2, LEAVE, "leave", "Leave Policy", "Parental leave")]
    question = "spot award range?"

    exact = {s.text: s.relevance for s in score_units(question, passages, embedder=fp32)}
    settings.CITEWISE = settings.CITEWISE.replace(answer_rescored_units=0)
    approximate = score_units(question, passages, embedder=int8)
    settings.CITEWISE = settings.CITEWISE.replace(answer_rescored_units=3)
    rescored = score_units(question, passages, embedder=int8)

    # int8 moves every unit's score (by about a hundredth: what crossed the refusal gate's bar)...
    assert max(abs(s.relevance - exact[s.text]) for s in approximate) > 2e-3
    # ...and the units closest to the question get their full-precision scores back, the rest keep int8's.
    by_relevance = sorted(rescored, key=lambda s: -s.relevance)
    assert all(abs(s.relevance - exact[s.text]) < 1e-4 for s in by_relevance[:3])
    assert max(abs(s.relevance - exact[s.text]) for s in by_relevance[3:]) > 1e-4
    assert by_relevance[0].text == max(exact, key=exact.__getitem__)


class RecordingBackend:
    """The configured search backend, noting the query vector each search is given."""

    def __init__(self, inner) -> None:
        self.inner, self.query_vectors = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, **kwargs):
        self.query_vectors.append(kwargs["query_vector"])
        return self.inner.search(**kwargs)


@pytest.mark.django_db
def test_questions_are_embedded_at_full_precision_when_documents_are_int8(settings, model_cache):
    from retrieval import selectors
    from retrieval.services import get_backend

    settings.CITEWISE = settings.CITEWISE.replace(embedding_backend="onnx-int8", model_cache_dir=str(model_cache))
    question = "how many weeks of parental leave do we get"
    backend = RecordingBackend(get_backend())

    selectors.search(question, principals=frozenset({"public"}), backend=backend)

    (vector,) = backend.query_vectors
    fp32 = OnnxEmbedder(MODEL, quantized=False, cache_dir=model_cache).embed_query(question)
    int8 = OnnxEmbedder(MODEL, quantized=True, cache_dir=model_cache).embed_query(question)
    assert float(vector @ fp32) > 0.99999
    assert float(int8 @ fp32) < 0.9999  # the two differ: the test tells them apart
    assert get_embedder().backend == "onnx-int8"  # documents are still embedded with int8 weights
