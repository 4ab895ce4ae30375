"""nDCG@10 / Recall@100 / MRR@10 on BEIR SciFact (300 test queries) for every backend and mode.

    python benchmarks/scifact_retrieval.py [--dataset ../shared/data/beir/scifact] [--var-dir var/bench]

Runs `manage.py evaluate ... --json` once per (backend, mode); the corpus is embedded once and
the embedding cache serves every later run. Elasticsearch must be running (scripts/services.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var/bench")
    parser.add_argument("--backends", nargs="+", default=["embedded", "elasticsearch"])
    parser.add_argument("--modes", nargs="+", default=["bm25", "dense", "hybrid"])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/scifact-retrieval.json")
    parser.add_argument("extra", nargs="*", help="extra arguments for manage.py evaluate, after --")
    args = parser.parse_args()
    env = {**os.environ, "CITEWISE_VAR_DIR": str(args.var_dir.resolve()), "HF_HUB_OFFLINE": "1"}
    args.var_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    rows = []
    for backend in args.backends:
        for mode in args.modes:
            result = subprocess.run(
                [sys.executable, "manage.py", "evaluate", "--dataset", str(args.dataset.resolve()), "--backend",
                 backend, "--mode", mode, "--json", *args.extra],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )
            if result.returncode:
                sys.exit(f"evaluate {backend} {mode} failed:\n{result.stderr[-3000:]}")
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"date": datetime.now(tz=UTC).date().isoformat(), "results": rows},
                                      indent=2) + "\n")
    print("\n| backend | mode | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['backend']} | {row['mode']} | {row['ndcg@10']:.4f} | {row['recall@100']:.4f} | "
              f"{row['mrr@10']:.4f} |")


if __name__ == "__main__":
    main()
