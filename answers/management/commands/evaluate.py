"""manage.py evaluate --dataset DIR — nDCG@10, Recall@100 and MRR@10 on BEIR-format data.

`--reranker cross-encoder|cohere` reranks the top RERANK_CANDIDATES chunks of each query first.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from connectors import services as connector_services
from connectors.models import Document
from core.config import current
from retrieval.evaluation import evaluate
from retrieval.reranking import Reranker, RerankerError
from retrieval.services import fusion_config, get_backend
from search.types import IndexModelMismatch, SearchMode, SearchUnavailable


class Command(BaseCommand):
    help = "Ingest a BEIR dataset into its own index and score retrieval on the judged queries."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", required=True, type=Path)
        parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded")
        parser.add_argument("--mode", choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
        parser.add_argument("--split", default="test")
        parser.add_argument("--fusion", choices=["rrf", "linear"], default=None)
        parser.add_argument("--rrf-k", type=int, default=None)
        parser.add_argument("--bm25-weight", type=float, default=None)
        parser.add_argument("--dense-weight", type=float, default=None)
        parser.add_argument("--candidates", type=int, default=None, help="candidates per retrieval leg")
        parser.add_argument(
            "--unit", choices=["chunk", "document"], default="chunk",
            help="'chunk' indexes with the configured chunking; 'document' makes each document one unit "
                 "(the model truncates it), as the published BEIR baselines did",
        )
        parser.add_argument("--reranker", choices=["none", "cross-encoder", "cohere"], default="none",
                            help="rerank each query's top chunks before scoring (default: none, the fused order)")
        parser.add_argument("--rerank-model", default=None,
                            help="cross-encoder model name or path, or Cohere rerank model "
                                 "(default: RERANK_MODEL / COHERE_RERANK_MODEL)")
        parser.add_argument("--rerank-candidates", type=int, default=None,
                            help="how many top chunks to rerank (default: RERANK_CANDIDATES)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        dataset: Path = options["dataset"].resolve()
        for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{options['split']}.tsv"):
            if not (dataset / required).exists():
                raise CommandError(f"{dataset} is not a BEIR dataset: {required} is missing")
        index_name = f"eval-{dataset.name.lower()}"
        config = current()
        if options["unit"] == "document":
            index_name += "-whole"
            # Each document one unit, as BEIR's published baselines index them: this run's chunking only.
            config = config.replace(chunk_max_tokens=1_000_000, chunk_overlap_tokens=0)
        progress = not options["json"]
        try:  # before ingesting, so a wrong model name fails fast
            reranker = build_reranker(options["reranker"], options["rerank_model"])
        except (OSError, ValueError, RuntimeError) as exc:
            raise CommandError(f"cannot load reranker {options['reranker']}: {exc}") from exc
        try:
            source = connector_services.ensure_source(
                "beir", dataset, name=f"beir:{index_name}:{options['backend']}", index_name=index_name,
                search_backend=options["backend"],
            )
            backend = get_backend(index_name, options["backend"])
            report = connector_services.sync_source(source, progress=progress, config=config)
            external_ids = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
            fusion = fusion_config(method=options["fusion"], rrf_k=options["rrf_k"],
                                   bm25_weight=options["bm25_weight"], dense_weight=options["dense_weight"],
                                   candidates_per_leg=options["candidates"] or 300)
            candidates = options["rerank_candidates"] or config.rerank_candidates
            result = evaluate(dataset, backend=backend, mode=SearchMode(options["mode"]), external_ids=external_ids,
                              split=options["split"], fusion=fusion, progress=progress, reranker=reranker,
                              rerank_candidates=candidates)
        except (SearchUnavailable, IndexModelMismatch) as exc:
            raise CommandError(str(exc)) from exc
        except RerankerError as exc:
            raise CommandError(f"reranker {options['reranker']} failed: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({**result.as_dict(), "unit": options["unit"]}))
        else:
            self.stdout.write(f"ingest: {report.indexed} indexed, {report.unchanged} unchanged, "
                              f"{report.embedded} chunks embedded in {report.seconds:.1f}s")
            self.stdout.write(json.dumps(result.as_dict(), indent=2))


def build_reranker(name: str, model: str | None) -> Reranker | None:
    """The reranker the options ask for, or None to keep the fused order."""
    from answers.rerankers import CohereReranker, CrossEncoderReranker

    config = current()
    if name == "none":
        return None
    if name == "cross-encoder":
        return CrossEncoderReranker(model or config.rerank_model, device=config.embedding_device)
    return CohereReranker(api_key=config.cohere_api_key, base_url=config.cohere_base_url,
                          model=model or config.cohere_rerank_model, timeout_s=config.llm_timeout_s,
                          max_retries=config.llm_max_retries)
