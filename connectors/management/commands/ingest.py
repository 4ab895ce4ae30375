"""manage.py ingest PATH... — index files (or a BEIR corpus) with a progress bar and a summary."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from connectors import services
from connectors.base import SourceUnavailable
from connectors.runs import SyncInProgress
from search.types import IndexModelMismatch, SearchUnavailable


class Command(BaseCommand):
    help = "Ingest files or directories (Markdown, text, HTML, PDF, DOCX) into the search index."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", help="files or directories")
        parser.add_argument("--format", choices=["files", "beir"], default="files",
                            help="'beir' reads a BEIR corpus.jsonl (or a directory holding one)")
        parser.add_argument("--index", default="", help="index name (default: the main index)")
        parser.add_argument("--public", action="store_true",
                            help="everyone signed in may read these files (otherwise .citewise-acl.json decides; "
                                 "files it does not cover are visible to nobody)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        kind = "beir" if options["format"] == "beir" else "filesystem"
        reports = []
        try:
            for path in options["paths"]:
                from pathlib import Path

                if not Path(path).exists():
                    raise CommandError(f"{path}: no such file or directory")
                source = services.ensure_source(kind, path, index_name=options["index"],
                                                config={"public": True} if options["public"] else None)
                reports.append(services.sync_source(source, progress=not options["no_progress"]))
                services.sync_permissions(source)
        except (SearchUnavailable, IndexModelMismatch, SourceUnavailable, SyncInProgress) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2, default=str))
            return
        for r in reports:
            rate = r.chunks / r.seconds if r.seconds else 0.0
            self.stdout.write(
                f"{r.source}: {r.seen} seen, {r.indexed} indexed, {r.unchanged} unchanged, {r.failed} failed, "
                f"{r.deleted} deleted; {r.chunks} chunks ({r.embedded} embedded, {r.embedding_cache_hits} from cache) "
                f"in {r.seconds:.1f}s ({rate:.1f} chunks/s)"
                + ("" if r.listing_complete else "; listed only in part, so nothing was pruned")
            )
            for external_id, message in r.errors:
                self.stdout.write(self.style.WARNING(f"  ! {external_id}: {message}"))
