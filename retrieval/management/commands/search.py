"""manage.py search "query" [--as USER] — what a reader would find; without --as, public documents only."""

from __future__ import annotations

import json
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from identity.selectors import principals_for
from retrieval import selectors
from retrieval.services import get_backend
from search.types import IndexModelMismatch, SearchFilters, SearchMode, SearchUnavailable


def _date(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=__import__("datetime").UTC)


class Command(BaseCommand):
    help = "Search the index (hybrid by default) and print the best passages."

    def add_arguments(self, parser) -> None:
        parser.add_argument("query")
        parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default=None)
        parser.add_argument("--index", default=None)
        parser.add_argument("--mode", choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value)
        parser.add_argument("--limit", type=int, default=5)
        parser.add_argument("--source", action="append", default=[], help="source id (repeatable)")
        parser.add_argument("--type", action="append", default=[], dest="mime_types", help="MIME type (repeatable)")
        parser.add_argument("--after", type=_date, default=None, help="modified on or after (ISO date)")
        parser.add_argument("--before", type=_date, default=None, help="modified before (ISO date)")
        parser.add_argument("--as", dest="as_user", default=None, metavar="USER",
                            help="search as this user (their expanded principals); default: public documents only")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        if not options["query"].strip():
            raise CommandError("the query is empty")
        filters = SearchFilters(source_ids=tuple(options["source"]), mime_types=tuple(options["mime_types"]),
                                modified_after=options["after"], modified_before=options["before"])
        principals: frozenset[str] = frozenset()
        if options["as_user"]:
            user = get_user_model().objects.filter(username=options["as_user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['as_user']!r}")
            principals = principals_for(user)
        try:
            hits = selectors.search(
                options["query"], principals=principals, mode=SearchMode(options["mode"]), filters=filters,
                limit=options["limit"], backend=get_backend(options["index"], options["backend"]),
            )
        except (SearchUnavailable, IndexModelMismatch) as exc:
            raise CommandError(f"search is unavailable: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({"query": options["query"], "hits": [h.as_dict() for h in hits]}, indent=2))
            return
        if not hits:
            self.stdout.write("No matching passages.")
        for rank, hit in enumerate(hits, start=1):
            where = " > ".join(hit.heading_path)
            self.stdout.write(self.style.SUCCESS(f"{rank}. {hit.title}") + (f" — {where}" if where else ""))
            self.stdout.write(f"   {hit.url}  score={hit.score:.4f} bm25_rank={hit.bm25_rank} dense_rank={hit.dense_rank}")
            self.stdout.write(f"   {(hit.highlight or hit.text)[:300]}")
