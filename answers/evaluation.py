"""Answer-level evaluation: ask an evaluation set's questions as their askers, of a throwaway copy of a corpus, and
score what comes back (docs/answering.md, "Evaluating answers").

A run ingests the corpus (with its `.citewise-acl.json`) into an index of its own, makes the people of the set real
users with linked identities and group memberships, and asks every question through `answers.services.ask` with the
principals the API would resolve for the asker. Everything it writes to the database happens in one transaction that
is rolled back at the end, its index is dropped, and the cache it uses is a private in-memory one, so the configured
database, main index and cache are left as they were.

Whether a document leaked is decided by `AccessOracle`, which reads the manifest and the people file itself with
none of the product's ACL code: a bug there cannot hide itself from the score.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.test.utils import override_settings
from tqdm import tqdm

from answers.pipeline import DEFAULT_STEPS, Steps
from answers.services import AnswerResult, ask
from connectors import services as connector_services
from connectors.models import Document
from connectors.sources.filesystem import ACL_MANIFEST
from core.config import current
from identity import services as identity_services
from identity.models import Account, ExternalIdentity, Group, GroupMembership
from identity.selectors import principals_for
from retrieval import services as retrieval_services

logger = logging.getLogger("citewise.evaluation")

EVERYONE_EXCEPT_EXTERNAL = "org:everyone-except-external"
# Chat identities of the set's people are spelled as if they were in one Slack workspace and one Teams tenant.
SLACK_TEAM, TEAMS_TENANT = "TEVAL", "eval-tenant"
PERSON_FIELDS = {"id", "email", "name", "groups", "slack_id", "teams_id", "external"}
QUESTION_FIELDS = {"id", "asker", "question", "answerable_for_asker", "expected_doc_ids", "must_contain",
                   "must_not_contain", "kind", "tags", "restricted_doc_ids", "follows"}


class EvaluationSetError(ValueError):
    """The people, questions or corpus of an evaluation set are not as the format says; the message says where."""


# -- the evaluation set ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    id: str
    email: str
    name: str = ""
    groups: tuple[str, ...] = ()
    slack_id: str = ""
    teams_id: str = ""
    # A guest or contractor: never "everyone except external", never their email domain.
    external: bool = False

    @property
    def identity_principals(self) -> tuple[str, ...]:
        """The identities linked to the person's user, as the principals ACLs name them by."""
        principals = [f"email:{self.email.lower()}"]
        if self.slack_id:
            principals.append(f"slack:{SLACK_TEAM}:user:{self.slack_id}")
        if self.teams_id:
            principals.append(f"teams:{TEAMS_TENANT}:user:{self.teams_id}")
        return tuple(principals)


@dataclass(frozen=True)
class Question:
    id: str
    asker: str
    question: str
    answerable_for_asker: bool
    kind: str
    expected_doc_ids: tuple[str, ...] = ()
    must_contain: tuple[str, ...] = ()
    must_not_contain: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    restricted_doc_ids: tuple[str, ...] = ()
    follows: str = ""


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise EvaluationSetError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _text(entry: dict, key: str, where: str, *, required: bool = True) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise EvaluationSetError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def parse_people(entries: Any) -> list[Person]:
    """People from PEOPLE.yaml's parsed content: a list of {id, email, name?, groups?, slack_id?, teams_id?,
    external?}."""
    if not isinstance(entries, list) or not entries:
        raise EvaluationSetError("people: expected a non-empty list of people")
    people: dict[str, Person] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"person {number}"
        if not isinstance(entry, dict):
            raise EvaluationSetError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - PERSON_FIELDS)
        if unknown:
            raise EvaluationSetError(f"{where}: unknown field(s) {', '.join(unknown)}")
        person_id = _text(entry, "id", where)
        where = f"person {person_id!r}"
        email = _text(entry, "email", where)
        if "@" not in email:
            raise EvaluationSetError(f"{where}: email {email!r} is not an address")
        if "external" in entry and not isinstance(entry["external"], bool):
            raise EvaluationSetError(f"{where}: external must be true or false")
        if person_id in people:
            raise EvaluationSetError(f"{where}: a second person with this id")
        people[person_id] = Person(
            id=person_id, email=email, name=_text(entry, "name", where, required=False),
            groups=_strings(entry.get("groups"), f"{where}: groups"),
            slack_id=_text(entry, "slack_id", where, required=False),
            teams_id=_text(entry, "teams_id", where, required=False), external=entry.get("external", False))
    emails = [person.email.lower() for person in people.values()]
    if len(set(emails)) != len(emails):
        raise EvaluationSetError("people: two people share an email address")
    return list(people.values())


def parse_questions(lines: Iterable[str], people: Sequence[Person], document_ids: set[str]) -> list[Question]:
    """Questions from Q.jsonl's lines, checked against the people and the corpus's document ids."""
    known_people = {person.id for person in people}
    questions: dict[str, Question] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"questions line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationSetError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(entry, dict):
            raise EvaluationSetError(f"{where}: expected a JSON object")
        unknown = sorted(set(entry) - QUESTION_FIELDS)
        if unknown:
            raise EvaluationSetError(f"{where}: unknown field(s) {', '.join(unknown)}")
        question_id = _text(entry, "id", where)
        where = f"question {question_id!r}"
        if question_id in questions:
            raise EvaluationSetError(f"{where}: a second question with this id")
        if not isinstance(entry.get("answerable_for_asker"), bool):
            raise EvaluationSetError(f"{where}: answerable_for_asker must be true or false")
        question = Question(
            id=question_id, asker=_text(entry, "asker", where), question=_text(entry, "question", where),
            answerable_for_asker=entry["answerable_for_asker"], kind=_text(entry, "kind", where),
            expected_doc_ids=_strings(entry.get("expected_doc_ids"), f"{where}: expected_doc_ids"),
            must_contain=_strings(entry.get("must_contain"), f"{where}: must_contain"),
            must_not_contain=_strings(entry.get("must_not_contain"), f"{where}: must_not_contain"),
            tags=_strings(entry.get("tags"), f"{where}: tags"),
            restricted_doc_ids=_strings(entry.get("restricted_doc_ids"), f"{where}: restricted_doc_ids"),
            follows=_text(entry, "follows", where, required=False),
        )
        if question.asker not in known_people:
            raise EvaluationSetError(f"{where}: asker {question.asker!r} is not in the people file")
        if question.answerable_for_asker and not question.expected_doc_ids:
            raise EvaluationSetError(f"{where}: an answerable question needs expected_doc_ids")
        missing = sorted(set(question.expected_doc_ids + question.restricted_doc_ids) - document_ids)
        if missing:
            raise EvaluationSetError(f"{where}: no such document(s) in the corpus: {', '.join(missing)}")
        if question.follows:
            earlier = questions.get(question.follows)
            if earlier is None:
                raise EvaluationSetError(f"{where}: follows {question.follows!r}, which is not an earlier question")
            if earlier.asker != question.asker:
                raise EvaluationSetError(f"{where}: follows {question.follows!r}, which another person asked")
        questions[question_id] = question
    if not questions:
        raise EvaluationSetError("questions: the file has no questions")
    return list(questions.values())


def reviewed_questions(people: Sequence[Person], document_ids: set[str]) -> tuple[list[Question], list[str]]:
    """Reviewers' corrected answers (answers.models.EvaluationCase, saved from the review queue) as questions of this
    set, kind "reviewed": asked by the person whose email is the case's asker, answerable, citing one of its documents
    and stating its facts, scored like any other question. A case whose asker is not among the people, or whose
    documents are not in the corpus, is left out; the second list says which and why."""
    from answers.models import EvaluationCase

    by_email = {person.email.casefold(): person for person in people}
    questions, skipped = [], []
    for case in EvaluationCase.objects.order_by("pk"):
        person = by_email.get(case.asker_email.casefold())
        missing = sorted(set(case.expected_doc_ids) - document_ids)
        if person is None:
            skipped.append(f"reviewed case {case.pk}: asker {case.asker_email} is not in the people file")
        elif missing or not case.expected_doc_ids:
            skipped.append(f"reviewed case {case.pk}: no such document(s) in the corpus: {', '.join(missing)}")
        else:
            questions.append(Question(
                id=f"reviewed-{case.pk}", asker=person.id, question=case.question, answerable_for_asker=True,
                kind="reviewed", expected_doc_ids=tuple(case.expected_doc_ids),
                must_contain=tuple(fact for fact in case.must_contain if fact.strip()), tags=("reviewed",)))
    return questions, skipped


def doc_id(external_id: str) -> str:
    """A document's id in an evaluation set: its path in the corpus without the extension ("policies/pto")."""
    return str(PurePosixPath(external_id).with_suffix(""))


def corpus_files(corpus: Path) -> list[str]:
    """Paths of the corpus's files, relative to it, as the filesystem connector lists them (hidden ones skipped)."""
    return sorted(path.relative_to(corpus).as_posix() for path in corpus.rglob("*")
                  if path.is_file() and not any(part.startswith(".") for part in path.relative_to(corpus).parts))


# -- who may read what, from the manifest alone ------------------------------------------------------

def _principal(value: str) -> str:
    kind, _, rest = value.strip().partition(":")
    return f"{kind}:{rest.lower()}" if kind in ("email", "domain") and rest else value.strip()


class AccessOracle:
    """Who may read which corpus file, computed from the ACL manifest and the people file alone.

    The manifest's rules are fnmatch patterns on the file's path; the last matching rule (else "default") decides.
    A rule grants everyone (`public`), or the people whose principals meet its `principals`; a rule with a status
    other than ok, a malformed rule, a file no rule decides and a malformed or missing manifest grant nobody.
    A person's principals are their email (and chat identities); an employee (not `external`) also reads as
    "everyone except external" and as their email's domain; their own `groups`, and the groups any of those
    belong to in the manifest's "groups" section, at any depth.
    """

    def __init__(self, manifest: Any, people: Sequence[Person], files: Iterable[str]) -> None:
        self.files = frozenset(files)
        self.manifest = manifest if _well_formed(manifest) else None
        parents: dict[str, set[str]] = {}
        for group, members in ((self.manifest or {}).get("groups") or {}).items():
            for member in members:
                parents.setdefault(_principal(member), set()).add(_principal(group))
        self.principals = {person.id: _closure(_own_principals(person), parents) for person in people}

    @classmethod
    def for_corpus(cls, corpus: Path, people: Sequence[Person]) -> AccessOracle:
        path = corpus / ACL_MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        return cls(manifest, people, corpus_files(corpus))

    def grant(self, path: str) -> dict[str, Any] | None:
        """The rule that decides the file, or None when nothing does (or it cannot be trusted)."""
        if self.manifest is None or path not in self.files:
            return None
        decisive = self.manifest.get("default")
        for rule in self.manifest.get("rules", []):
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in rule["paths"]):
                decisive = rule
        return decisive if isinstance(decisive, dict) else None

    def can_read(self, person_id: str, path: str) -> bool:
        rule = self.grant(path)
        if rule is None or rule.get("status", "ok") != "ok":
            return False
        public, principals = rule.get("public", False), rule.get("principals", [])
        if not isinstance(public, bool) or not isinstance(principals, list) or not all(
                isinstance(p, str) for p in principals):
            return False
        if public:
            return True
        return bool({_principal(p) for p in principals} & self.principals.get(person_id, frozenset()))


def _well_formed(manifest: Any) -> bool:
    if not isinstance(manifest, dict):
        return False
    groups, rules = manifest.get("groups") or {}, manifest.get("rules", [])
    if not isinstance(groups, dict) or not all(isinstance(members, list) and all(isinstance(m, str) for m in members)
                                               for members in groups.values()):
        return False
    return isinstance(rules, list) and all(
        isinstance(rule, dict) and isinstance(rule.get("paths"), list) and rule["paths"]
        and all(isinstance(pattern, str) for pattern in rule["paths"]) for rule in rules)


def _own_principals(person: Person) -> set[str]:
    own = {_principal(p) for p in (*person.identity_principals, *person.groups)}
    if not person.external:
        own |= {EVERYONE_EXCEPT_EXTERNAL, f"domain:{person.email.rsplit('@', 1)[1].lower()}"}
    return own


def _closure(start: set[str], parents: dict[str, set[str]]) -> frozenset[str]:
    reached, pending = set(start), list(start)
    while pending:
        for group in parents.get(pending.pop(), ()):
            if group not in reached:
                reached.add(group)
                pending.append(group)
    return frozenset(reached)


# -- scoring -----------------------------------------------------------------------------------------

_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]")
_SPACES = re.compile(r"[\s\u00a0\u2007\u2009\u202f]+")
_THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u2009\u202f'](?=\d{3}(?!\d))")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def normalise(text: str) -> str:
    """Text as facts are matched in it: lower case, one kind of dash, quote and space, no thousands separators."""
    text = _DASHES.sub("-", text.translate(_QUOTES))
    text = _THOUSANDS.sub("", text)
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass
class AnswerSeen:
    """What the asker was shown: the answer's text and the documents it cited, showed as nearest or linked to
    (by corpus path; a document the corpus does not have is given as `<unknown document ...>`)."""

    text: str = ""
    refused: bool = False
    cited: list[str] = field(default_factory=list)
    nearest: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float | None = None
    error: str = ""
    composer: str = ""
    fallback_reason: str = ""
    conversation_id: str = ""
    # What an LLM composer was billed for this answer (0 for the extractive composer), priced by the settings.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class ScoredAnswer:
    question: Question
    answer: AnswerSeen
    citation_hit: bool | None = None
    missing_facts: list[str] = field(default_factory=list)
    correct: bool | None = None
    false_refusal: bool | None = None
    refusal_ok: bool | None = None
    leaks: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def facts_found(self) -> bool | None:
        return None if not self.question.answerable_for_asker else not self.missing_facts

    def as_dict(self) -> dict[str, Any]:
        question, answer = self.question, self.answer
        return {
            "id": question.id, "asker": question.asker, "kind": question.kind, "tags": list(question.tags),
            "question": question.question, "follows": question.follows or None,
            "answerable_for_asker": question.answerable_for_asker, "answer": answer.text, "refused": answer.refused,
            "citations": answer.citations, "cited_doc_ids": [doc_id(p) for p in answer.cited],
            "nearest_doc_ids": [doc_id(p) for p in answer.nearest],
            "linked_doc_ids": [doc_id(p) for p in answer.linked],
            "expected_doc_ids": list(question.expected_doc_ids), "citation_hit": self.citation_hit,
            "facts_found": self.facts_found, "missing_facts": self.missing_facts, "correct": self.correct,
            "false_refusal": self.false_refusal, "refusal_ok": self.refusal_ok, "leaks": self.leaks,
            "passed": not self.failures, "failures": self.failures, "error": answer.error or None,
            "latency_ms": answer.latency_ms, "conversation_id": answer.conversation_id or None,
            "composer": answer.composer,
            "fallback_reason": answer.fallback_reason or None,
            "input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens, "cost_usd": answer.cost_usd,
        }


def score(question: Question, answer: AnswerSeen, can_read: Callable[[str], bool]) -> ScoredAnswer:
    """Score one answer. `can_read(path)` says whether the asker may read a corpus file (the oracle's verdict).

    A leak is a must_not_contain string in the answer, or a cited, nearest or linked document the asker may not
    read or the question names as restricted. An answerable question is correct when it was answered, cites an
    expected document and contains every must_contain string; a question not answerable for the asker is handled
    right only when it is refused without a leak (an answer to a question the corpus cannot answer for this asker
    is a wrong answer, whatever it cites).
    """
    scored = ScoredAnswer(question, answer)
    text = normalise(answer.text)
    restricted = set(question.restricted_doc_ids)
    leaks = [f"contains {phrase!r}" for phrase in question.must_not_contain if normalise(phrase) in text]
    for how, paths in (("cites", answer.cited), ("shows as nearest", answer.nearest), ("links to", answer.linked)):
        for path in dict.fromkeys(paths):
            if not can_read(path):
                leaks.append(f"{how} {doc_id(path)}, which {question.asker} may not read")
            elif doc_id(path) in restricted:
                leaks.append(f"{how} {doc_id(path)}, restricted for this question")
    scored.leaks = leaks
    failures = [f"error: {answer.error}"] if answer.error else []
    if question.answerable_for_asker:
        cited = {doc_id(path) for path in answer.cited}
        scored.citation_hit = bool(cited & set(question.expected_doc_ids))
        scored.missing_facts = [phrase for phrase in question.must_contain if normalise(phrase) not in text]
        scored.false_refusal = answer.refused
        scored.correct = not answer.error and not answer.refused and scored.citation_hit and not scored.missing_facts
        if answer.refused:
            failures.append("refused a question the asker may have answered")
        elif not answer.error:
            if not scored.citation_hit:
                failures.append(f"cites none of {', '.join(question.expected_doc_ids)} "
                                f"(cites {', '.join(sorted(cited)) or 'nothing'})")
            if scored.missing_facts:
                failures.append("missing " + ", ".join(repr(phrase) for phrase in scored.missing_facts))
    else:
        scored.refusal_ok = not answer.error and answer.refused and not leaks
        if not answer.refused and not answer.error:
            failures.append("answered a question the asker's sources cannot answer")
    failures.extend(f"leak: {leak}" for leak in leaks)
    scored.failures = failures
    return scored


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def summarise(rows: Sequence[ScoredAnswer]) -> dict[str, Any]:
    """Counts and rates over rows: rates of answerable questions over those, refusal accuracy over the others."""
    answerable = [row for row in rows if row.question.answerable_for_asker]
    others = [row for row in rows if not row.question.answerable_for_asker]
    latencies = [row.answer.latency_ms for row in rows if row.answer.latency_ms is not None]
    correct = sum(bool(row.correct) for row in answerable)
    hits = sum(bool(row.citation_hit) for row in answerable)
    facts = sum(bool(row.facts_found) for row in answerable)
    false_refusals = sum(bool(row.false_refusal) for row in answerable)
    refusals_ok = sum(bool(row.refusal_ok) for row in others)
    refused = sum(row.answer.refused for row in others)
    leaked = sum(bool(row.leaks) for row in rows)
    return {
        "questions": len(rows), "passed": sum(not row.failures for row in rows),
        "answerable": len(answerable), "correct": correct, "correct_rate": _rate(correct, len(answerable)),
        "citation_hits": hits, "citation_hit_rate": _rate(hits, len(answerable)),
        "facts_found": facts, "fact_recall": _rate(facts, len(answerable)),
        "false_refusals": false_refusals, "false_refusal_rate": _rate(false_refusals, len(answerable)),
        "not_answerable": len(others), "refusals_ok": refusals_ok,
        "refusal_accuracy": _rate(refusals_ok, len(others)),
        "refused": refused, "refusal_rate": _rate(refused, len(others)),
        "leaks": leaked, "leak_rate": _rate(leaked, len(rows)),
        "errors": sum(bool(row.answer.error) for row in rows),
        # A configured composer that failed and was stood in for: the scores are then partly the stand-in's.
        "composer_fallbacks": sum(row.answer.fallback_reason.startswith("composer ") or
                                  "; composer " in row.answer.fallback_reason for row in rows),
        "input_tokens": sum(row.answer.input_tokens for row in rows),
        "output_tokens": sum(row.answer.output_tokens for row in rows),
        "cost_usd": round(sum(row.answer.cost_usd for row in rows), 6),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
    }


def breakdown(rows: Sequence[ScoredAnswer]) -> tuple[dict[str, Any], dict[str, Any]]:
    """summarise() per kind and per tag (a question with several tags counts under each)."""
    kinds = sorted({row.question.kind for row in rows})
    tags = sorted({tag for row in rows for tag in row.question.tags})
    return ({kind: summarise([row for row in rows if row.question.kind == kind]) for kind in kinds},
            {tag: summarise([row for row in rows if tag in row.question.tags]) for tag in tags})


# -- a run ---------------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    corpus: str
    backend: str
    composer: str
    index_name: str
    index_dir: str
    ingest: dict[str, Any]
    rows: list[ScoredAnswer]

    def as_dict(self) -> dict[str, Any]:
        by_kind, by_tag = breakdown(self.rows)
        return {"corpus": self.corpus, "backend": self.backend, "composer": self.composer,
                "index": {"name": self.index_name, "dir": self.index_dir or None}, "ingest": self.ingest,
                "summary": summarise(self.rows), "by_kind": by_kind, "by_tag": by_tag,
                "questions": [row.as_dict() for row in self.rows]}


def add_set_arguments(parser: Any) -> None:
    """The command-line arguments naming an evaluation set and the backend to run it on (evaluate_answers,
    train_answerability)."""
    parser.add_argument("--corpus", required=True, type=Path, help="the corpus folder, with its .citewise-acl.json")
    parser.add_argument("--people", required=True, type=Path, help="PEOPLE.yaml: who asks")
    parser.add_argument("--questions", required=True, type=Path, help="Q.jsonl: one question per line")
    parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded")


def load_evaluation_set(corpus: Path, people_file: Path, questions_file: Path) -> tuple[list[Person], list[Question]]:
    if not corpus.is_dir():
        raise EvaluationSetError(f"{corpus}: not a directory")
    try:
        people = parse_people(yaml.safe_load(people_file.read_text(encoding="utf-8")))
        lines = questions_file.read_text(encoding="utf-8").splitlines()
    except (OSError, yaml.YAMLError) as exc:
        raise EvaluationSetError(str(exc)) from exc
    return people, parse_questions(lines, people, {doc_id(path) for path in corpus_files(corpus)})


def run(corpus: Path, people: Sequence[Person], questions: Sequence[Question], *, backend: str = "embedded",
        composer: str | None = None, progress: bool = False, steps: Steps = DEFAULT_STEPS) -> Evaluation:
    """Ingest the corpus into a throwaway index, ask every question as its asker, score the answers; leave nothing
    behind (see the module's docstring). `steps` replaces pipeline steps (the answerability training records what
    the gate sees)."""
    corpus = corpus.resolve()
    oracle = AccessOracle.for_corpus(corpus, people)
    token = uuid.uuid4().hex[:12]
    index_name = f"eval-answers-{token}"
    with tempfile.TemporaryDirectory(prefix="citewise-eval-") as scratch:
        index_dir = Path(scratch) / "index"
        config = current().replace(
            search_backend=backend, index_name=index_name, embedded_index_dir=index_dir, answer_cache_ttl_s=0,
            ask_rate_per_user="", ask_rate_per_channel="", **({"composer": composer} if composer else {}))
        with _throwaway(config, index_name, backend):
            source = connector_services.ensure_source("filesystem", corpus, name=f"evaluation {token}",
                                                      index_name=index_name, search_backend=backend)
            _set_aside_identities(people, oracle)
            report = connector_services.sync_source(source, progress=progress, config=config)
            connector_services.sync_permissions(source)
            users = _make_people(people, token)
            documents = {doc.id: (doc.external_id, doc.url) for doc in Document.objects.filter(source=source)}
            rows = list(_ask_all(questions, users, documents, oracle, progress=progress, steps=steps))
        return Evaluation(corpus=str(corpus), backend=backend, composer=config.composer, index_name=index_name,
                          index_dir=str(index_dir) if backend == "embedded" else "",
                          ingest={"indexed": report.indexed, "failed": report.failed, "errors": report.errors},
                          rows=rows)


@contextmanager
def _throwaway(config: Any, index_name: str, backend: str) -> Iterator[None]:
    """Settings pointing at the run's own index with the answer cache and rate limits off, a private cache (the
    index-version bumps and rate counters of the run stay out of the shared one), one transaction rolled back at
    the end, and the index dropped."""
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": index_name}}
    with override_settings(CITEWISE=config, CACHES=caches):
        try:
            with transaction.atomic():
                try:
                    yield
                finally:
                    transaction.set_rollback(True)
        finally:
            retrieval_services.discard_backend(index_name, backend)


def _set_aside_identities(people: Sequence[Person], oracle: AccessOracle) -> None:
    """Inside the run's transaction, take out what the database already holds for the set's principals (a linked
    identity with the same email, memberships of the same groups), so the product sees the set's people and groups
    as the manifest and people file define them and nothing else; the rollback puts it all back."""
    identities = {principal for person in people for principal in person.identity_principals}
    groups = set((oracle.manifest or {}).get("groups") or {}) | {group for person in people for group in person.groups}
    groups = {_principal(group) for group in groups}
    members = {principal for person in people for principal in _own_principals(person)} | groups
    ExternalIdentity.objects.filter(principal__in=identities).delete()
    GroupMembership.objects.filter(Q(member__in=members) | Q(group__principal__in=groups)).delete()


def _make_people(people: Sequence[Person], token: str) -> dict[str, Any]:
    """A user per person: an employee or guest account, their linked identities, and their own group memberships."""
    users = {}
    for person in people:
        user = get_user_model().objects.create_user(f"eval-{token}-{person.id}"[:150], email=person.email,
                                                    first_name=person.name[:150])
        identity_services.set_account_status(user, Account.Status.GUEST if person.external
                                             else Account.Status.EMPLOYEE, surface="cli")
        for principal in person.identity_principals:
            ExternalIdentity.objects.create(user=user, principal=principal, is_external=person.external)
        for principal in person.groups:
            group, _ = Group.objects.get_or_create(principal=_principal(principal),
                                                   defaults={"name": principal.rsplit(":", 1)[-1]})
            GroupMembership.objects.get_or_create(group=group, member=person.identity_principals[0],
                                                  defaults={"origin": GroupMembership.Origin.LOCAL})
        users[person.id] = user
    return users


def _ask_all(questions: Sequence[Question], users: dict[str, Any], documents: dict[str, tuple[str, str]],
             oracle: AccessOracle, *, progress: bool, steps: Steps = DEFAULT_STEPS) -> Iterator[ScoredAnswer]:
    conversations: dict[str, Any] = {}
    for question in tqdm(questions, desc="questions", unit="q", disable=not progress, dynamic_ncols=True):
        if question.follows and question.follows not in conversations:
            answer = AnswerSeen(error=f"not asked: it follows {question.follows}, which failed")
        else:
            answer, conversations[question.id] = _ask_one(question, users[question.asker], documents,
                                                          conversations.get(question.follows), steps)
        scored = score(question, answer, functools.partial(oracle.can_read, question.asker))
        logger.info("evaluated question=%s asker=%s kind=%s refused=%s correct=%s refusal_ok=%s leaks=%d "
                    "latency_ms=%s error=%s", question.id, question.asker, question.kind, answer.refused,
                    scored.correct, scored.refusal_ok, len(scored.leaks), answer.latency_ms, answer.error or "-")
        if answer.error:
            conversations.pop(question.id, None)
        yield scored


def _ask_one(question: Question, user: Any, documents: dict[str, tuple[str, str]],
             conversation_id: Any, steps: Steps = DEFAULT_STEPS) -> tuple[AnswerSeen, Any]:
    """Ask as the API asks for a signed-in user: the principals its request resolves to, in the conversation."""
    started = time.perf_counter()
    try:
        result = ask(question.question, principals=principals_for(user), user=user, conversation_id=conversation_id,
                     surface="api", steps=steps)
    except Exception as exc:  # noqa: BLE001 - an outage or a bug fails this question, not the run (ask() logs it)
        return AnswerSeen(error=f"{type(exc).__name__}: {exc}",
                          latency_ms=round((time.perf_counter() - started) * 1000, 1)), None
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return _seen(result, documents, latency_ms), result.conversation_id


def _seen(result: AnswerResult, documents: dict[str, tuple[str, str]], latency_ms: float) -> AnswerSeen:
    def path(document_id: str) -> str:
        return documents[document_id][0] if document_id in documents else f"<unknown document {document_id}>"

    linked = [external_id for external_id, url in documents.values()
              if url in result.text or re.search(rf"(?<![\w/.-]){re.escape(external_id)}(?![\w])", result.text)]
    return AnswerSeen(
        text=result.text, refused=result.refused, cited=[path(c.document_id) for c in result.citations],
        nearest=[path(c.document_id) for c in result.nearest], linked=linked,
        citations=[{"number": c.number, "doc_id": doc_id(path(c.document_id)), "title": c.title,
                    "section": " > ".join(c.heading_path)} for c in result.citations],
        latency_ms=latency_ms, composer=result.composer, fallback_reason=result.fallback_reason,
        conversation_id=str(result.conversation_id), input_tokens=result.input_tokens,
        output_tokens=result.output_tokens, cost_usd=result.cost_usd)


# -- the text report -----------------------------------------------------------------------------------

def _cell(count: int, total: int) -> str:
    return f"{count}/{total} {count / total:4.0%}" if total else "-"


def _latency(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def format_report(evaluation: Evaluation) -> str:
    """A readable table (overall, per kind, per tag) and the failing questions with what went wrong."""
    data = evaluation.as_dict()
    header = f"{'group':<24} {'n':>4}  {'correct':>11}  {'cites':>11}  {'facts':>11}  {'false refusals':>14}  " \
             f"{'refusal acc':>11}  {'refused':>11}  {'leaks':>9}  {'p50 ms':>7}  {'p95 ms':>7}"
    lines = [f"Answer evaluation of {data['corpus']}: {data['backend']} backend, {data['composer']} composer",
             f"ingest: {data['ingest']['indexed']} indexed, {data['ingest']['failed']} failed",
             f"composer: {data['summary']['composer_fallbacks']} fallbacks, {data['summary']['input_tokens']} input "
             f"and {data['summary']['output_tokens']} output tokens, {data['summary']['cost_usd']:.4f} USD", "", header,
             "-" * len(header)]
    groups = [("overall", data["summary"]), *((f"kind:{k}", s) for k, s in data["by_kind"].items()),
              *((f"tag:{t}", s) for t, s in data["by_tag"].items())]
    for name, s in groups:
        lines.append(
            f"{name[:24]:<24} {s['questions']:>4}  {_cell(s['correct'], s['answerable']):>11}  "
            f"{_cell(s['citation_hits'], s['answerable']):>11}  {_cell(s['facts_found'], s['answerable']):>11}  "
            f"{_cell(s['false_refusals'], s['answerable']):>14}  {_cell(s['refusals_ok'], s['not_answerable']):>11}  "
            f"{_cell(s['refused'], s['not_answerable']):>11}  "
            f"{_cell(s['leaks'], s['questions']):>9}  {_latency(s['latency_p50_ms']):>7}  "
            f"{_latency(s['latency_p95_ms']):>7}")
    failing = [row for row in data["questions"] if not row["passed"]]
    lines += ["", f"Failing questions: {len(failing)} of {len(data['questions'])}"]
    for row in failing:
        lines.append(f"  {row['id']} [{row['kind']}] asked by {row['asker']}: {row['question']}")
        lines += [f"      - {failure}" for failure in row["failures"]]
        answer = " ".join(row["answer"].split())
        lines.append(f"      answer: {answer[:300]}{'…' if len(answer) > 300 else ''}")
    return "\n".join(lines)
