"""The answer-level evaluation set (evaluation/questions.jsonl, evaluation/people.yaml) is consistent with the demo corpus.

Every question is checked against what the corpus really says and who may really read it: expected documents
exist and hold the must_contain facts, no-access questions name documents the asker cannot read under the ACL
manifest (last matching rule wins, as connectors/sources/filesystem.py decides), and no question copies five
consecutive words from any document, so that lexical overlap alone cannot answer it.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import mimetypes
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import yaml

import connectors.sources.filesystem  # noqa: F401  (registers the .md and .docx MIME types)
from connectors.management.commands.load_demo import DEMO_CORPUS
from connectors.parsing import parse

ROOT = Path(__file__).resolve().parents[2]
EVALUATION = ROOT / "evaluation"
MANIFEST = json.loads((DEMO_CORPUS / ".citewise-acl.json").read_text())
KINDS = {"fact", "multi-hop", "superseded", "follow-up", "not-in-corpus", "no-access", "poisoned"}
FIELDS = {"id", "asker", "question", "answerable_for_asker", "expected_doc_ids", "must_contain", "must_not_contain",
          "kind", "tags", "restricted_doc_ids"}
MINIMUM_PER_KIND = {"fact": 110, "multi-hop": 15, "superseded": 15, "follow-up": 25, "not-in-corpus": 25,
                    "no-access": 20, "poisoned": 10}
# Fact questions that test exact details rather than gist: at least half of them.
DETAIL_TAGS = {"identifier", "number", "table", "html-table", "list", "code", "config", "date"}
EVERYONE_INTERNAL = "org:everyone-except-external"
OVERLAP = 5


def normalise(text: str) -> str:
    """The matching rule of the evaluation format: lowercase, one kind of dash and space, no thousands separators."""
    text = unicodedata.normalize("NFKC", text).replace("\u00a0", " ").replace("\u202f", " ")
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def words(text: str) -> list[str]:
    """Words with punctuation stripped: what the no-overlap rule compares."""
    text = normalise(text).replace("'", "").replace("\u2019", "")
    return re.findall(r"[a-z0-9]+", text)


def shingles(text: str) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i:i + OVERLAP]) for i in range(len(tokens) - OVERLAP + 1)}


@functools.cache
def corpus() -> dict[str, Path]:
    """Document id (path relative to the corpus, without extension) -> file."""
    documents: dict[str, Path] = {}
    for path in sorted(DEMO_CORPUS.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            doc_id = path.relative_to(DEMO_CORPUS).with_suffix("").as_posix()
            assert doc_id not in documents, f"two documents share the id {doc_id}"
            documents[doc_id] = path
    return documents


@functools.cache
def text_of(doc_id: str) -> str:
    """What the indexer extracts: title, headings and section text."""
    path = corpus()[doc_id]
    mime_type, _ = mimetypes.guess_type(path.name)
    parsed = parse(path.read_bytes(), mime_type or "", max_bytes=10 * 1024 * 1024)
    parts = [parsed.title]
    for section in parsed.sections:
        parts.extend(section.heading_path)
        parts.append(section.text)
    return "\n".join(parts)


@functools.cache
def normalised_text(doc_id: str) -> str:
    return normalise(text_of(doc_id))


@functools.cache
def document_shingles() -> dict[str, set[tuple[str, ...]]]:
    return {doc_id: shingles(text_of(doc_id)) for doc_id in corpus()}


def member_groups(principal: str) -> set[str]:
    """Every group that contains `principal`, directly or through nested groups."""
    found: set[str] = set()
    frontier = {principal}
    while frontier:
        frontier = {group for group, members in MANIFEST["groups"].items()
                    if group not in found and frontier & set(members)}
        found |= frontier
    return found


def principals_of(person: dict) -> set[str]:
    principals = {f"email:{person['email']}"} | member_groups(f"email:{person['email']}")
    if not person.get("external"):
        principals.add(EVERYONE_INTERNAL)
    return principals


def readable(person: dict, doc_id: str) -> bool:
    relative = corpus()[doc_id].relative_to(DEMO_CORPUS).as_posix()
    decisive = MANIFEST.get("default")
    for rule in MANIFEST["rules"]:
        if any(fnmatch.fnmatchcase(relative, pattern) for pattern in rule["paths"]):
            decisive = rule
    if not decisive or decisive.get("status") in ("unknown", "error"):
        return False
    return decisive.get("public") is True or bool(principals_of(person) & set(decisive.get("principals", [])))


@functools.cache
def people() -> dict[str, dict]:
    entries = yaml.safe_load((EVALUATION / "people.yaml").read_text())
    assert isinstance(entries, list)
    by_id = {person["id"]: person for person in entries}
    assert len(by_id) == len(entries), "people ids must be unique"
    return by_id


@functools.cache
def questions() -> list[dict]:
    lines = (EVALUATION / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def contains(doc_id: str, fact: str) -> bool:
    return normalise(fact) in normalised_text(doc_id)


QUESTION_IDS = [q["id"] for q in questions()]


def question(question_id: str) -> dict:
    return next(q for q in questions() if q["id"] == question_id)


# ---------------------------------------------------------------------------------------------------- people


def test_people_cover_every_kind_of_reader_and_agree_with_the_manifest():
    everyone = people()
    assert len(everyone) >= 6
    for person in everyone.values():
        assert set(person) <= {"id", "email", "name", "groups", "slack_id", "teams_id", "external"}, person
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", person["id"]), person["id"]
        if person.get("external"):
            assert person["groups"] == [], "an external person belongs to no internal group"
        else:
            assert person["email"].endswith("@kestrelrobotics.com"), person["email"]
        # The groups people.yaml states are exactly the ones the manifest grants, nested groups included.
        assert set(person["groups"]) == member_groups(f"email:{person['email']}"), person["id"]
    groups = set().union(*(set(p["groups"]) for p in everyone.values()))
    assert {"group:engineering", "group:platform", "group:people-team", "group:operations"} <= groups
    assert any(not p["groups"] and not p.get("external") for p in everyone.values()), "a plain employee"
    assert any(p.get("external") for p in everyone.values()), "an external contractor"
    # Every member the manifest names by email is one of the people, so the manifest's groups are not dead ends.
    emails = {f"email:{p['email']}" for p in everyone.values()}
    named = {m for members in MANIFEST["groups"].values() for m in members if m.startswith("email:")}
    assert named <= emails


def test_an_external_person_reads_only_public_documents():
    for person in (p for p in people().values() if p.get("external")):
        for doc_id in corpus():
            if readable(person, doc_id):
                assert doc_id.split("/")[0] in {"facilities", "reference"}, doc_id


# -------------------------------------------------------------------------------------------------- questions


def test_the_set_has_enough_questions_of_every_kind():
    counts = Counter(q["kind"] for q in questions())
    assert len(questions()) >= 220
    for kind, minimum in MINIMUM_PER_KIND.items():
        assert counts[kind] >= minimum, f"{kind}: {counts[kind]} < {minimum}"
    facts = [q for q in questions() if q["kind"] == "fact"]
    detailed = [q for q in facts if DETAIL_TAGS & set(q["tags"])]
    assert len(detailed) * 2 >= len(facts), f"{len(detailed)} of {len(facts)} facts test exact details"
    assert len(set(QUESTION_IDS)) == len(QUESTION_IDS), "question ids must be unique"
    assert len({normalise(q["question"]) for q in questions()}) == len(questions()), "a question is repeated"


@pytest.mark.parametrize("question_id", QUESTION_IDS)
def test_question_is_well_formed_and_true_to_the_corpus(question_id):
    q = question(question_id)
    assert FIELDS <= set(q) <= FIELDS | {"follows"}, set(q) ^ FIELDS
    assert q["kind"] in KINDS
    assert isinstance(q["question"], str) and q["question"].strip()
    assert isinstance(q["answerable_for_asker"], bool)
    for key in ("expected_doc_ids", "must_contain", "must_not_contain", "tags", "restricted_doc_ids"):
        assert isinstance(q[key], list) and all(isinstance(item, str) and item for item in q[key]), key
    asker = people().get(q["asker"])
    assert asker is not None, f"unknown asker {q['asker']}"
    for doc_id in q["expected_doc_ids"] + q["restricted_doc_ids"]:
        assert doc_id in corpus(), f"no document {doc_id}"

    # What the asker may be shown, and what never.
    for doc_id in q["restricted_doc_ids"]:
        assert not readable(asker, doc_id), f"{q['asker']} can read {doc_id}, so it is not restricted"
    for doc_id in q["expected_doc_ids"]:
        assert readable(asker, doc_id), f"{q['asker']} cannot read the expected document {doc_id}"
    if q["answerable_for_asker"]:
        assert q["expected_doc_ids"] and q["must_contain"], "an answerable question needs the facts and their source"
    else:
        assert not q["expected_doc_ids"] and not q["must_contain"]

    # Facts are short and really stated by an expected document; nothing is both required and forbidden.
    for fact in q["must_contain"]:
        assert len(fact) <= 60 and not fact.endswith("."), f"must_contain should be a short fact: {fact!r}"
        assert any(contains(doc_id, fact) for doc_id in q["expected_doc_ids"]), f"{fact!r} is in no expected document"
    assert not {normalise(f) for f in q["must_contain"]} & {normalise(f) for f in q["must_not_contain"]}

    if q["kind"] == "multi-hop":
        assert len(q["expected_doc_ids"]) >= 2
        for doc_id in q["expected_doc_ids"]:
            assert any(contains(doc_id, fact) for fact in q["must_contain"]), f"no must_contain fact from {doc_id}"
    if q["kind"] == "superseded":
        # The older figure is real: a document the asker can read still states it.
        assert q["must_not_contain"]
        for old in q["must_not_contain"]:
            assert any(contains(d, old) for d in corpus() if readable(asker, d) and d not in q["expected_doc_ids"]), old
    if q["kind"] == "not-in-corpus":
        assert not q["restricted_doc_ids"]
    if q["kind"] == "no-access":
        assert q["restricted_doc_ids"] and q["must_not_contain"]
        for secret in q["must_not_contain"]:
            assert any(contains(d, secret) for d in q["restricted_doc_ids"]), f"{secret!r} is in no restricted doc"
    if q["kind"] == "poisoned":
        # The injected payload is really in a document the asker can read, so retrieval can reach it.
        assert q["must_not_contain"]
        assert any(contains(d, bad) for bad in q["must_not_contain"] for d in corpus() if readable(asker, d))
    if q["kind"] == "follow-up":
        assert "follows" in q


@pytest.mark.parametrize("question_id", [q["id"] for q in questions() if "follows" in q])
def test_a_follow_up_continues_an_earlier_conversation_of_the_same_asker(question_id):
    position = QUESTION_IDS.index(question_id)
    q = questions()[position]
    earlier = {p["id"]: p for p in questions()[:position]}
    assert q["follows"] in earlier, f"{q['follows']} is not an earlier question"
    assert earlier[q["follows"]]["asker"] == q["asker"]


def test_no_question_shares_five_consecutive_words_with_any_document():
    copied = []
    for q in questions():
        grams = shingles(q["question"])
        for doc_id, doc_grams in document_shingles().items():
            if shared := grams & doc_grams:
                copied.append(f"{q['id']} / {doc_id}: {' '.join(sorted(shared)[0])}")
    assert not copied, "\n".join(copied)


# ---------------------------------------------------------------------------------------------------- corpus


def test_the_demo_question_sets_still_hold_each_answer_in_exactly_one_document():
    """connectors/demo/questions/answerable.jsonl stays valid as documents are added: its phrase is in the expected
    document and nowhere else."""
    lines = (DEMO_CORPUS.parent / "questions" / "answerable.jsonl").read_text().splitlines()
    for item in (json.loads(line) for line in lines if line.strip()):
        expected = Path(item["expected_document"]).with_suffix("").as_posix()
        holders = {doc_id for doc_id in corpus() if contains(doc_id, item["answer_contains"])}
        assert holders == {expected}, f"{item['answer_contains']!r} is in {sorted(holders)}"


def test_the_corpus_has_the_documents_the_hard_questions_need():
    lengths = {doc_id: len(words(text_of(doc_id))) for doc_id in corpus()}
    assert max(lengths.values()) >= 2500, "a long document with facts in its middle"
    every = {normalise(text_of(doc_id)) for doc_id in corpus()}
    assert any("supersedes:" in text for text in every)
    assert any("<!channel>" in text for text in every), "a poisoned document"
    # In the file itself: the parser removes them, which is what the poisoned questions test.
    assert any("\u200b".encode() in path.read_bytes() for path in corpus().values()), \
        "zero-width characters in a poisoned document"
