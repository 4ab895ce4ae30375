"""A sentence-transformers model exported to ONNX (fp32 and int8), once, into a cache directory.

The export is made here, offline, from the weights already on disk (the bundled all-MiniLM-L6-v2 by default):
nothing is downloaded. sentence-transformers' own ONNX export goes through optimum-onnx, which pins
transformers < 4.58 while Citewise runs 5.x, so the same three steps are done with torch and ONNX Runtime directly:

1. torch.onnx.export of the whole SentenceTransformer (transformer, pooling, normalisation), so the graph returns
   the sentence embedding the torch path returns, whatever the model's pooling;
2. ONNX Runtime's transformer optimiser fuses attention, layer norms and GELU (BERT-style encoders);
3. dynamic int8 quantisation of the fused graph's matrix weights, per output channel, all but the feed-forward
   output projections: per-tensor scales cost ~0.06 of cosine with the fp32 vectors on MiniLM (mean 0.94);
   per-channel scales with those projections in fp32 keep the mean at 0.997.

A finished export is one directory named by a key over the model's files and the versions of every library the
export goes through, so an upgrade or a changed model makes a new one. It is built in a temporary directory beside
its final place and renamed into it, and its manifest (written last) records each file's SHA-256: a directory
without a manifest, or whose file does not match it, is incomplete or damaged and is built again. A file lock keeps
two processes from exporting the same model at once (the second waits, then finds the first one's export).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("citewise.retrieval.onnx_export")

# Bump when the export recipe changes what it writes, so existing exports are made again.
EXPORT_VERSION = 2
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_DIR = "tokenizer"
MANIFEST = "manifest.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The libraries whose versions change what an export contains.
_LIBRARIES = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime")
# The exported graph must reproduce the torch vectors it was made from (checked on these before it is kept).
_PROBES = ("Parental leave is 16 weeks at full pay.",
           "  How many days of annual leave do new employees get?  ",
           "The p53 tumour suppressor regulates the cell cycle and apoptosis in response to DNA damage. " * 12)
_MIN_COSINE = {FP32_FILE: 0.9999, INT8_FILE: 0.98}


class ExportError(RuntimeError):
    """The model could not be exported, or its export does not reproduce the torch vectors."""


@dataclass(frozen=True)
class Export:
    directory: Path
    dimensions: int
    max_tokens: int
    input_names: tuple[str, ...]

    def model_file(self, quantized: bool) -> Path:
        return self.directory / (INT8_FILE if quantized else FP32_FILE)

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / TOKENIZER_DIR


def default_cache_dir() -> Path:
    """Where exports live unless CITEWISE_MODEL_CACHE_DIR says otherwise: the user's cache, so every var dir,
    test session and benchmark on the machine shares one export per model."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "citewise" / "models"


def export_key(model_path: str) -> str:
    """Names an export: the model's files (path, size, modification time) and the exporting libraries' versions."""
    digest = hashlib.sha256(f"recipe={EXPORT_VERSION}".encode())
    root = Path(model_path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise ExportError(f"{model_path}: not a local model directory (nothing is downloaded at run time)")
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(str(root.resolve()).encode())
    for library in _LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{library}={version}".encode())
    return digest.hexdigest()[:16]


def export_directory(model_name: str, model_path: str, cache_dir: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-.") or "model"
    return cache_dir / f"{slug}-{export_key(model_path)}"


def ensure_export(model_name: str, model_path: str, cache_dir: Path) -> Export:
    """The model's export in cache_dir, made now if there is none or the one there is incomplete or damaged."""
    directory = export_directory(model_name, model_path, cache_dir)
    found = read_export(directory)
    if found is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f"{directory.name}.lock"):
        found = read_export(directory)  # another process may have made it while this one waited
        if found is not None:
            return found
        if directory.exists():
            logger.warning("ONNX export %s is incomplete or damaged; exporting again", directory)
            shutil.rmtree(directory)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=cache_dir))
        try:
            logger.info("exporting %s to ONNX (fp32 and int8) into %s", model_name, directory)
            _export(model_path, staging)
            staging.chmod(0o755)  # mkdtemp's 0700 would hide it from other users of a shared cache (a built image)
            os.replace(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    found = read_export(directory)
    if found is None:
        raise ExportError(f"the ONNX export of {model_name} in {directory} does not check out after exporting it")
    return found


def read_export(directory: Path) -> Export | None:
    """The export in directory, or None when it is missing, partial, or a file does not match its manifest."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        for name, expected in manifest["files"].items():
            if _sha256(directory / name) != expected:
                return None
        return Export(directory, int(manifest["dimensions"]), int(manifest["max_tokens"]),
                      tuple(manifest["input_names"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export(model_path: str, target: Path) -> None:
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    # Eager attention traces to the MatMul/Softmax pattern ONNX Runtime's optimiser fuses into one Attention node.
    model = SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"}).eval()
    dimension_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dimensions = dimension_of()
    if dimensions is None:
        raise ExportError(f"{model_path}: the model does not say how long its vectors are")
    max_tokens = int(model.max_seq_length or 512)
    tokenizer = model.tokenizer
    sample = tokenizer(list(_PROBES[:2]), padding=True, return_tensors="pt")
    input_names = tuple(name for name in INPUT_NAMES if name in sample)
    wrapper = _sentence_embedding_module(model, input_names).eval()
    raw = target / "raw.onnx"
    with torch.inference_mode(), warnings.catch_warnings():
        # Tracing warns about every shape-dependent branch of the model; the probes below check the result instead.
        warnings.simplefilter("ignore")
        # The TorchScript exporter: it traces this encoder as is (the dynamo exporter needs shape hints it cannot
        # infer from the tokenizer's padding), and its graph is the one the optimiser's fusions recognise.
        torch.onnx.export(
            wrapper, tuple(sample[name] for name in input_names), str(raw), dynamo=False, opset_version=17,
            input_names=list(input_names), output_names=["sentence_embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in input_names},
                          "sentence_embedding": {0: "batch"}},
        )
    _optimise(raw, target / FP32_FILE, model)
    raw.unlink()
    # The matrix products' weights only: int8 word embeddings (Gather) cost accuracy and save no time. The
    # feed-forward output projections stay fp32: their input, the GELU's output, has outliers that 8-bit dynamic
    # activation ranges flatten; keeping them halves the cosine lost (1 - cos 0.0063 -> 0.0032 on SciFact
    # abstracts) for ~15% of the int8 speed.
    quantize_dynamic(target / FP32_FILE, target / INT8_FILE, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=_fed_by_gelu(target / FP32_FILE),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    tokenizer.save_pretrained(target / TOKENIZER_DIR)
    reference = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
    for name in (FP32_FILE, INT8_FILE):
        vectors = _run_probe(target / name, tokenizer, input_names, max_tokens)
        cosine = float(np.min(np.sum(vectors * reference, axis=1)))
        if cosine < _MIN_COSINE[name]:
            raise ExportError(f"{model_path}: {name} gives vectors at cosine {cosine:.4f} from the torch model's "
                              f"(at least {_MIN_COSINE[name]} needed); use CITEWISE_EMBEDDING_BACKEND=torch")
    files = {path.relative_to(target).as_posix(): _sha256(path) for path in sorted(target.rglob("*")) if path.is_file()}
    manifest = {"dimensions": int(dimensions), "max_tokens": max_tokens, "input_names": list(input_names),
                "files": files, "source": model_path, "export_version": EXPORT_VERSION}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _optimise(source: Path, target: Path, model: Any) -> None:
    """Fuse the graph for ONNX Runtime when it is a BERT encoder (the fusions checked here); other models are kept as
    exported (ONNX Runtime still applies its generic optimisations when it loads them)."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    if config is None or getattr(config, "model_type", "") != "bert":
        shutil.copyfile(source, target)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = optimize_model(str(source), model_type="bert", opt_level=1,
                               num_heads=int(config.num_attention_heads), hidden_size=int(config.hidden_size))
    optimised.save_model_to_file(str(target))


def _fed_by_gelu(path: Path) -> list[str]:
    """The MatMul nodes whose input is a GELU's output: each layer's feed-forward output projection."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    return [node.name for node in graph.node if node.op_type == "MatMul"
            and any(producers.get(name, "") in ("Gelu", "BiasGelu", "FastGelu") for name in node.input)]


def _run_probe(path: Path, tokenizer: Any, input_names: tuple[str, ...], max_tokens: int) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    encoded = tokenizer(list(_PROBES), padding=True, truncation=True, max_length=max_tokens, return_tensors="np")
    vectors = session.run(None, {name: encoded[name].astype(np.int64) for name in input_names})[0]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _sentence_embedding_module(model: Any, input_names: tuple[str, ...]) -> Any:
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            features = dict(zip(input_names, inputs, strict=True))
            return self.model({**features, "modality": "text"})["sentence_embedding"]

    return SentenceEmbedding()

