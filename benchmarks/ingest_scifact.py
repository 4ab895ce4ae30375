"""Ingest BEIR SciFact end to end, twice, into a fresh embedded index; report wall time and chunks/s.

    python benchmarks/ingest_scifact.py [--dataset ../shared/data/beir/scifact] [--backend embedded]

The second run is over unchanged data and must embed nothing (its `embedded` counter is 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="citewise-bench-ingest-"))
    env = {**os.environ, "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_SEARCH_BACKEND": args.backend,
           "CITEWISE_INDEX_NAME": f"bench-ingest-{var_dir.name[-8:].lower()}", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    first, second = ingest(args.dataset.resolve(), env), ingest(args.dataset.resolve(), env)
    summary = {
        "date": datetime.now(tz=UTC).date().isoformat(), "machine": f"{platform.node()} {os.cpu_count()} cores",
        "backend": args.backend, "documents": first["seen"], "chunks": first["chunks"],
        "first_run": {k: first[k] for k in ("wall_seconds", "seconds", "indexed", "embedded", "stage_seconds")},
        "first_run_chunks_per_second": round(first["chunks"] / first["seconds"], 1),
        "second_run": {k: second[k] for k in ("wall_seconds", "seconds", "indexed", "unchanged", "embedded")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
