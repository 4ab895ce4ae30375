"""manage.py evaluate_answers --corpus DIR --people PEOPLE.yaml --questions Q.jsonl — answer-level scores.

Asks every question as its asker, of a throwaway copy of the corpus, and scores citations, facts, refusals, leaks and
latency (answers/evaluation.py; the formats and scores are described in docs/answering.md). --include-reviewed adds
the corrected answers reviewers saved from the review queue.
"""

from __future__ import annotations

import json
import typing

from django.core.management.base import BaseCommand, CommandError

from answers import evaluation
from core.config import CitewiseSettings
from search.types import IndexModelMismatch, SearchUnavailable


class Command(BaseCommand):
    help = "Ask an evaluation set's questions as their askers, of a throwaway copy of its corpus, and score the answers."

    def add_arguments(self, parser) -> None:
        evaluation.add_set_arguments(parser)
        parser.add_argument("--composer", default=None,
                            choices=typing.get_args(CitewiseSettings.model_fields["composer"].annotation),
                            help="compose with this instead of the configured composer (CITEWISE_COMPOSER)")
        parser.add_argument("--include-reviewed", action="store_true",
                            help="ask reviewers' corrected answers saved from the review queue too (kind "
                                 "\"reviewed\"), those whose asker and documents the set has")
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object: the summary and every question's answer and scores")

    def handle(self, *args, **options) -> None:
        try:
            people, questions = evaluation.load_evaluation_set(options["corpus"], options["people"],
                                                               options["questions"])
            if options["include_reviewed"]:
                reviewed, skipped = evaluation.reviewed_questions(
                    people, {evaluation.doc_id(path) for path in evaluation.corpus_files(options["corpus"])})
                questions = [*questions, *reviewed]
                for reason in skipped:
                    self.stderr.write(f"skipped {reason}")
            result = evaluation.run(options["corpus"], people, questions, backend=options["backend"],
                                    composer=options["composer"], progress=not options["json"])
        except evaluation.EvaluationSetError as exc:
            raise CommandError(f"invalid evaluation set: {exc}") from exc
        except (SearchUnavailable, IndexModelMismatch) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        else:
            self.stdout.write(evaluation.format_report(result))
