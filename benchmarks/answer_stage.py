"""Time of the answer stage (refusal gate + extractive composer) per question, against passage length, with the
passages' unit vectors stored in the index (as indexing now does) and without (every sentence embedded at
question time, as before; also what an index built before unit vectors gives).

    python benchmarks/answer_stage.py [--lengths 1 4 16 64] [--questions 20] [--passages 5]

Passages are runs of consecutive sentences of the demo corpus's Markdown files; questions are the demo's
answerable questions, each asked once per setting (a question the scorer has not seen, so its cache never
answers). Only judge() and ExtractiveComposer.compose() are timed, as the pipeline calls them; the stored vectors
are made before timing, by the code indexing uses. Both wall and CPU time (this process's, all threads) are
reported: on a shared machine the CPU time is the steadier figure. Prints a JSON summary and writes it to
benchmarks/results/answer-stage.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CITEWISE_VAR_DIR", tempfile.mkdtemp(prefix="citewise-bench-answer-"))
CORPUS = ROOT / "connectors/demo/corpus"
QUESTIONS = ROOT / "connectors/demo/questions/answerable.jsonl"


def corpus_sentences() -> list[tuple[str, str, list[str]]]:
    """(title, heading, sentences) of each Markdown section of the demo corpus that holds prose."""
    from retrieval.units import split_units

    sections = []
    for path in sorted(CORPUS.rglob("*.md")):
        title, heading, lines = path.stem, "", []
        for line in [*path.read_text(encoding="utf-8").splitlines(), "# end"]:
            if line.startswith("#"):
                text = " ".join(lines)
                sentences = [unit.text for unit in split_units(text) if unit.kind == "sentence"]
                if sentences:
                    sections.append((title, heading, sentences))
                lines, heading = [], line.lstrip("#").strip()
                if line.startswith("# ") and title == path.stem:
                    title = heading
            elif line.strip() and not re.match(r"^\s*(\||```|- |\d+\. )", line):
                lines.append(line.strip())
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 4, 16, 64], help="sentences per passage")
    parser.add_argument("--questions", type=int, default=20, help="questions per setting")
    parser.add_argument("--passages", type=int, default=5, help="passages per question (CITEWISE_ANSWER_PASSAGES)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/answer-stage.json")
    args = parser.parse_args()

    import django

    django.setup()
    from ask_latency import percentile

    from answers.answerability import judge
    from answers.extractive import ExtractiveComposer
    from answers.types import Passage
    from retrieval.embeddings import get_embedder
    from retrieval.units import embedding_texts
    from search.types import SearchHit
    from search.unit_vectors import encode_unit_vectors

    embedder = get_embedder()
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
                 if line.strip()][:args.questions]
    pool = [(title, heading, sentence) for title, heading, sentences in corpus_sentences() for sentence in sentences]
    composer = ExtractiveComposer()
    results: dict = {"date": datetime.now(tz=UTC).date().isoformat(),
                     "machine": f"{platform.node()} {os.cpu_count()} cores", "embedding_model": embedder.model_name,
                     "questions": len(questions), "passages": args.passages, "lengths": {}}
    embedder.embed_query("warm up")
    cursor = 0
    for length in args.lengths:
        hits = []
        for number in range(args.passages):
            run = [pool[(cursor + i) % len(pool)] for i in range(length)]
            cursor += length
            title, heading = run[0][:2]
            text = " ".join(sentence for _, _, sentence in run)
            texts = embedding_texts(title, (heading,), text)
            hits.append(SearchHit(
                chunk_id=f"bench:{length}:{number}", document_id=f"bench-{number}", source_id="1", title=title,
                url="https://intranet.example/bench", mime_type="text/markdown", modified_at=None,
                heading_path=(heading,), section_ordinal=0, text=text, score=1.0, bm25_rank=None, dense_rank=None,
                highlight="", unit_vectors=encode_unit_vectors(texts, embedder.embed_documents(texts))))
        units = sum(len(embedding_texts(h.title, h.heading_path, h.text)) for h in hits)
        settings = {"question_time_embedding": [Passage(number, dataclasses.replace(hit, unit_vectors=b""), hit.text)
                                                for number, hit in enumerate(hits, start=1)],
                    "stored_vectors": [Passage(number, hit, hit.text) for number, hit in enumerate(hits, start=1)]}
        wall: dict[str, list[float]] = {label: [] for label in settings}
        cpu: dict[str, list[float]] = {label: [] for label in settings}
        for index, question in enumerate(questions):
            # Each question is timed in both settings back to back, in alternating order, so both see the same
            # load on a shared machine.
            for label in sorted(settings, reverse=bool(index % 2)):
                # A question never scored with these passages, so the scorer's cache cannot answer it.
                asked = f"{question} ({label} {length})"
                started, started_cpu = time.perf_counter(), time.process_time()
                if judge(asked, settings[label]).answerable:
                    composer.compose(asked, settings[label])
                wall[label].append((time.perf_counter() - started) * 1000)
                cpu[label].append((time.process_time() - started_cpu) * 1000)
        row: dict = {"units_per_question": units}
        for label in settings:
            row[label] = {"p50_ms": round(percentile(wall[label], 0.5), 1),
                          "p95_ms": round(percentile(wall[label], 0.95), 1),
                          "cpu_p50_ms": round(percentile(cpu[label], 0.5), 1),
                          "cpu_p95_ms": round(percentile(cpu[label], 0.95), 1)}
        row["speedup_p50"] = round(row["question_time_embedding"]["p50_ms"] / row["stored_vectors"]["p50_ms"], 1)
        row["speedup_cpu_p50"] = round(row["question_time_embedding"]["cpu_p50_ms"]
                                       / row["stored_vectors"]["cpu_p50_ms"], 1)
        results["lengths"][str(length)] = row
        print(length, json.dumps(row), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
