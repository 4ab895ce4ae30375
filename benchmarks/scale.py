"""Retrieval at scale: hybrid latency, index size, memory and indexing time at 10k-100k chunks, on both backends.

    python benchmarks/scale.py [--sizes 10000,30000,100000] [--queries 300] [--backends embedded,elasticsearch]
                               [--profile] [--embed-sample 100] [--plot docs/scale-latency.png]

The corpus is synthetic but made of real text (benchmarks/scale_corpus.py): SciFact sentences recombined into
chunk-sized passages, with ACLs drawn from 10,000 principals. Each size is indexed afresh into each backend by a
child process (time to index, peak memory), then a second, fresh child opens the index as a server would and runs
the hybrid searches of --queries real SciFact queries, as a reader with 1 principal and as one with 1,000
(p50/p95/p99 of `backend.search` alone: query vectors and query analysis are computed before the clock starts).

Chunk vectors. Embedding 100k chunks with all-MiniLM-L6-v2 takes hours on two cores, so a chunk's vector is the
normalised, word-count-weighted mean of its sentences' and its title's vectors; each distinct sentence is embedded
once and cached under <var-dir>/embeddings.sqlite3 (about 50k strings; the first run embeds them, later runs read
them). Exact search costs the same whatever the vectors hold; what an approximate index costs and finds can depend
on how the vectors are spread, which `--vectors real30k` measures against the chunks' real embeddings (see
docs/benchmarks.md). `--embed-sample N` times embedding N chunks for real on this machine, for the estimate of
what the real thing would take.

Elasticsearch must be running (scripts/services.sh start). Results: benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_corpus import (  # noqa: E402
    Sentences,
    SyntheticDocument,
    chunk_text,
    load_queries,
    load_sentences,
    readers,
    synthesize,
    text_key,
)

DEFAULT_DATASET = ROOT.parent / "shared/data/beir/scifact"
MODEL = "all-MiniLM-L6-v2"


# -- the vector cache -----------------------------------------------------------------------------------------
class VectorCache:
    """Vectors of exact strings, by sha256, in one SQLite file: filled once, interrupted runs keep what they did."""

    def __init__(self, path: Path, model: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, vector BLOB, "
                         "PRIMARY KEY (model, key)) WITHOUT ROWID")

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        keys = [text_key(t) for t in texts]
        for start in range(0, len(keys), 5000):
            page = keys[start:start + 5000]
            for key, blob in self._db.execute(
                    "SELECT key, vector FROM vectors WHERE model = ? AND key IN (SELECT value FROM json_each(?))",
                    (self.model, json.dumps(page))):
                found[key] = np.frombuffer(blob, dtype="<f4")
        return found

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                             [(self.model, text_key(t), np.asarray(v, dtype="<f4").tobytes())
                              for t, v in zip(texts, vectors, strict=True)])
        self._db.commit()

    def matrix(self, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray] | None,
               what: str = "strings") -> np.ndarray:
        """One row per text, embedding (and caching) what is missing, in batches that survive an interruption."""
        found = self.get(texts)
        missing = list(dict.fromkeys(t for t in texts if text_key(t) not in found))
        if missing:
            if embed is None:
                raise SystemExit(f"{len(missing)} {what} have no cached vector")
            started = time.perf_counter()
            print(f"embedding {len(missing)} {what} (cached under the var dir for later runs)", file=sys.stderr)
            for start in range(0, len(missing), 512):
                batch = missing[start:start + 512]
                self.put(batch, embed(batch))
                done = start + len(batch)
                rate = done / (time.perf_counter() - started)
                print(f"  {done}/{len(missing)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
            found = self.get(texts)
        return np.stack([found[text_key(t)] for t in texts]).astype(np.float32)


def import_device_vectors(cache: VectorCache, sentences: Sentences, queries: list[str], directory: Path,
                          embed: Callable[[Sequence[str]], np.ndarray]) -> None:
    """Load vectors computed elsewhere (the vector check, benchmarks/scale_vector_check.py: float16 files), after
    checking they are for these exact strings and agree with this machine's model."""
    report = json.loads((directory / "report.json").read_text())
    if report["sentences_sha"] != text_key("\n".join(sentences.texts)) or \
            report["queries_sha"] != text_key("\n".join(queries)):
        raise SystemExit(f"{directory} holds vectors of other strings (another dataset or corpus code)")
    parts = sorted(directory.glob("sentences-*.npy"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    groups = [(sentences.texts, np.concatenate([np.load(p) for p in parts])),
              (sentences.titles, np.load(directory / "titles.npy")), (queries, np.load(directory / "queries.npy"))]
    sample = [sentences.texts[0], sentences.titles[-1], queries[7]]
    here = embed(sample)
    theirs = np.stack([groups[0][1][0], groups[1][1][-1], groups[2][1][7]]).astype(np.float32)
    agreement = (here * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    if agreement.min() < 0.999:
        raise SystemExit(f"the imported vectors disagree with this machine's model (cosine {agreement.min():.4f})")
    for texts, vectors in groups:
        vectors = vectors.astype(np.float32)
        cache.put(texts, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    print(f"imported {sum(len(t) for t, _ in groups)} vectors (cosine to this machine's: min "
          f"{agreement.min():.6f})", file=sys.stderr)


def chunk_vectors(sentences: Sentences, documents: Sequence[SyntheticDocument], sentence_matrix: np.ndarray,
                  title_matrix: np.ndarray) -> np.ndarray:
    """Each chunk's stand-in vector: the normalised mean of its title's and its sentences' vectors, weighted by word
    count (the model mean-pools its tokens, so longer parts weigh more in a real chunk vector too)."""
    words = np.asarray(sentences.words, dtype=np.float32)
    rows = []
    for document in documents:
        title = title_matrix[document.title] * len(sentences.titles[document.title].split())
        for chunk in document.chunks:
            ids = np.asarray(chunk)
            rows.append(words[ids] @ sentence_matrix[ids] + title)
    matrix = np.stack(rows).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# -- measurements ---------------------------------------------------------------------------------------------
def rss_mb(field: str = "VmRSS", pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q * 100))


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 0.5), 2), "p95_ms": round(percentile(values, 0.95), 2),
            "p99_ms": round(percentile(values, 0.99), 2), "mean_ms": round(statistics.fmean(values), 2)}


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()


def open_backend(kind: str, index_name: str) -> Any:
    from search.backends import create_backend

    return create_backend(kind, index_name)


class Corpus:
    """The synthetic corpus of one size with everything needed to index or search it."""

    def __init__(self, args: argparse.Namespace, size: int | None = None) -> None:
        self.sentences = load_sentences(args.dataset)
        self.queries = load_queries(args.dataset, args.queries)
        self.documents = synthesize(self.sentences, size) if size else []
        self.cache = VectorCache(args.var_dir / "embeddings.sqlite3", MODEL)


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Child: index one size into a fresh index; time the writes alone."""
    setup_django()
    from core.config import current
    from retrieval.units import embedding_texts
    from search.analysis import analyzed_text, identifiers
    from search.backends.base import DocumentChunks
    from search.types import Chunk, DocumentAcl, IndexedDocument
    from search.unit_vectors import encode_unit_vectors

    corpus = Corpus(args, args.size)
    sentences, documents = corpus.sentences, corpus.documents
    started = time.perf_counter()
    sentence_matrix = corpus.cache.matrix(sentences.texts, None, "sentences")
    title_matrix = corpus.cache.matrix(sentences.titles, None, "titles")
    if args.vectors == "real30k":
        vectors = real_chunk_vectors(args, sum(len(d.chunks) for d in documents))
    else:
        vectors = chunk_vectors(sentences, documents, sentence_matrix, title_matrix)
    vectors_seconds = time.perf_counter() - started

    backend = open_backend(args.backend, args.index_name)
    backend.ensure_index(MODEL, vectors.shape[1])
    batch_size = current().ingest_batch_documents  # what a connector sync hands the index at a time
    prepare_seconds = index_seconds = 0.0
    offset = 0
    for start in range(0, len(documents), batch_size):
        prepare_started = time.perf_counter()
        batch = []
        for document in documents[start:start + batch_size]:
            title = sentences.titles[document.title]
            acl = DocumentAcl(frozenset(document.acl.principals), document.acl.public, document.acl.status)
            indexed = IndexedDocument(document.document_id, "scale", title, f"https://scale.example/{document.document_id}",
                                      "text/plain", None, acl)
            chunks, position = [], 0
            for ordinal, sentence_ids in enumerate(document.chunks):
                text = chunk_text(sentences, sentence_ids)
                chunks.append(Chunk(f"{document.document_id}:{ordinal}", document.document_id, ordinal, text, (), 0,
                                    position, position + len(text), text_key(text)))
                position += len(text) + 1
            inputs = [chunk.embedding_input(title) for chunk in chunks]
            # Answer-unit blobs of the product's size and layout (one float16 vector per unit of the chunk); the
            # sentence vectors stand in for the units' own (title-prefixed) embeddings, which no search reads.
            units = []
            for chunk, sentence_ids in zip(chunks, document.chunks, strict=True):
                texts = embedding_texts(title, (), chunk.text)
                units.append(encode_unit_vectors(texts, np.resize(sentence_matrix[list(sentence_ids)],
                                                                  (len(texts), vectors.shape[1]))))
            batch.append(DocumentChunks(indexed, chunks, vectors[offset:offset + len(chunks)],
                                        [analyzed_text(text) for text in inputs],
                                        identifiers=[identifiers(text) for text in inputs], unit_vectors=units))
            offset += len(chunks)
        index_started = time.perf_counter()
        prepare_seconds += index_started - prepare_started
        backend.replace_documents(batch, embedding_model=MODEL)
        index_seconds += time.perf_counter() - index_started
    settle_started = time.perf_counter()
    if args.backend == "embedded":
        # What a restart would find: the write-ahead log folded into the file.
        backend._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    elif args.force_merge:
        backend.merge_segments()  # what promoting a rebuilt index does
    settle_seconds = time.perf_counter() - settle_started
    return {"documents": len(documents), "chunks": offset, "vectors_seconds": round(vectors_seconds, 1),
            "prepare_seconds": round(prepare_seconds, 1), "index_seconds": round(index_seconds, 1),
            "settle_seconds": round(settle_seconds, 1), "chunks_per_second": round(offset / index_seconds),
            "peak_rss_mb": rss_mb("VmHWM")}


def real_chunk_vectors(args: argparse.Namespace, count: int) -> np.ndarray:
    """The 30k corpus's chunks embedded for real (title and text, as the product embeds them), from the vector
    check's files."""
    parts = sorted((args.var_dir / "device").glob("chunks30k-*.npy"))
    matrix = np.concatenate([np.load(p) for p in parts]).astype(np.float32)
    if count > len(matrix):
        raise SystemExit(f"real chunk vectors exist for {len(matrix)} chunks only, not {count}")
    matrix = matrix[:count]
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def index_size_bytes(kind: str, backend: Any) -> dict[str, Any]:
    if kind == "embedded":
        path = backend.path
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        return {"index_bytes": sum(f.stat().st_size for f in files if f.exists())}
    stats = backend.client.indices.stats(index=backend.index_name, metric=["store", "segments", "docs"])
    primaries = [value["primaries"] for value in stats["indices"].values()]
    return {"index_bytes": sum(p["store"]["size_in_bytes"] for p in primaries),
            "segments": sum(p["segments"]["count"] for p in primaries)}


def elasticsearch_pid(backend: Any) -> int | None:
    info = next(iter(backend.client.nodes.info(metric=["process"])["nodes"].values()))
    pid = info["process"]["id"]
    return pid if Path(f"/proc/{pid}/stat").exists() else None  # None: Elasticsearch runs on another machine


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def elasticsearch_memory(backend: Any) -> dict[str, float]:
    nodes = backend.client.nodes.stats(metric=["jvm", "process"])["nodes"]
    node = next(iter(nodes.values()))
    info = next(iter(backend.client.nodes.info(metric=["process"])["nodes"].values()))
    pid = info["process"]["id"]
    memory = {"server_heap_used_mb": round(node["jvm"]["mem"]["heap_used_in_bytes"] / 2**20, 1),
              "server_heap_max_mb": round(node["jvm"]["mem"]["heap_max_in_bytes"] / 2**20, 1)}
    if Path(f"/proc/{pid}/status").exists():  # Elasticsearch on this machine
        memory["server_rss_mb"] = rss_mb("VmRSS", pid)
    return memory


class StageTimer:
    """Wraps a backend's private methods to say where a search's time goes (the --profile figures)."""

    def __init__(self, backend: Any, names: Sequence[str]) -> None:
        self.seconds: dict[str, float] = {}
        self.add(backend, names)

    def add(self, owner: Any, names: Sequence[str]) -> None:
        """Time `names` of an object, or of a class (every instance's calls then)."""
        for name in names:
            method = getattr(owner, name, None)
            if method is not None:
                setattr(owner, name, self._wrap(name, method))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return timed

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken


# Embedded backend stages: the backend's own steps, then the in-memory legs (methods of MemoryIndex).
PROFILED = ("_memory_index", "_memory_legs", "_sql_legs", "_hydrate")
PROFILED_MEMORY = ("visible", "bm25", "dense", "exact")


def serve(args: argparse.Namespace) -> dict[str, Any]:
    """Child: open the index as a fresh server process would and time hybrid searches as each reader."""
    setup_django()
    from retrieval.services import fusion_config
    from search.analysis import analyzed_text, identifiers
    from search.types import SearchFilters, SearchMode

    corpus = Corpus(args)
    query_vectors = corpus.cache.matrix(corpus.queries, None, "queries")
    prepared = [(query, " ".join(analyzed_text(query).split()[:256]), identifiers(query)[:256], vector)
                for query, vector in zip(corpus.queries, query_vectors, strict=True)]
    askers = readers()
    fusion = fusion_config()
    del corpus
    gc.collect()
    rss_before = rss_mb()
    backend = open_backend(args.backend, args.index_name)
    timer = None
    if args.profile and args.backend == "embedded":
        from search.backends.embedded_memory import MemoryIndex

        timer = StageTimer(backend, PROFILED)
        timer.add(MemoryIndex, PROFILED_MEMORY)
    timings: dict[str, list[float]] = {label: [] for label in askers}
    stages: dict[str, dict[str, float]] = {label: {} for label in askers}
    results: dict[str, list[list[str]]] = {label: [] for label in askers}
    first_search_ms = None
    server_pid = elasticsearch_pid(backend) if args.backend == "elasticsearch" else None
    cpu: dict[str, float] = {}
    for round_ in range(2):  # the first round loads what the backend keeps in memory and warms caches
        if round_:
            cpu = {"client": time.process_time(), "server": cpu_seconds(server_pid), "load": os.getloadavg()[0]}
        for query, terms, named, vector in prepared:
            for label, principals in askers.items():
                started = time.perf_counter()
                hits = backend.search(principals=principals, query=query, analyzed_query=terms, query_vector=vector,
                                      embedding_model=MODEL, mode=SearchMode.HYBRID, filters=SearchFilters(),
                                      limit=10, fusion=fusion, identifiers=named)
                elapsed = (time.perf_counter() - started) * 1000
                if first_search_ms is None:
                    first_search_ms = round(elapsed, 1)
                if timer is not None:
                    for stage, seconds in timer.take().items():
                        if round_:
                            stages[label][stage] = stages[label].get(stage, 0.0) + seconds
                if round_:
                    timings[label].append(elapsed)
                    results[label].append([hit.chunk_id for hit in hits])
    searches = sum(len(values) for values in timings.values())
    measured: dict[str, Any] = {label: summary(values) for label, values in timings.items()}
    # The machine is shared: the load average and the CPU each search took say how far contention moved the clock.
    measured["load_average"] = [round(cpu["load"], 2), round(os.getloadavg()[0], 2)]
    measured["client_cpu_ms_per_search"] = round((time.process_time() - cpu["client"]) * 1000 / searches, 2)
    if server_pid is not None:
        measured["server_cpu_ms_per_search"] = round((cpu_seconds(server_pid) - cpu["server"]) * 1000 / searches, 2)
    if timer is not None:
        measured["profile_mean_ms"] = {
            label: {stage: round(seconds * 1000 / len(prepared), 2) for stage, seconds in sorted(per.items())}
            for label, per in stages.items()}
    measured["first_search_ms"] = first_search_ms
    measured["hits_per_query"] = {label: round(statistics.fmean(len(r) for r in rs), 2) for label, rs in results.items()}
    measured["rss_mb"] = rss_mb()
    measured["rss_added_mb"] = round(measured["rss_mb"] - rss_before, 1)
    measured.update(index_size_bytes(args.backend, backend))
    if args.backend == "elasticsearch":
        measured.update(elasticsearch_memory(backend))
    if args.results:
        Path(args.results).write_text(json.dumps(results))
    measured["dense_recall_at_10"] = dense_recall(args, backend, prepared, askers, fusion)
    return measured


def dense_recall(args: argparse.Namespace, backend: Any, prepared: list, askers: dict[str, frozenset[str]],
                 fusion: Any) -> dict[str, float]:
    """The dense leg's top 10 against exact search over the chunks each reader may see (after the timed rounds)."""
    from search.types import SearchFilters, SearchMode

    corpus = Corpus(args, args.size)
    sentences, documents = corpus.sentences, corpus.documents
    if args.vectors == "real30k":
        vectors = real_chunk_vectors(args, sum(len(d.chunks) for d in documents))
    else:
        vectors = chunk_vectors(sentences, documents, corpus.cache.matrix(sentences.texts, None),
                                corpus.cache.matrix(sentences.titles, None))
    chunk_ids = [f"{d.document_id}:{i}" for d in documents for i in range(len(d.chunks))]
    recall = {}
    for label, principals in askers.items():
        readable = np.repeat([d.acl.status == "ok" and (d.acl.public or bool(set(d.acl.principals) & principals))
                              for d in documents], [len(d.chunks) for d in documents])
        positions = np.flatnonzero(readable)
        found = 0
        for query, terms, _, vector in prepared:
            scores = vectors[positions] @ vector
            exact = {chunk_ids[positions[i]] for i in np.argsort(-scores, kind="stable")[:10]}
            hits = backend.search(principals=principals, query=query, analyzed_query=terms, query_vector=vector,
                                  embedding_model=MODEL, mode=SearchMode.DENSE, filters=SearchFilters(), limit=10,
                                  fusion=fusion)
            found += len(exact & {hit.chunk_id for hit in hits})
        recall[label] = round(found / (10 * len(prepared)), 4)
    return recall


# -- the run --------------------------------------------------------------------------------------------------
def child(args: argparse.Namespace, action: str, size: int, kind: str, index_name: str,
          extra: Sequence[str] = ()) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", action, "--size", str(size), "--backend",
               kind, "--index-name", index_name, "--dataset", str(args.dataset), "--var-dir", str(args.var_dir),
               "--queries", str(args.queries), "--vectors", args.vectors, *extra]
    command += ["--profile"] if args.profile else []
    command += ["--force-merge"] if args.force_merge else []
    completed = subprocess.run(command, cwd=ROOT, env=child_env(args), capture_output=True, text=True)
    if completed.returncode:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"{action} {kind} {size} failed ({completed.returncode})")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child_env(args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "CITEWISE_VAR_DIR": str(args.var_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "DJANGO_SETTINGS_MODULE": "console.settings.local"}


def drop(args: argparse.Namespace, kind: str, index_name: str) -> None:
    os.environ.update(child_env(args))
    setup_django()
    with contextlib.suppress(Exception):
        open_backend(kind, index_name).drop()


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the vector cache (sentences, titles, queries); time embedding a sample of chunks for real."""
    os.environ.update(child_env(args))
    setup_django()
    from retrieval.embeddings import get_embedder

    corpus = Corpus(args)
    embedder = None

    def embed(texts: Sequence[str]) -> np.ndarray:
        nonlocal embedder
        embedder = embedder or get_embedder(MODEL)
        return embedder.embed_documents(texts)

    if args.import_vectors:
        import_device_vectors(corpus.cache, corpus.sentences, load_queries(args.dataset, 10**6), args.import_vectors,
                              embed)
    started = time.perf_counter()
    for texts, what in ((corpus.sentences.texts, "sentences"), (corpus.sentences.titles, "titles"),
                        (corpus.queries, "queries")):
        corpus.cache.matrix(texts, embed, what)
    prepared: dict[str, Any] = {"cache_seconds": round(time.perf_counter() - started, 1),
                                "distinct_sentences": len(corpus.sentences.texts),
                                "titles": len(corpus.sentences.titles)}
    if args.embed_sample:
        documents = synthesize(corpus.sentences, args.embed_sample)
        inputs = [f"{corpus.sentences.titles[d.title]}\n{chunk_text(corpus.sentences, c)}"
                  for d in documents for c in d.chunks]
        embed(inputs[:8])  # the model loaded and warm
        started = time.perf_counter()
        embed(inputs)
        seconds = time.perf_counter() - started
        prepared["embed_sample"] = {"chunks": len(inputs), "seconds": round(seconds, 1),
                                    "chunks_per_second": round(len(inputs) / seconds, 1),
                                    "estimated_seconds_for_100k": round(100_000 * seconds / len(inputs))}
    return prepared


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, label in zip(axes, ("1 principal", "1000 principals"), strict=True):
        for kind, style in (("embedded", "o-"), ("elasticsearch", "s--")):
            rows = [r for r in results["runs"] if r["backend"] == kind]
            if not rows:
                continue
            sizes = [r["chunks"] for r in rows]
            for quantile, alpha in (("p50_ms", 0.45), ("p95_ms", 1.0)):
                axis.plot(sizes, [r["search"][label][quantile] for r in rows], style, alpha=alpha,
                          label=f"{kind} {quantile[:3]}")
        axis.axhline(50, color="grey", linewidth=0.8, linestyle=":")
        axis.set_xscale("log")
        axis.set_xlabel("chunks in the index")
        axis.set_title(f"reader with {label}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("hybrid search latency (ms)")
    axes[1].legend(fontsize=8)
    figure.suptitle(f"Hybrid retrieval latency against corpus size ({results['machine']}, {results['date']})",
                    fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", default="embedded,elasticsearch")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var/bench")
    parser.add_argument("--vectors", choices=["mean", "real30k"], default="mean",
                        help="chunk vectors: sentence means, or (at most 30k chunks) the real ones from the vector "
                             "check")
    parser.add_argument("--profile", action="store_true", help="time each stage of an embedded search")
    parser.add_argument("--embed-sample", type=int, default=0, help="embed this many chunks for real, timed")
    parser.add_argument("--import-vectors", type=Path, help="fill the vector cache from the vector check's files")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/scale.json")
    parser.add_argument("--plot", type=Path, help="write the latency-against-size figure (PNG) here")
    parser.add_argument("--keep", action="store_true", help="leave the indexes in place (for profiling)")
    parser.add_argument("--force-merge", action="store_true",
                        help="merge each Elasticsearch index's segments before searching it, as promoting a rebuilt "
                             "index does (ElasticsearchBackend.merge_segments; settle_seconds)")
    parser.add_argument("--child", choices=["build", "serve"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--index-name", help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help="print the table of a results file and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    args.dataset, args.var_dir = args.dataset.resolve(), args.var_dir.resolve()
    if args.child:
        print(json.dumps(build(args) if args.child == "build" else serve(args)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k.strip() for k in args.backends.split(",")]
    results: dict[str, Any] = {
        "date": datetime.now(tz=UTC).date().isoformat(), "machine": f"{os.cpu_count()} cores, "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB",
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "git": git_revision(),
        "python": platform.python_version(), "vectors": args.vectors, "queries": args.queries,
        "force_merge": args.force_merge,
        "prepare": prepare(args), "runs": [],
    }
    print(json.dumps(results["prepare"]), file=sys.stderr)
    for size in sizes:
        for kind in kinds:
            index_name = f"bench-scale-{size}-{uuid.uuid4().hex[:6]}"
            try:
                built = child(args, "build", size, kind, index_name)
                searched = child(args, "serve", size, kind, index_name)
            finally:
                if not args.keep:
                    drop(args, kind, index_name)
            run = {"backend": kind, "chunks": size, "index_name": index_name, "build": built, "search": searched}
            results["runs"].append(run)
            print(row(run), file=sys.stderr, flush=True)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2) + "\n")  # after each run: a failure keeps them
    if args.plot:
        plot(results, args.plot)
    print(table(results))


def row(run: dict[str, Any]) -> str:
    search, build_ = run["search"], run["build"]
    one, many = search["1 principal"], search["1000 principals"]
    memory = search.get("server_rss_mb", search["rss_mb"])
    recall = search.get("dense_recall_at_10", {})
    cpu = search.get("server_cpu_ms_per_search", 0) + search.get("client_cpu_ms_per_search", 0)
    return (f"| {run['backend']} | {run['chunks']:,} | {one['p50_ms']:.1f} / {one['p95_ms']:.1f} / {one['p99_ms']:.1f} | "
            f"{many['p50_ms']:.1f} / {many['p95_ms']:.1f} / {many['p99_ms']:.1f} | {cpu:.1f} | "
            f"{recall.get('1 principal', float('nan')):.3f} / {recall.get('1000 principals', float('nan')):.3f} | "
            f"{build_['index_seconds']:,.0f} s | {search['index_bytes'] / 2**20:,.0f} MiB | {memory:,.0f} MiB | "
            f"{search.get('load_average', ['?'])[0]} |")


def table(results: dict[str, Any]) -> str:
    header = ("| backend | chunks | 1 principal p50 / p95 / p99 (ms) | 1,000 principals p50 / p95 / p99 (ms) | "
              "CPU per search (ms) | dense recall@10 (1 / 1,000) | time to index | index on disk | RSS | load |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([header, *(row(run) for run in results["runs"])])


def git_revision() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    return ""


if __name__ == "__main__":
    main()
