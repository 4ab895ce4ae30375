"""manage.py evaluate_answers: the access oracle, the scoring arithmetic on crafted answers, and real runs of the
command on a tiny corpus (as each asker, follow-ups in their conversation, nothing left behind)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from answers import evaluation
from answers.evaluation import AccessOracle, AnswerSeen, Person, Question, normalise, score, summarise
from answers.models import Answer, Conversation
from audit.models import AuditEvent
from connectors.models import Document, Source
from identity.models import Account, ExternalIdentity, Group, GroupMembership
from retrieval.models import EmbeddingCacheEntry
from retrieval.services import get_backend

ALICE = Person(id="alice", email="Alice@Corp.example")
FRED = Person(id="fred", email="fred@corp.example")
GUS = Person(id="gus", email="gus@agency.example", external=True)
PAT = Person(id="pat", email="pat@corp.example", groups=("group:platform",))
FILES = ["policies/pto.md", "finance/salaries.md", "finance/budget.md", "handbook/parking.md", "eng/runbook.md",
         "eng/deploy.md", "misc/notes.md"]
MANIFEST = {
    "groups": {"group:finance": ["email:FRED@corp.example"], "group:engineering": ["group:platform"],
               "group:staff": ["org:everyone-except-external"]},
    "rules": [
        {"paths": ["handbook/*"], "public": True},
        {"paths": ["policies/*"], "principals": ["org:everyone-except-external"]},
        {"paths": ["finance/*"], "principals": ["group:finance"]},
        {"paths": ["finance/budget.md"], "status": "unknown"},
        {"paths": ["eng/*"], "principals": ["group:engineering"]},
        {"paths": ["eng/deploy.md"], "principals": ["domain:corp.example"]},
    ],
}


# -- the oracle ------------------------------------------------------------------------------------

def test_the_oracle_reads_the_manifest_as_written():
    oracle = AccessOracle(MANIFEST, [ALICE, FRED, GUS, PAT], FILES)
    readable = {person: {path for path in FILES if oracle.can_read(person, path)}
                for person in ("alice", "fred", "gus", "pat")}
    assert readable["alice"] == {"policies/pto.md", "handbook/parking.md", "eng/deploy.md"}
    # email principals compare case-insensitively; the status rule hides the budget even from finance
    assert readable["fred"] == {"policies/pto.md", "handbook/parking.md", "eng/deploy.md", "finance/salaries.md"}
    # an external person reads public files only: not everyone-except-external, not their domain
    assert readable["gus"] == {"handbook/parking.md"}
    # a person's own group nests into the manifest's groups; the last matching rule decides
    assert readable["pat"] == {"policies/pto.md", "handbook/parking.md", "eng/runbook.md", "eng/deploy.md"}
    assert "group:staff" in oracle.principals["alice"] and "group:staff" not in oracle.principals["gus"]
    assert not oracle.can_read("alice", "misc/notes.md")  # no rule, no default: nobody
    assert not oracle.can_read("alice", "not/in-the-corpus.md")
    assert oracle.can_read("someone-else", "handbook/parking.md")  # public: anyone


def test_the_oracle_defaults_errors_and_malformed_manifests():
    with_default = {**MANIFEST, "default": {"public": True},
                    "rules": [*MANIFEST["rules"], {"paths": ["handbook/*"], "status": "error"},
                              {"paths": ["eng/runbook.md"], "principals": "group:engineering"}]}
    oracle = AccessOracle(with_default, [ALICE, PAT], FILES)
    assert oracle.can_read("alice", "misc/notes.md")  # the default decides what no rule matches
    assert not oracle.can_read("alice", "handbook/parking.md")  # status error: nobody
    assert not oracle.can_read("pat", "eng/runbook.md")  # a malformed grant: nobody
    for broken in (None, [], {"rules": "all"}, {"rules": [{"paths": []}]}, {"groups": {"group:x": "a"}}):
        oracle = AccessOracle(broken, [ALICE], FILES)
        assert not any(oracle.can_read("alice", path) for path in FILES)


def test_normalisation_unifies_dashes_spaces_case_and_thousands():
    assert normalise("Up to 1,000,000 KR \u2013 net") == "up to 1000000 kr - net"
    assert normalise("\u22125\u00a0\u00b0C, 2\u202f500\u2009m") == "-5 \u00b0c, 2500 m"
    assert normalise("the employee\u2019s  \n badge") == "the employee's badge"
    assert normalise("1,5 and 12,34 stay") == "1,5 and 12,34 stay"


# -- scoring crafted answers -----------------------------------------------------------------------

def question(**fields) -> Question:
    defaults = {"id": "q", "asker": "alice", "question": "?", "answerable_for_asker": True, "kind": "fact",
                "expected_doc_ids": ("policies/pto",), "must_contain": ("25 days", "1,000 euros")}
    return Question(**{**defaults, **fields})


def readable(path: str) -> bool:
    return path in {"policies/pto.md", "handbook/parking.md"}


def test_an_answer_citing_an_expected_document_with_every_fact_is_correct():
    row = score(question(), AnswerSeen(text="You get 25 Days [1] and up to 1000 euros [1].",
                                       cited=["policies/pto.md"], latency_ms=10), readable)
    assert (row.correct, row.citation_hit, row.facts_found, row.false_refusal, row.leaks) == (True, True, True,
                                                                                              False, [])
    assert row.failures == [] and row.as_dict()["passed"]


def test_a_wrong_citation_a_missing_fact_and_a_refusal_each_fail_an_answerable_question():
    wrong = score(question(), AnswerSeen(text="25 days, 1000 euros [1].", cited=["handbook/parking.md"]), readable)
    assert (wrong.correct, wrong.citation_hit, wrong.facts_found) == (False, False, True)
    assert wrong.failures == ["cites none of policies/pto (cites handbook/parking)"]
    partial = score(question(), AnswerSeen(text="25 days [1].", cited=["policies/pto.md"]), readable)
    assert (partial.correct, partial.citation_hit, partial.missing_facts) == (False, True, ["1,000 euros"])
    refused = score(question(), AnswerSeen(text="I couldn't find it.", refused=True, nearest=["policies/pto.md"]),
                    readable)
    assert (refused.correct, refused.false_refusal, refused.refusal_ok) == (False, True, None)
    assert refused.failures == ["refused a question the asker may have answered"]


def test_leaks_are_forbidden_text_or_documents_the_asker_may_not_read_however_shown():
    forbidden = score(question(answerable_for_asker=False, must_not_contain=("1,000,000 KR",)),
                      AnswerSeen(text="The band tops out at 1000000 kr."), readable)
    assert forbidden.leaks == ["contains '1,000,000 KR'"] and forbidden.refusal_ok is False
    shown = score(question(answerable_for_asker=False, restricted_doc_ids=("handbook/parking",)),
                  AnswerSeen(text="Refused.", refused=True, nearest=["finance/salaries.md", "handbook/parking.md"],
                             linked=["finance/budget.md"], cited=[]), readable)
    assert shown.leaks == ["shows as nearest finance/salaries, which alice may not read",
                           "shows as nearest handbook/parking, restricted for this question",
                           "links to finance/budget, which alice may not read"]
    # A refusal that shows what the asker may not read is no right refusal.
    assert shown.refusal_ok is False and len(shown.failures) == 3
    assert all(f.startswith("leak: ") for f in shown.failures)
    cited = score(question(), AnswerSeen(text="25 days, 1000 euros [1][2].",
                                         cited=["policies/pto.md", "<unknown document d9>"]), readable)
    assert cited.correct is True and cited.leaks == ["cites <unknown document d9>, which alice may not read"]


def test_a_question_not_answerable_for_its_asker_is_right_only_when_refused():
    unanswerable = question(answerable_for_asker=False, expected_doc_ids=(), must_contain=())
    refused = score(unanswerable, AnswerSeen(text="No.", refused=True, nearest=["policies/pto.md"]), readable)
    harmless = score(unanswerable, AnswerSeen(text="Parking is on level -2 [1].", cited=["handbook/parking.md"]),
                     readable)
    failed = score(unanswerable, AnswerSeen(error="SearchUnavailable: down"), readable)
    assert (refused.refusal_ok, harmless.refusal_ok, failed.refusal_ok) == (True, False, False)
    assert harmless.failures == ["answered a question the asker's sources cannot answer"]
    assert refused.correct is None and refused.citation_hit is None and refused.facts_found is None
    assert failed.failures == ["error: SearchUnavailable: down"]


def test_the_summary_counts_each_score_over_its_own_questions():
    answerable, other = question(tags=("numbers",)), question(answerable_for_asker=False, kind="no-access")
    rows = [
        score(answerable, AnswerSeen(text="25 days, 1,000 euros", cited=["policies/pto.md"], latency_ms=100,
                                     composer="openai", input_tokens=800, output_tokens=20, cost_usd=0.0007),
              readable),
        score(answerable, AnswerSeen(text="25 days", cited=["policies/pto.md"], latency_ms=200, composer="extractive",
                                     fallback_reason="reranker cohere failed: x; composer openai failed: HTTP 500"),
              readable),
        score(answerable, AnswerSeen(refused=True, latency_ms=300, fallback_reason="reranker cohere failed: x"),
              readable),
        score(answerable, AnswerSeen(text="25 days, 1000 euros", cited=["finance/salaries.md"], latency_ms=400),
              readable),
        score(other, AnswerSeen(refused=True, latency_ms=500), readable),
        score(other, AnswerSeen(text="x", cited=["finance/salaries.md"]), readable),
    ]
    summary = summarise(rows)
    assert summary == {
        "questions": 6, "passed": 2, "answerable": 4, "correct": 1, "correct_rate": 0.25,
        "citation_hits": 2, "citation_hit_rate": 0.5, "facts_found": 2, "fact_recall": 0.5,
        "false_refusals": 1, "false_refusal_rate": 0.25, "not_answerable": 2, "refusals_ok": 1,
        "refusal_accuracy": 0.5, "refused": 1, "refusal_rate": 0.5, "leaks": 2, "leak_rate": 0.3333, "errors": 0,
        "latency_p50_ms": 300.0, "latency_p95_ms": 480.0,
        # only a composer's failure is a composer fallback; tokens and cost are summed over the questions
        "composer_fallbacks": 1, "input_tokens": 800, "output_tokens": 20, "cost_usd": 0.0007,
    }
    by_kind, by_tag = evaluation.breakdown(rows)
    assert set(by_kind) == {"fact", "no-access"} and by_kind["no-access"]["refusal_accuracy"] == 0.5
    assert by_tag["numbers"]["questions"] == 4 and summarise([])["correct_rate"] is None


# -- parsing the evaluation set --------------------------------------------------------------------

@pytest.mark.parametrize(("line", "problem"), [
    ({"asker": "zoe"}, "asker 'zoe' is not in the people file"),
    ({"follows": "q9"}, "follows 'q9', which is not an earlier question"),
    ({"expected_doc_ids": ["policies/missing"]}, "no such document"),
    ({"must_contains": ["x"]}, "unknown field"),
    ({"answerable_for_asker": "yes"}, "answerable_for_asker must be true or false"),
    ({"expected_doc_ids": []}, "needs expected_doc_ids"),
])
def test_a_malformed_question_is_refused_with_where_it_is(line, problem):
    entry = {"id": "q2", "asker": "alice", "question": "?", "answerable_for_asker": True, "kind": "fact",
             "expected_doc_ids": ["policies/pto"], **line}
    first = json.dumps({"id": "q1", "asker": "fred", "question": "?", "answerable_for_asker": False,
                        "kind": "not-in-corpus"})
    with pytest.raises(evaluation.EvaluationSetError, match=problem):
        evaluation.parse_questions([first, json.dumps(entry)], [ALICE, FRED], {"policies/pto"})


def test_a_follow_up_must_be_asked_by_the_same_person():
    lines = [json.dumps({"id": "q1", "asker": "fred", "question": "?", "answerable_for_asker": False, "kind": "x"}),
             json.dumps({"id": "q2", "asker": "alice", "question": "?", "answerable_for_asker": False, "kind": "x",
                         "follows": "q1"})]
    with pytest.raises(evaluation.EvaluationSetError, match="which another person asked"):
        evaluation.parse_questions(lines, [ALICE, FRED], set())


def test_people_need_unique_ids_and_addresses():
    with pytest.raises(evaluation.EvaluationSetError, match="a second person"):
        evaluation.parse_people([{"id": "a", "email": "a@x.example"}, {"id": "a", "email": "b@x.example"}])
    with pytest.raises(evaluation.EvaluationSetError, match="share an email"):
        evaluation.parse_people([{"id": "a", "email": "a@x.example"}, {"id": "b", "email": "A@x.example"}])
    with pytest.raises(evaluation.EvaluationSetError, match="unknown field"):
        evaluation.parse_people([{"id": "a", "email": "a@x.example", "group": ["group:x"]}])


# -- real runs -------------------------------------------------------------------------------------

EVAL_MANIFEST = {
    "groups": {"group:finance": ["email:fred@corp.example"]},
    "rules": [
        {"paths": ["handbook/*"], "public": True},
        {"paths": ["policies/*"], "principals": ["org:everyone-except-external"]},
        {"paths": ["finance/*"], "principals": ["group:finance"]},
        {"paths": ["finance/budget.md"], "status": "unknown"},
    ],
}
PEOPLE_YAML = """\
- id: alice
  email: alice@corp.example
  name: Alice Example
  slack_id: U0ALICE
- id: fred
  email: fred@corp.example
- id: gus
  email: gus@agency.example
  external: true
"""
QUESTIONS = [
    {"id": "pto", "asker": "alice", "question": "How many days of paid vacation does every employee get per year?",
     "answerable_for_asker": True, "expected_doc_ids": ["policies/pto"], "must_contain": ["25 days"],
     "kind": "fact", "tags": ["pto"]},
    {"id": "pto-carry", "asker": "alice", "question": "How many unused days carry over to the next year?",
     "answerable_for_asker": True, "expected_doc_ids": ["policies/pto"], "must_contain": ["5 unused days"],
     "kind": "follow-up", "tags": ["pto"], "follows": "pto"},
    {"id": "salary-alice", "asker": "alice", "question": "How high does the engineering salary band go?",
     "answerable_for_asker": False, "must_not_contain": ["1,200,000"], "kind": "no-access",
     "restricted_doc_ids": ["finance/salaries"]},
    {"id": "salary-fred", "asker": "fred", "question": "How high does the engineering salary band go?",
     "answerable_for_asker": True, "expected_doc_ids": ["finance/salaries"], "must_contain": ["1.200.000"],
     "kind": "fact"},
    {"id": "budget", "asker": "fred", "question": "What is the 2027 travel budget per team?",
     "answerable_for_asker": False, "must_not_contain": ["4,000 euros"], "kind": "no-access",
     "restricted_doc_ids": ["finance/budget"]},
    {"id": "pto-gus", "asker": "gus", "question": "How many days of paid vacation does every employee get per year?",
     "answerable_for_asker": False, "must_not_contain": ["25 days"], "kind": "no-access",
     "restricted_doc_ids": ["policies/pto"]},
    {"id": "pets", "asker": "gus", "question": "Does the company offer pet insurance for dogs?",
     "answerable_for_asker": False, "kind": "not-in-corpus"},
]


def write_eval_set(folder: Path, files: dict[str, str], manifest: dict, people_yaml: str,
                   questions: list[dict]) -> tuple[Path, Path, Path]:
    """An evaluation set on disk: (corpus folder with its ACL manifest, people file, questions file)."""
    corpus = folder / "corpus"
    for path, text in files.items():
        (corpus / path).parent.mkdir(parents=True, exist_ok=True)
        (corpus / path).write_text(text)
    (corpus / ".citewise-acl.json").write_text(json.dumps(manifest))
    people, questions_file = folder / "people.yaml", folder / "questions.jsonl"
    people.write_text(people_yaml)
    questions_file.write_text("\n".join(json.dumps(q) for q in questions) + "\n")
    return corpus, people, questions_file


@pytest.fixture
def eval_set(tmp_path) -> tuple[Path, Path, Path]:
    return write_eval_set(tmp_path, {
        "policies/pto.md": "# Paid time off\n\nEvery employee gets 25 days of paid vacation per year.\n\n"
                           "## Carry-over\n\nUp to 5 unused days carry over to the next year.\n",
        "handbook/parking.md": "# Parking\n\nVisitor parking is on level minus two of the north garage.\n",
        "finance/salaries.md": "# Salary bands\n\nThe engineering salary band goes as high as 1.200.000 kroner.\n",
        "finance/budget.md": "# Travel budget\n\nThe 2027 travel budget is 4,000 euros per team.\n",
    }, EVAL_MANIFEST, PEOPLE_YAML, QUESTIONS)


def database_counts() -> dict[str, int]:
    models = [get_user_model(), Source, Document, Answer, Conversation, Group, GroupMembership, ExternalIdentity,
              Account, AuditEvent, EmbeddingCacheEntry]
    return {model.__name__: model.objects.count() for model in models}


def run_json(capsys, eval_set, *extra: str) -> dict:
    corpus, people, questions = eval_set
    call_command("evaluate_answers", "--corpus", str(corpus), "--people", str(people), "--questions", str(questions),
                 "--json", *extra)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def someone_already_linked(db):
    """The configured database already links alice's address to another user, and puts it in finance: the run must
    see only its own people (and leave these rows as they were)."""
    user = get_user_model().objects.create_user("alice-main")
    ExternalIdentity.objects.create(user=user, principal="email:alice@corp.example")
    group = Group.objects.create(principal="group:finance", name="finance")
    return GroupMembership.objects.create(group=group, member="email:alice@corp.example")


@pytest.mark.django_db
@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
def test_a_run_asks_as_each_asker_scores_the_answers_and_leaves_nothing_behind(
        backend, eval_set, capsys, isolated_index, request, someone_already_linked):
    if backend == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    before = database_counts()
    report = run_json(capsys, eval_set, "--backend", backend)

    assert report["backend"] == backend and report["composer"] == "extractive"
    assert report["ingest"] == {"indexed": 4, "failed": 0, "errors": []}
    rows = {row["id"]: row for row in report["questions"]}
    assert list(rows) == [q["id"] for q in QUESTIONS]
    # The product's ACLs hold: nobody is shown what the manifest does not let them read, status unknown included.
    assert report["summary"]["leaks"] == 0
    assert all("finance/budget" not in row["cited_doc_ids"] + row["nearest_doc_ids"] for row in rows.values())
    assert all("finance/salaries" not in row["cited_doc_ids"] + row["nearest_doc_ids"]
               for row in rows.values() if row["asker"] != "fred")
    assert rows["pto"]["correct"] and "25 days" in rows["pto"]["answer"]
    assert rows["salary-fred"]["cited_doc_ids"] == ["finance/salaries"]
    assert rows["pto-gus"]["refused"] and rows["pto-gus"]["refusal_ok"]
    # The follow-up is asked in its question's conversation, the others each in their own.
    conversations = [row["conversation_id"] for row in rows.values()]
    assert rows["pto-carry"]["conversation_id"] == rows["pto"]["conversation_id"]
    assert len(set(conversations)) == len(QUESTIONS) - 1 and None not in conversations

    # The scores are what the answers make them: rescoring the reported answers with the oracle gives the same rows.
    corpus = eval_set[0]
    people, questions = evaluation.load_evaluation_set(*eval_set)
    oracle = AccessOracle.for_corpus(corpus, people)
    paths = {evaluation.doc_id(path): path for path in evaluation.corpus_files(corpus)}
    rescored = []
    for q in questions:
        row = rows[q.id]
        seen = AnswerSeen(text=row["answer"], refused=row["refused"], cited=[paths[d] for d in row["cited_doc_ids"]],
                          nearest=[paths[d] for d in row["nearest_doc_ids"]],
                          linked=[paths[d] for d in row["linked_doc_ids"]], latency_ms=row["latency_ms"],
                          citations=row["citations"], composer=row["composer"],
                          conversation_id=row["conversation_id"])
        rescored.append(score(q, seen, lambda path, asker=q.asker: oracle.can_read(asker, path)))
        assert rescored[-1].as_dict() == row
    assert report["summary"] == summarise(rescored)
    assert report["by_kind"]["no-access"]["not_answerable"] == 3 and report["by_tag"]["pto"]["answerable"] == 2

    # Nothing left behind: the database as it was, the run's index gone, the main index never created.
    assert database_counts() == before
    someone_already_linked.refresh_from_db()
    assert ExternalIdentity.objects.get(principal="email:alice@corp.example").user.username == "alice-main"
    if backend == "embedded":
        assert not Path(report["index"]["dir"]).exists()
    else:
        client = get_backend(report["index"]["name"], "elasticsearch").client
        left = client.indices.get(index=f"{report['index']['name']}*", expand_wildcards="all").body
        assert left == {}
    assert get_backend().index_info() is None


@pytest.mark.django_db
def test_a_product_that_resolves_too_many_principals_is_caught_leaking(eval_set, capsys, isolated_index,
                                                                       monkeypatch):
    """Had the product given alice finance's principals, the oracle (which reads only the manifest) says so."""
    resolve = evaluation.principals_for
    monkeypatch.setattr(evaluation, "principals_for", lambda user: resolve(user) | {"group:finance"})
    eval_set[2].write_text(json.dumps(next(q for q in QUESTIONS if q["id"] == "salary-alice")) + "\n")
    rows = {row["id"]: row for row in run_json(capsys, eval_set)["questions"]}
    salary = rows["salary-alice"]
    shown = salary["cited_doc_ids"] + salary["nearest_doc_ids"]
    assert "finance/salaries" in shown
    assert any(leak.endswith("finance/salaries, which alice may not read") for leak in salary["leaks"])
    assert salary["refusal_ok"] is False and not salary["passed"]


@pytest.mark.django_db
def test_the_text_report_shows_the_table_and_the_failing_questions(eval_set, capsys, isolated_index):
    corpus, people, questions = eval_set
    # One question fails whatever the composer does: the fact it wants is not in the corpus.
    lines = questions.read_text().splitlines()[:1]
    lines.append(json.dumps({**QUESTIONS[0], "id": "pto-wrong", "must_contain": ["26 days"]}))
    questions.write_text("\n".join(lines) + "\n")
    call_command("evaluate_answers", "--corpus", str(corpus), "--people", str(people), "--questions", str(questions))
    out = capsys.readouterr().out
    assert "overall" in out and "kind:fact" in out and "tag:pto" in out
    assert "composer: 0 fallbacks, 0 input and 0 output tokens, 0.0000 USD" in out
    assert "Failing questions: 1 of 2" in out
    assert "pto-wrong [fact] asked by alice" in out and "missing '26 days'" in out


def test_an_invalid_evaluation_set_is_a_command_error(eval_set):
    corpus, people, questions = eval_set
    people.write_text(textwrap.dedent("""\
        - id: alice
          email: not-an-address
    """))
    with pytest.raises(CommandError, match="invalid evaluation set: person 'alice': email"):
        call_command("evaluate_answers", "--corpus", str(corpus), "--people", str(people),
                     "--questions", str(questions), "--json")
