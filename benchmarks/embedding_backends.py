"""Embedding backends side by side on BEIR SciFact: ingestion throughput, embedding speed, query latency, nDCG@10.

    python benchmarks/embedding_backends.py [--dataset ../shared/data/beir/scifact] [--backends torch onnx onnx-int8]
        [--ingest-documents 500] [--evaluate onnx-int8 torch] [--cross onnx] [--modes hybrid]
        [--quality-documents N]
    python benchmarks/embedding_backends.py --interleaved-rounds 5 [--sample 300]   # pure embedding speed only

Speed, for each of --backends (CITEWISE_EMBEDDING_BACKEND), each in a fresh var dir (empty database, embedding cache
and embedded index):

1. pure embedding: the first --sample corpus texts (title and abstract as one string) embedded in one call, texts/s;
   then each of the judged test queries embedded alone, latency p50/p95 (after a warm-up). Loading the embedder
   here also makes the ONNX export if the machine has none yet, so no timed step pays for it;
2. `manage.py ingest --format beir` of the corpus's first --ingest-documents documents (0: all), end to end:
   documents/s and chunks/s (the report's own seconds), with the process's CPU seconds and the 1-minute load
   average beside them (the machine is shared: CPU time moves less with other load than wall time does).

Quality, on the whole corpus (or, with --quality-documents N, on every judged-relevant document plus the first N
others: a quicker comparison between backends on identical data): `manage.py evaluate --backend embedded
--unit chunk` for each of --evaluate, in a var dir of its own: nDCG@10, Recall@100, MRR@10, as the product
searches: documents embedded by the backend, questions by its full-precision model (for onnx-int8, the fp32 graph:
retrieval/selectors.py). The first embeds everything (chunks and their answer units); the later ones are given the
first one's answer-unit vectors in their embedding cache and embed the chunks themselves: unit vectors are read
only when answering (with_unit_vectors), never in ranking, and embedding them is two thirds of the work. Then each
of --cross is evaluated in torch's var dir: documents embedded by torch, queries by it (what a deployment that
changes backend without re-indexing serves).

Prints a Markdown table and writes every figure to --output as it goes. --interleaved-rounds N measures only pure
embedding speed, every backend in one process, in alternating rounds: on a shared machine the fairest ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class LoadSampler:
    """The 1-minute load average every few seconds while a step runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(statistics.mean(self.samples), 1) if self.samples else None



def corpus_texts(dataset: Path, sample: int) -> list[str]:
    """The first `sample` documents of a BEIR corpus, title and text as one string (as the product embeds them)."""
    texts = []
    with open(dataset / "corpus.jsonl") as corpus:
        for line in corpus:
            record = json.loads(line)
            texts.append(f"{record.get('title', '')}. {record['text']}")
            if len(texts) >= sample:
                break
    return texts

def run_child(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float, float | None]:
    """Run a command; its result, wall seconds, CPU seconds (user + system) and mean load while it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with LoadSampler() as load:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return result, wall, cpu, load.mean


def environment(var_dir: Path, backend: str) -> dict[str, str]:
    return {**os.environ, "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_SEARCH_BACKEND": "embedded",
            "CITEWISE_INDEX_NAME": f"bench-{backend}", "CITEWISE_EMBEDDING_BACKEND": backend,
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DJANGO_SETTINGS_MODULE": "console.settings.local"}


def ingest(dataset: Path, env: dict[str, str]) -> dict:
    result, wall, cpu, load = run_child(
        [sys.executable, "manage.py", "ingest", "--format", "beir", str(dataset), "--json", "--no-progress"], env)
    report = json.loads(result.stdout)[0]
    seconds = report["seconds"]
    return {"documents": report["seen"], "chunks": report["chunks"], "embedded": report["embedded"],
            "seconds": round(seconds, 1), "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "load_average": load, "documents_per_second": round(report["seen"] / seconds, 2),
            "chunks_per_second": round(report["chunks"] / seconds, 2),
            "stage_seconds": {k: round(v, 1) for k, v in report["stage_seconds"].items()}}


def evaluate(dataset: Path, env: dict[str, str], mode: str) -> dict:
    result, wall, _, load = run_child(
        [sys.executable, "manage.py", "evaluate", "--dataset", str(dataset), "--backend", "embedded", "--mode", mode,
         "--unit", "chunk", "--json"], env)
    row = json.loads(result.stdout.strip().splitlines()[-1])
    return {"ndcg@10": round(row["ndcg@10"], 4), "recall@100": round(row["recall@100"], 4),
            "mrr@10": round(row["mrr@10"], 4), "wall_seconds": round(wall, 1), "load_average": load}


def probe(dataset: Path, sample: int) -> None:
    """(In a child process with the backend's environment.) Embedding texts/s and query latency, as JSON."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    import numpy as np

    from retrieval.embeddings import get_embedder

    started = time.perf_counter()
    embedder = get_embedder()
    load_seconds = time.perf_counter() - started
    texts = corpus_texts(dataset, sample)
    judged = {line.split("\t")[0] for line in (dataset / "qrels/test.tsv").read_text().splitlines()[1:] if line}
    queries = [json.loads(line) for line in (dataset / "queries.jsonl").read_text().splitlines() if line]
    questions = [q["text"] for q in queries if q["_id"] in judged]
    embedder.embed_documents(texts[:8])  # warm-up
    started = time.perf_counter()
    embedder.embed_documents(texts)
    embed_seconds = time.perf_counter() - started
    # Questions are embedded as the product embeds them: at full precision (retrieval/selectors.py).
    questioner = embedder.full_precision()
    questioner.embed_query(questions[0])
    latencies = []
    for question in questions:
        started = time.perf_counter()
        questioner.embed_query(question)
        latencies.append((time.perf_counter() - started) * 1000)
    print(json.dumps({
        "backend": getattr(embedder, "backend", "torch"), "load_seconds": round(load_seconds, 2),
        "texts": len(texts), "texts_per_second": round(len(texts) / embed_seconds, 1),
        "queries": len(questions), "query_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "query_ms_p95": round(float(np.percentile(latencies, 95)), 2),
    }))


def interleaved(dataset: Path, sample: int, rounds: int, backends: list[str]) -> dict:
    """Pure embedding speed of each backend in one process, in alternating rounds over the same texts, so that every
    backend meets the same load on a shared machine: median texts/s by wall clock and by the process's CPU time."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from retrieval.embeddings import build_embedder

    texts = corpus_texts(dataset, sample)
    embedders = {backend: build_embedder("all-MiniLM-L6-v2", backend=backend) for backend in backends}
    for embedder in embedders.values():
        embedder.embed_documents(texts[:8])
    wall: dict[str, list[float]] = {backend: [] for backend in backends}
    cpu: dict[str, list[float]] = {backend: [] for backend in backends}
    for round_number in range(rounds):
        for backend in backends[round_number % len(backends):] + backends[:round_number % len(backends)]:
            started, cpu_started = time.perf_counter(), time.process_time()
            embedders[backend].embed_documents(texts)
            wall[backend].append(len(texts) / (time.perf_counter() - started))
            cpu[backend].append(len(texts) / (time.process_time() - cpu_started))
    return {backend: {"texts": len(texts), "rounds": rounds,
                      "texts_per_second": round(statistics.median(wall[backend]), 1),
                      "texts_per_cpu_second": round(statistics.median(cpu[backend]), 1)} for backend in backends}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--backends", nargs="*", default=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--ingest-documents", type=int, default=500, help="first N corpus documents; 0: all")
    parser.add_argument("--evaluate", nargs="*", default=["onnx-int8", "torch"])
    parser.add_argument("--cross", nargs="*", default=["onnx"])
    parser.add_argument("--quality-documents", type=int, default=0,
                        help="evaluate on every judged-relevant document plus the first N others (0: the whole "
                             "corpus); for a quick comparison between backends, not a figure to set against BEIR's")
    parser.add_argument("--modes", nargs="+", default=["hybrid"], choices=["hybrid", "dense", "bm25"])
    parser.add_argument("--sample", type=int, default=1000, help="corpus texts for the pure embedding figure")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/embedding-backends.json")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a new temporary directory")
    parser.add_argument("--interleaved-rounds", type=int, default=0,
                        help="only this: each backend's pure embedding speed in N alternating rounds in one process")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    if args.probe:
        probe(dataset, args.sample)
        return
    if args.interleaved_rounds:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")
        result = {"date": datetime.now(tz=UTC).date().isoformat(), "machine": f"{platform.node()} {os.cpu_count()} cores",
                  "load_average": os.getloadavg()[0],
                  "interleaved": interleaved(dataset, args.sample, args.interleaved_rounds, args.backends)}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return
    work = args.work_dir.resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="citewise-bench-embed-"))
    summary: dict = {"date": datetime.now(tz=UTC).date().isoformat(),
                     "machine": f"{platform.node()} {os.cpu_count()} cores", "dataset": str(dataset),
                     "ingest_documents": args.ingest_documents, "quality_documents": args.quality_documents,
                     "modes": args.modes, "speed": {}, "quality": {},
                     "cross": {}}

    def save() -> None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2) + "\n")

    subset = prefix_dataset(dataset, args.ingest_documents, work / "dataset")
    for backend in args.backends:
        env = fresh_var_dir(work / f"speed-{backend}", backend)
        result, _, _, _ = run_child([sys.executable, __file__, "--probe", "--dataset", str(dataset),
                                     "--sample", str(args.sample)], env)
        summary["speed"][backend] = {"embedding": json.loads(result.stdout.strip().splitlines()[-1])}
        save()
        print(backend, "embedding", summary["speed"][backend]["embedding"], flush=True)
        summary["speed"][backend]["ingest"] = ingest(subset, env)
        save()
        print(backend, "ingest", summary["speed"][backend]["ingest"], flush=True)
    judged = judged_subset(dataset, args.quality_documents, work / "judged") if args.quality_documents else dataset
    first: Path | None = None
    for backend in args.evaluate:
        var_dir = work / f"quality-{backend}"
        env = fresh_var_dir(var_dir, backend)
        if first is not None:
            seed_unit_vectors(first, var_dir)
        summary["quality"][backend] = {mode: evaluate(judged, env, mode) for mode in args.modes}
        first = first or var_dir
        save()
        print(backend, "retrieval", summary["quality"][backend], flush=True)
    if "torch" in args.evaluate:
        for backend in args.cross:
            env = {**environment(work / "quality-torch", backend), "CITEWISE_INDEX_NAME": "bench-torch"}
            summary["cross"][backend] = {mode: evaluate(judged, env, mode) for mode in args.modes}
            save()
            print(backend, "queries on torch documents", summary["cross"][backend], flush=True)
    print_table(summary)


def fresh_var_dir(var_dir: Path, backend: str) -> dict[str, str]:
    var_dir.mkdir(parents=True, exist_ok=True)
    env = environment(var_dir, backend)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return env


def prefix_dataset(dataset: Path, documents: int, target: Path) -> Path:
    """The corpus's first N documents as a BEIR directory of its own (the whole dataset when N is 0)."""
    if not documents:
        return dataset
    target.mkdir(parents=True, exist_ok=True)
    with open(dataset / "corpus.jsonl") as source, open(target / "corpus.jsonl", "w") as copy:
        for _, line in zip(range(documents), source, strict=False):
            copy.write(line)
    return target


def judged_subset(dataset: Path, others: int, target: Path) -> Path:
    """A BEIR directory with every document some test query is judged against, plus the first N others, and the
    same queries and judgements."""
    judgements = (dataset / "qrels/test.tsv").read_text().splitlines()
    relevant = {line.split("\t")[1] for line in judgements[1:] if line}
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dataset / "qrels/test.tsv", target / "qrels/test.tsv")
    shutil.copyfile(dataset / "queries.jsonl", target / "queries.jsonl")
    with open(dataset / "corpus.jsonl") as source, open(target / "corpus.jsonl", "w") as copy:
        for line in source:
            if json.loads(line)["_id"] in relevant:
                copy.write(line)
            elif others > 0:
                copy.write(line)
                others -= 1
    return target


def seed_unit_vectors(source: Path, target: Path) -> None:
    """Copy the answer-unit vectors of source's embedding cache into target's: every entry that is not one of the
    chunks in source's evaluation index (chunk rows name the content hash their vector is cached under)."""
    chunk_hashes: set[str] = set()
    for index_file in (source / "index").glob("*.sqlite3"):
        with sqlite3.connect(index_file) as connection:
            chunk_hashes.update(row[0] for row in connection.execute("SELECT content_hash FROM chunks"))
    with sqlite3.connect(source / "citewise.sqlite3") as connection:
        rows = [row for row in connection.execute(
            "SELECT model_name, content_hash, dimensions, vector, created_at FROM retrieval_embeddingcacheentry")
            if row[1] not in chunk_hashes]
    with sqlite3.connect(target / "citewise.sqlite3") as connection:
        connection.executemany("INSERT INTO retrieval_embeddingcacheentry(model_name, content_hash, dimensions, "
                               "vector, created_at) VALUES (?, ?, ?, ?, ?)", rows)
    print(f"seeded {len(rows)} answer-unit vectors ({len(chunk_hashes)} chunks left to embed)", flush=True)


def print_table(summary: dict) -> None:
    modes = summary["modes"]
    header = ["backend", "ingest docs/s", "ingest chunks/s", "ingest s (CPU s)", "embed texts/s",
              "query p50 / p95 ms", *[f"nDCG@10 {m}" for m in modes], *[f"nDCG@10 {m}, torch docs" for m in modes]]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for backend in dict.fromkeys([*summary["speed"], *summary["quality"], *summary["cross"]]):
        speed = summary["speed"].get(backend, {})
        ingest, embedding = speed.get("ingest", {}), speed.get("embedding", {})
        cells = [backend, str(ingest.get("documents_per_second", "—")), str(ingest.get("chunks_per_second", "—")),
                 f"{ingest.get('seconds', '—')} ({ingest.get('cpu_seconds', '—')})",
                 str(embedding.get("texts_per_second", "—")),
                 f"{embedding.get('query_ms_p50', '—')} / {embedding.get('query_ms_p95', '—')}"]
        cells += [str(summary["quality"].get(backend, {}).get(m, {}).get("ndcg@10", "—")) for m in modes]
        cells += [str(summary["cross"].get(backend, {}).get(m, {}).get("ndcg@10", "—")) for m in modes]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
