"""manage.py export_embedder — make the configured model's ONNX export now, so no process makes it on first use.

The ONNX backends export the model on first use (a few seconds, once per machine and model; retrieval/onnx_export.py).
A deployment whose processes may not write the cache, or that would rather not pay those seconds at the first
question, runs this at build or deploy time with the same CITEWISE_MODEL_CACHE_DIR.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.config import current
from retrieval.embeddings import resolve_model_path
from retrieval.onnx_export import ExportError, default_cache_dir, ensure_export


class Command(BaseCommand):
    help = "Export the embedding model to ONNX (fp32 and int8) into the model cache, unless it is there already."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--model", default=None, help="default: CITEWISE_EMBEDDING_MODEL")
        parser.add_argument("--cache-dir", type=Path, default=None, help="default: CITEWISE_MODEL_CACHE_DIR")

    def handle(self, *args, **options) -> None:
        config = current()
        model = options["model"] or config.embedding_model
        cache_dir = options["cache_dir"] or (Path(config.model_cache_dir) if config.model_cache_dir
                                             else default_cache_dir())
        try:
            export = ensure_export(model, resolve_model_path(model), cache_dir)
        except ExportError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{model}: {export.directory} ({export.dimensions} dimensions, "
                          f"up to {export.max_tokens} tokens)")
