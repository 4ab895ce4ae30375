"""manage.py train_answerability --corpus DIR --people PEOPLE.yaml --questions Q.jsonl [--out FILE] — fit the
refusal gate (answers/answerability_training.py) and write its numbers."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from answers import answerability_training as training
from answers import evaluation
from answers.answerability import BUNDLED_MODEL


class Command(BaseCommand):
    help = "Fit the answerability gate on an evaluation set and near misses made from it; write the model as JSON."

    def add_arguments(self, parser) -> None:
        evaluation.add_set_arguments(parser)
        parser.add_argument("--out", type=Path, default=BUNDLED_MODEL,
                            help=f"where to write the model (default: the bundled {BUNDLED_MODEL.name})")
        parser.add_argument("--examples", type=Path, default=None,
                            help="also write every example (question, label, features) as JSON lines here")
        parser.add_argument("--seed", type=int, default=0, help="seed for the near misses and the folds")
        parser.add_argument("--substitutes", type=int, default=training.SUBSTITUTE_POOL,
                            help="how many English words near misses draw their substitute words from")

    def handle(self, *args, **options) -> None:
        try:
            people, questions = evaluation.load_evaluation_set(options["corpus"], options["people"],
                                                               options["questions"])
        except evaluation.EvaluationSetError as exc:
            raise CommandError(f"invalid evaluation set: {exc}") from exc
        examples = training.collect(options["corpus"], people, questions, backend=options["backend"],
                                    progress=True, seed=options["seed"], pool_size=options["substitutes"])
        if options["examples"]:
            with options["examples"].open("w", encoding="utf-8") as out:
                for example in examples:
                    out.write(json.dumps(example.__dict__) + "\n")
        try:
            model = training.fit(examples, seed=options["seed"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # What reproduces the model (not sys.argv: call_command does not set it).
        command = "python manage.py train_answerability " + shlex.join([
            "--corpus", str(options["corpus"]), "--people", str(options["people"]),
            "--questions", str(options["questions"]), "--backend", options["backend"],
            "--seed", str(options["seed"]), "--substitutes", str(options["substitutes"])])
        training.write_model(model, options["out"], command)
        self.stdout.write(json.dumps(model["trained"], indent=1))
        self.stdout.write(f"wrote {options['out']}")
