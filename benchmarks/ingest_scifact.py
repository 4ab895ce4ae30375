"""Ingest BEIR SciFact end to end, twice, into a fresh embedded index; report wall time and chunks/s.

    python benchmarks/ingest_scifact.py [--dataset ../shared/data/beir/scifact] [--backend embedded] [--var-dir DIR]

The second run is over unchanged data and must embed nothing (its `embedded` counter is 0). Since issue 12 indexing
also embeds each chunk's answer units; the ingest report does not count them, so they are counted afterwards from
the embedding cache (distinct strings embedded) and, on the embedded backend, from the stored blobs (units stored).
`--var-dir` (default: a new temporary directory) can be handed to scifact_retrieval.py afterwards so that its
evaluation runs embed nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ingest(dataset: Path, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "ingest", "--format", "beir", str(dataset), "--json", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    report = json.loads(result.stdout)[0]
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ingest-scifact.json")
    parser.add_argument("--var-dir", type=Path, default=None, help="an empty directory (default: a new temporary one)")
    args = parser.parse_args()
    var_dir = args.var_dir.resolve() if args.var_dir else Path(tempfile.mkdtemp(prefix="citewise-bench-ingest-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_SEARCH_BACKEND": args.backend,
           "CITEWISE_INDEX_NAME": f"bench-ingest-{var_dir.name[-8:].lower()}", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    first = ingest(args.dataset.resolve(), env)
    cached_strings, units_stored = embedded_strings(var_dir), units_in_index(var_dir)
    second = ingest(args.dataset.resolve(), env)
    summary = {
        "date": datetime.now(tz=UTC).date().isoformat(), "machine": f"{platform.node()} {os.cpu_count()} cores",
        "backend": args.backend, "documents": first["seen"], "chunks": first["chunks"],
        "first_run": {k: first[k] for k in ("wall_seconds", "seconds", "indexed", "embedded", "stage_seconds")},
        "first_run_chunks_per_second": round(first["chunks"] / first["seconds"], 1),
        "first_run_documents_per_second": round(first["seen"] / first["seconds"], 1),
        # Distinct strings in the embedding cache after the first run: chunks plus answer units (a sentence that
        # overlapping chunks share is embedded once).
        "first_run_units_embedded": cached_strings - first["embedded"],
        "first_run_units_stored": units_stored,
        "var_dir": str(var_dir),
        "second_run": {k: second[k] for k in ("wall_seconds", "seconds", "indexed", "unchanged", "embedded")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def embedded_strings(var_dir: Path) -> int:
    with sqlite3.connect(var_dir / "citewise.sqlite3") as connection:
        return connection.execute("SELECT count(*) FROM retrieval_embeddingcacheentry").fetchone()[0]


def units_in_index(var_dir: Path) -> int | None:
    """Answer units stored with the chunks of an embedded index (search/unit_vectors.py: format byte, then the
    unit count as uint32); None for Elasticsearch."""
    files = list((var_dir / "index").glob("*.sqlite3"))
    if not files:
        return None
    total = 0
    for path in files:
        with sqlite3.connect(path) as connection:
            for (blob,) in connection.execute("SELECT vectors FROM chunk_unit_vectors"):
                total += struct.unpack_from("<BI", blob)[1]
    return total


if __name__ == "__main__":
    main()
