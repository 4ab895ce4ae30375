"""Who sees what, for every (user, document) pair of a generated organisation, on both backends.

60 people (guests, a contractor, people with no linked identity, Slack identities), 28 groups nested
up to six deep (with a cycle, an empty group and a member that names a group nobody defines), and
five folder sources written as real files plus `.citewise-acl.json` manifests: public, private to
people, groups, a domain, everyone-except-external, unknown (no matching rule, no manifest) and
error (a rule whose principals is not a list, a manifest that is not JSON). Everything is ingested
through the filesystem connector with sync_source + sync_permissions.

The expected visibility comes from the test's own policy model (tests/acl/org.py), never from the
product's principal expansion. Every user then searches the token every document shares (BM25 and
hybrid, deep enough to return everything) and must get exactly the documents the model allows:
no leak, no wrong denial. Answers must cite and retrieve only readable documents, and a readable
document's own question must cite it. Then the organisation churns (memberships, nesting, rules,
deletions, moves, an errorful rule, a repaired manifest, identities) and every pair is checked again.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model

from answers.models import Answer
from answers.services import ask
from connectors import services as connectors
from connectors.models import Document
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval.models import EmbeddingCacheEntry
from retrieval.selectors import search
from retrieval.services import fusion_config, get_backend
from search.types import SearchMode
from tests.acl.org import (
    CORP,
    GHOST_GROUP,
    PARTNER,
    SHARED_TOKEN,
    Acl,
    Organisation,
    build_organisation,
)

pytestmark = pytest.mark.django_db

DEEP = 1000  # deeper than the corpus: every readable chunk comes back
# The embedding cache lives in the database, which each test rolls back: carry its rows over, so the
# second backend's ingest is all cache hits, as it would be in one database.
_EMBEDDING_CACHE: dict[tuple[str, str], tuple[int, bytes]] = {}


@pytest.fixture
def backend_kind(configured_backend: str) -> str:
    """Each backend in turn, configured with a fresh index (tests/conftest.py)."""
    return configured_backend


# -- setting the organisation up in Citewise ------------------------------------------------------


def sync_identities(org: Organisation) -> dict:
    """Users, their account status and their linked identities in the database, exactly as the model says."""
    users = {}
    for name, person in org.people.items():
        user, _ = get_user_model().objects.get_or_create(username=name)
        users[name] = user
        Account.objects.update_or_create(user=user, defaults={"status": person.status})
        wanted = dict(person.identities)
        ExternalIdentity.objects.filter(user=user).exclude(principal__in=list(wanted)).delete()
        for principal, external in wanted.items():
            ExternalIdentity.objects.update_or_create(user=user, principal=principal,
                                                      defaults={"is_external": external})
    return users


def ingest(org: Organisation, root, sources: dict, kind: str) -> dict:
    for spec in org.sources.values():
        spec.write(root)
    EmbeddingCacheEntry.objects.bulk_create(
        [EmbeddingCacheEntry(model_name=model, content_hash=digest, dimensions=dimensions, vector=vector)
         for (model, digest), (dimensions, vector) in _EMBEDDING_CACHE.items()], ignore_conflicts=True)
    index = get_backend().index_name
    for name in org.sources:
        if name not in sources:
            sources[name] = connectors.ensure_source("filesystem", root / name, name=f"{name}-{kind}-{index}",
                                                     index_name=index, search_backend=kind)
    for source in sources.values():
        report = connectors.sync_source(source)
        assert report.failed == 0, report.errors
    for source in sources.values():
        connectors.sync_permissions(source)
    for model, digest, dimensions, vector in EmbeddingCacheEntry.objects.values_list(
            "model_name", "content_hash", "dimensions", "vector"):
        _EMBEDDING_CACHE[(model, digest)] = (dimensions, bytes(vector))
    return sources


def document_ids(org: Organisation, sources: dict) -> dict[tuple[str, str], str]:
    ids = {}
    for name, source in sources.items():
        for external_id, document_id in Document.objects.filter(source=source).values_list("external_id", "id"):
            ids[(name, external_id)] = document_id
    assert set(ids) == set(org.documents()), "the database holds other documents than the sources"
    return ids


# -- the checks ------------------------------------------------------------------------------------


def expected_visibility(org: Organisation, ids: dict) -> dict[str, set[str]]:
    documents = org.documents()
    visible = {}
    for name in org.people:
        principals = org.reads_as(name)
        visible[name] = {ids[key] for key, (_, acl) in documents.items() if org.may_read(acl, principals)}
    return visible


def check_stored_acls(org: Organisation, ids: dict) -> None:
    """The database's ACL fields say what each manifest says (status, public, principals)."""
    wrong = []
    stored = {d.id: d for d in Document.objects.filter(id__in=list(ids.values()))}
    for key, (_, acl) in org.documents().items():
        document = stored[ids[key]]
        if document.acl_status != acl.status or (acl.status == "ok" and (
                document.acl_public != acl.public or set(document.acl_principals) != set(acl.principals))):
            wrong.append(f"{key}: stored {document.acl_status}/{document.acl_public}/{document.acl_principals}, "
                         f"meant {acl}")
    assert not wrong, "\n".join(wrong[:20])


def check_matrix(org: Organisation, users: dict, ids: dict, expected: dict[str, set[str]], phase: str) -> int:
    backend = get_backend()
    fusion = fusion_config(candidates_per_leg=DEEP, knn_num_candidates=DEEP)
    names = {document_id: key for key, document_id in ids.items()}
    documents = org.documents()
    problems = []
    for name, user in users.items():
        principals = principals_for(user)
        for mode in (SearchMode.BM25, SearchMode.HYBRID):
            hits = search(SHARED_TOKEN, principals=principals, mode=mode, limit=DEEP, backend=backend, fusion=fusion)
            got = {hit.document_id for hit in hits}
            for document_id in sorted(got - expected[name]):
                key = names.get(document_id, ("<not in any source>", document_id))
                acl = documents[key][1] if key in documents else None
                problems.append(f"{phase} {mode.value}: LEAK {name} sees {key} (acl {acl})")
            for document_id in sorted(expected[name] - got):
                key = names[document_id]
                problems.append(f"{phase} {mode.value}: WRONG DENIAL {name} misses {key} (acl {documents[key][1]}, "
                                f"reads as {sorted(org.reads_as(name))})")
    assert not problems, f"{len(problems)} problems, first 25:\n" + "\n".join(problems[:25])
    return len(users) * len(ids)


def pick_samples(org: Organisation, ids: dict, readable: set[str], rng, before: set[str] | None = None):
    """A readable document and one forbidden document of each kind (private, unknown, error).

    Private readable documents are preferred to public ones; after churn, documents whose access
    just changed for this user (newly granted, newly revoked) are preferred.
    """
    documents = sorted(org.documents().items())
    before = readable if before is None else before
    granted = [(key, doc) for key, (doc, acl) in documents if ids[key] in readable and ids[key] not in before]
    private = [(key, doc) for key, (doc, acl) in documents if ids[key] in readable and not acl.public]
    public = [(key, doc) for key, (doc, acl) in documents if ids[key] in readable and acl.public]
    pool = granted or private or public
    permitted = [rng.choice(pool)] if pool else []
    forbidden: dict[str, list] = {"revoked": [], "private": [], "unknown": [], "error": []}
    for key, (doc, acl) in documents:
        if ids[key] in readable:
            continue
        forbidden["private" if acl.status == "ok" else acl.status].append((key, doc))
        if ids[key] in before:
            forbidden["revoked"].append((key, doc))
    denied = [(kind, rng.choice(forbidden[kind])) for kind in ("revoked", "private", "unknown", "error")
              if forbidden[kind]]
    return permitted, denied


def check_answer(result, record, readable: set[str], denied_docs, label: str, problems: list) -> None:
    for where, document_ids in (("citation", [c.document_id for c in result.citations]),
                                 ("nearest", [c.document_id for c in result.nearest]),
                                 ("stored citation", [c["document_id"] for c in record.citations]),
                                 ("retrieved", [r["document_id"] for r in record.retrieved])):
        for document_id in document_ids:
            if document_id not in readable:
                problems.append(f"{label}: LEAK via {where}: {document_id}")
    shown = " ".join([result.text, *(c.snippet for c in result.citations), *(c.snippet for c in result.nearest)])
    for key, doc in denied_docs:
        if doc.code in shown:
            problems.append(f"{label}: LEAK of {key}'s secret code in the answer")


def check_asks(org: Organisation, users: dict, ids: dict, expected: dict[str, set[str]], phase: str,
               every: int = 1, before: dict[str, set[str]] | None = None) -> tuple[int, Counter]:
    """Each (sampled) user asks about a readable document, then about forbidden ones of every kind at once."""
    rng = random.Random(f"asks-{phase}")
    problems: list[str] = []
    kinds: Counter = Counter()
    asked = 0
    for index, (name, user) in enumerate(sorted(users.items())):
        if index % every:
            continue
        readable = expected[name]
        permitted, denied = pick_samples(org, ids, readable, rng, before[name] if before else None)
        principals = principals_for(user)
        for key, doc in permitted:
            result = ask(doc.question, principals=principals, user=user)
            record = Answer.objects.get(id=result.answer_id)
            check_answer(result, record, readable, [], f"{phase} {name} asks about readable {key}", problems)
            if ids[key] not in {c.document_id for c in result.citations} or doc.code not in result.text:
                problems.append(f"{phase} {name}: WRONG DENIAL, the question about readable {key} did not cite it "
                                f"(refused={result.refused}, text={result.text!r})")
            asked += 1
        if denied:
            kinds.update(kind for kind, _ in denied)
            about = [pair for _, pair in denied]
            # Every forbidden kind in one question: each unique token would put its document first if it leaked.
            result = ask(" And ".join(doc.question for _, doc in about), principals=principals, user=user)
            record = Answer.objects.get(id=result.answer_id)
            check_answer(result, record, readable, about, f"{phase} {name} asks about forbidden "
                         f"{[key for key, _ in about]}", problems)
            asked += 1
    assert not problems, f"{len(problems)} problems, first 25:\n" + "\n".join(problems[:25])
    return asked, kinds


def check_the_policy_is_worth_checking(org: Organisation, ids: dict, expected: dict[str, set[str]]) -> None:
    """Deep nesting and the cycle grant access, everyone sees something different, every kind is present."""
    kinds = Counter(acl.kind for _, acl in org.documents().values())
    assert all(kinds[k] for k in ("public", "users", "groups", "mixed", "domain", "everyone-internal", "nobody",
                                  "dangling", "public+groups", "unknown", "error")), kinds
    documents = org.documents()
    shallow = {}
    for name in org.people:
        principals = org.reads_as(name, max_depth=2)
        shallow[name] = {ids[key] for key, (_, acl) in documents.items() if org.may_read(acl, principals)}
    deep_only = sum(len(expected[name] - shallow[name]) for name in org.people)
    assert deep_only >= 20, f"only {deep_only} pairs need three or more levels of nesting"
    assert any({"group:ring-a", "group:ring-b", "group:ring-c"} <= org.reads_as(name) for name in org.people)
    assert len({frozenset(visible) for visible in expected.values()}) >= 40
    assert {name: len(visible) for name, visible in expected.items() if not visible} == {}


# -- churn -------------------------------------------------------------------------------------------


def churn(org: Organisation) -> None:
    rng = org.rng
    wiki, drive, tickets, legacy, scratch = (org.sources[n] for n in ("wiki", "drive", "tickets", "legacy", "scratch"))
    groups = wiki.groups
    internal = sorted(n for n, p in org.people.items() if p.identities and not any(e for _, e in p.identities))
    # Memberships: direct and nested ones removed, added, a whole group gone, the unknown group defined.
    groups["group:team-01"] = groups["group:team-01"][1:]
    groups["group:dept-1"].remove("group:team-04")
    groups["group:dept-0"].append("group:team-09")
    groups["group:ring-c"].append(org.people[internal[20]].principal_forms()[1])
    groups["group:all-staff"].remove("group:div-b")
    del groups["group:team-11"]
    drive.groups["group:proj-x"].remove("group:team-02")
    drive.groups["group:proj-z"].append("group:team-11")  # now a dangling group principal
    drive.groups[GHOST_GROUP] = [org.people[internal[30]].principal_forms()[0]]
    # Document rules: overrides changed and added, folder rules changed, one folder rule made errorful.
    for source in (wiki, drive, tickets):
        for path in rng.sample(sorted(source.overrides), 5):
            source.overrides[path] = org.random_acl()
        for path in rng.sample(sorted(set(source.files) - set(source.overrides)), 4):
            source.overrides[path] = org.random_acl()
        position = rng.randrange(len(source.folders))
        source.folders[position] = (source.folders[position][0], org.random_acl(allow_error=False))
    position = next(i for i, (folder, acl) in enumerate(tickets.folders)
                    if acl.status == "ok" and any(p.startswith(folder + "/") and p not in tickets.overrides
                                                  for p in tickets.files))
    tickets.folders[position] = (tickets.folders[position][0], Acl("error", bad="group:team-03", kind="error"))
    # Files: deleted, moved to another folder (a new document), rewritten (new content and token).
    for source in (wiki, drive, tickets, scratch):
        for path in rng.sample(sorted(source.files), 3):
            del source.files[path]
    for source in (wiki, drive):
        for path in rng.sample(sorted(source.files), 2):
            doc = source.files.pop(path)
            folder = rng.choice([f for f, _ in source.folders])
            source.files[f"{folder}/{path.rsplit('/', 1)[1]}"] = doc
        for path in rng.sample(sorted(source.files), 2):
            source.files[path] = org.new_doc()
    # The broken manifest is repaired; the source without one gets one.
    legacy.manifest = "ok"
    legacy.folders = [("a", org.random_acl(allow_error=False)), ("b", Acl("ok", public=True, kind="public"))]
    scratch.manifest = "ok"
    scratch.default = Acl("ok", principals=frozenset(["group:all-staff"]), kind="groups")
    # Identities: an employee becomes a guest elsewhere, a Slack link goes, a newcomer links an address.
    people = org.people
    people[internal[5]].identities.append((f"email:{internal[5]}@{PARTNER}", True))
    slack_user = next(n for n in internal if any(p.startswith("slack:") for p, _ in people[n].identities))
    people[slack_user].identities = [(p, e) for p, e in people[slack_user].identities if not p.startswith("slack:")]
    people["user53"].identities.append((f"email:user53@{CORP}", False))
    people["user51"].status = "employee"  # an admin classifies someone: domain and everyone-internal, now


# -- the test ----------------------------------------------------------------------------------------


def test_every_user_sees_exactly_the_documents_the_policy_allows(backend_kind, tmp_path, capsys):
    started = time.perf_counter()
    org = build_organisation()
    assert len(org.people) >= 50 and len(org.groups()) >= 20
    users = sync_identities(org)
    root = tmp_path / "org"
    sources = ingest(org, root, {}, backend_kind)
    ids = document_ids(org, sources)
    statuses = Counter(acl.status for _, acl in org.documents().values())
    assert len(ids) >= 500 and statuses["unknown"] >= 10 and statuses["error"] >= 10, statuses
    check_stored_acls(org, ids)
    expected = expected_visibility(org, ids)
    check_the_policy_is_worth_checking(org, ids, expected)
    ingest_seconds = time.perf_counter() - started

    pairs = check_matrix(org, users, ids, expected, "initial")
    asked, kinds = check_asks(org, users, ids, expected, "initial")
    assert kinds["private"] and kinds["unknown"] and kinds["error"]

    churn(org)
    users = sync_identities(org)
    ingest(org, root, sources, backend_kind)
    ids = document_ids(org, sources)
    check_stored_acls(org, ids)
    new_expected = expected_visibility(org, ids)
    changed = sum(len(new_expected[n] ^ expected.get(n, set())) for n in org.people)
    assert changed >= 100, f"the churn changed only {changed} (user, document) pairs"
    pairs += check_matrix(org, users, ids, new_expected, "after churn")
    more, churn_kinds = check_asks(org, users, ids, new_expected, "after churn", every=2, before=expected)
    assert churn_kinds["revoked"], churn_kinds
    asked += more
    with capsys.disabled():
        print(f"\n[{backend_kind}] visibility matrix: {pairs} (user, document) pairs checked in BM25 and hybrid, "
              f"0 leaks, 0 wrong denials; {asked} questions asked, no citation or retrieved chunk outside the "
              f"asker's documents; {changed} pairs changed by churn; ingest {ingest_seconds:.1f}s, "
              f"total {time.perf_counter() - started:.1f}s")
