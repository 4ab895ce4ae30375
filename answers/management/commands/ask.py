"""manage.py ask "question" [--as USER] [--json] — ask as a person would, and see the answer, sources and timings."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from answers.services import InvalidQuestion, RateLimited, ask
from identity.selectors import principals_for
from search.types import IndexModelMismatch, SearchUnavailable


class Command(BaseCommand):
    help = "Ask a question and print the answer with its citations and timings (recorded like any other question)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("question")
        parser.add_argument("--as", dest="username", default=None, metavar="USER",
                            help="ask as this user, with what they may read (default: an anonymous reader)")
        parser.add_argument("--json", action="store_true", help="print the whole result as one JSON object")

    def handle(self, *args, **options) -> None:
        user = None
        if options["username"] is not None:
            try:
                user = get_user_model().objects.get_by_natural_key(options["username"])
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"no user named {options['username']!r}") from exc
        try:
            result = ask(options["question"], principals=principals_for(user), user=user, surface="cli")
        except (InvalidQuestion, RateLimited) as exc:
            raise CommandError(str(exc)) from exc
        except (SearchUnavailable, IndexModelMismatch) as exc:
            raise CommandError(f"search is unavailable: {exc}") from exc
        data = result.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False))
            return
        self.stdout.write(data["answer"])
        if data["citations"]:
            self.stdout.write("")
            self.stdout.write(self.style.SUCCESS("Sources"))
            for citation in data["citations"]:
                self._citation(citation)
        if data["nearest_documents"]:
            self.stdout.write("")
            self.stdout.write(self.style.WARNING("Nearest documents (they do not answer it)"))
            for citation in data["nearest_documents"]:
                self._citation(citation)
        self.stdout.write("")
        timings = "  ".join(f"{stage}={ms:.0f}ms" for stage, ms in data["timings_ms"].items())
        composer = data["composer"] or "none (refused)"
        self.stdout.write(f"composer={composer}  answer_id={data['answer_id']}")
        if data["fallback_reason"]:
            self.stdout.write(f"fallback: {data['fallback_reason']}")
        self.stdout.write(f"timings: {timings}")

    def _citation(self, citation: dict) -> None:
        modified = f"  {citation['date_label']}" if citation.get("date_label") else ""
        self.stdout.write(f"[{citation['number']}] {citation['title']}  ({citation['source_type']}{modified})")
        self.stdout.write(f"    document {citation['document_id']}  {citation['url']}")
