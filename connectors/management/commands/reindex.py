"""manage.py reindex — rebuild an index with the current embedding model and chunking, then swap it in."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connectors import services
from connectors.runs import SyncInProgress
from search.types import SearchUnavailable


class Command(BaseCommand):
    help = "Re-index every source of an index into a new version and switch to it atomically."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default=None)
        parser.add_argument("--index", default="", help="index name (default: the main index)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            reports = services.rebuild_index(options["index"], options["backend"],
                                             progress=not options["no_progress"])
        except (SearchUnavailable, SyncInProgress) as exc:
            raise CommandError(str(exc)) from exc
        for r in reports:
            self.stdout.write(f"{r.source}: {r.indexed} re-indexed, {r.failed} failed, {r.chunks} chunks "
                              f"({r.embedded} embedded, {r.embedding_cache_hits} from cache) in {r.seconds:.1f}s")
