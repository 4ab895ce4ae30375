"""manage.py reconcile_index — remove from the search index documents whose source no longer exists."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connectors import services
from retrieval.services import get_backend
from search.types import SearchUnavailable


class Command(BaseCommand):
    help = ("Delete from the search index the documents of sources that no longer exist (deleted before "
            "deleting a source removed its documents from the index). Default: the main index and every index "
            "a source uses.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default=None)
        parser.add_argument("--index", default=None, help="only this index (default: all in use)")

    def handle(self, *args, **options) -> None:
        backends = None
        if options["index"] or options["backend"]:
            backends = [get_backend(options["index"], options["backend"])]
        try:
            removed = services.remove_orphaned_documents(backends)
        except SearchUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"removed {removed} documents of deleted sources from the search index")
