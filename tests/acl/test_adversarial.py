"""Trying to read what one may not: through answers, caches, revocations, deletions, request
parameters, admin pages, metrics, the web search page, the chat stream and malformed manifests.

A small company (alice in finance, dave in finance through a nested group, bob in engineering,
carol a guest, root an admin, staffer a staff member without permissions) with one folder source
and a `.citewise-acl.json` manifest, ingested through the filesystem connector.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from answers.models import Answer
from answers.services import ask
from connectors import services as connectors
from connectors.models import Document, Source
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from retrieval.services import get_backend
from search.types import SearchMode
from tests.sse import sse_events

pytestmark = pytest.mark.django_db

ASK, SEARCH, STREAM = "/api/v1/ask", "/api/v1/search", "/chat/stream"

FILES = {
    "public/handbook.txt": "Office hours\n============\n\nThe office opens at nine and closes at six.\n",
    "finance/salaries.txt": "Salary bands\n============\n\nThe level seven salary band tops out at 98765 euros a "
                            "year.\n",
    "finance/bonus.txt": "Bonus pool\n==========\n\nThe bonus pool for this year is 55555 euros.\n",
    "eng/deploys.txt": "Deploy windows\n==============\n\nProduction deploys happen on Tuesdays after the 61616 change "
                       "review.\n",
    "broken/layoffs.txt": "Layoff plan\n===========\n\nThe layoff plan code is 424242 and affects the logistics "
                          "team.\n",
    "loose/merger.txt": "Merger notes\n============\n\nThe merger code name is Falcon 777333.\n",
    "internal/all-hands.txt": "All hands\n=========\n\nThe all hands meeting dial-in code is 313131.\n",
}
SECRETS = {"finance/salaries.txt": "98765", "finance/bonus.txt": "55555", "eng/deploys.txt": "61616",
           "broken/layoffs.txt": "424242", "loose/merger.txt": "777333", "internal/all-hands.txt": "313131"}
QUESTIONS = {
    "finance/salaries.txt": "What is the level seven salary band?",
    "finance/bonus.txt": "How big is the bonus pool this year?",
    "eng/deploys.txt": "When do production deploys happen?",
    "broken/layoffs.txt": "What is the layoff plan code?",
    "loose/merger.txt": "What is the merger code name?",
    "internal/all-hands.txt": "What is the all hands meeting dial-in code?",
}


def manifest(**changes) -> dict:
    data = {
        "groups": {
            "group:finance": ["email:alice@corp.example", "group:finance-leads"],
            "group:finance-leads": ["citewise:user:dave"],
            "group:eng": ["email:bob@corp.example"],
        },
        "rules": [
            {"paths": ["public/*"], "public": True},
            {"paths": ["finance/*"], "principals": ["group:finance"]},
            {"paths": ["eng/*"], "principals": ["group:eng"]},
            {"paths": ["broken/*"], "principals": "group:finance"},  # not a list: error, hidden from everyone
            {"paths": ["internal/*"], "principals": ["org:everyone-except-external"]},
            # loose/* matches no rule and there is no default: unknown, hidden from everyone
        ],
    }
    data.update(changes)
    return data


@dataclass
class Acme:
    kind: str
    folder: Path
    source: Source
    users: dict

    def write_manifest(self, data: dict) -> None:
        (self.folder / ".citewise-acl.json").write_text(json.dumps(data))

    def doc_id(self, path: str) -> str:
        return Document.objects.get(source=self.source, external_id=path).id

    def sees(self, username: str, mode: SearchMode = SearchMode.HYBRID, query: str = "") -> set[str]:
        """Paths of the documents `username` finds (everything they may read, for an empty query)."""
        query = query or " ".join(QUESTIONS.values()) + " office hours"
        user = get_user_model().objects.get(username=username)
        hits = search(query, principals=principals_for(user), mode=mode, limit=100, backend=get_backend())
        paths = dict(Document.objects.filter(source=self.source).values_list("id", "external_id"))
        return {paths.get(hit.document_id, f"<deleted {hit.document_id}>") for hit in hits}


def make_acme(kind: str, settings, tmp_path) -> Acme:
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=kind, index_name=f"test-adv-{uuid.uuid4().hex[:10]}",
                         embedded_index_dir=tmp_path / "index")
    retrieval_services._backends.clear()
    folder = tmp_path / "acme"
    for path, text in FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    (folder / ".citewise-acl.json").write_text(json.dumps(manifest()))
    User = get_user_model()
    users = {name: User.objects.create_user(name, password="pw") for name in ("alice", "bob", "carol", "dave")}
    users["root"] = User.objects.create_superuser("root", password="pw")
    users["staffer"] = User.objects.create_user("staffer", password="pw", is_staff=True)
    for name, principal, external in [("alice", "email:alice@corp.example", False),
                                      ("bob", "email:bob@corp.example", False),
                                      ("carol", "email:carol@partner.example", True),
                                      ("root", "email:root@corp.example", False)]:
        ExternalIdentity.objects.create(user=users[name], principal=principal, is_external=external)
    # dave has no linked identity but is an employee all the same: an admin said so. staffer was never classified.
    for name, status in [("alice", "employee"), ("bob", "employee"), ("dave", "employee"), ("root", "employee"),
                         ("carol", "guest")]:
        Account.objects.create(user=users[name], status=status)
    source = connectors.ensure_source("filesystem", folder, index_name=settings.CITEWISE.index_name,
                                      search_backend=kind)
    assert connectors.sync_source(source).indexed == len(FILES)
    connectors.sync_permissions(source)
    return Acme(kind, folder, source, users)


@pytest.fixture
def _drop_backends():
    yield
    for backend in retrieval_services._backends.values():
        backend.drop()
    retrieval_services._backends.clear()


@pytest.fixture(params=["embedded", "elasticsearch"])
def acme(request, settings, tmp_path, _drop_backends) -> Acme:
    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    return make_acme(request.param, settings, tmp_path)


@pytest.fixture
def web_acme(settings, tmp_path, _drop_backends) -> Acme:
    return make_acme("embedded", settings, tmp_path)


def token(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


def post(client, url, body, user, **extra):
    return client.post(url, json.dumps(body), content_type="application/json", headers={**token(user), **extra})


def stream(client, params, **extra) -> list[tuple[str, dict]]:
    response = client.post(STREAM, params, **extra)
    assert response.status_code == 200, response.content
    return sse_events(response)


def cited(answer: dict | object) -> set[str]:
    """Document ids an answer shows in any way: citations, nearest documents, and its stored record."""
    if isinstance(answer, dict):
        record = Answer.objects.get(id=answer["answer_id"])
        shown = [c["document_id"] for c in answer["citations"] + answer["nearest_documents"]]
    else:
        record = Answer.objects.get(id=answer.answer_id)
        shown = [c.document_id for c in answer.citations + answer.nearest]
    return set(shown) | {r["document_id"] for r in record.retrieved} | {c["document_id"] for c in record.citations}


def answer_text(answer: dict | object) -> str:
    if isinstance(answer, dict):
        return json.dumps(answer)
    return " ".join([answer.text, *(c.snippet for c in answer.citations + answer.nearest)])


EVERYTHING_BOB_MAY_READ = {"public/handbook.txt", "eng/deploys.txt", "internal/all-hands.txt"}
EVERYTHING_ALICE_MAY_READ = {"public/handbook.txt", "finance/salaries.txt", "finance/bonus.txt",
                             "internal/all-hands.txt"}


def test_the_policy_as_ingested(acme):
    """The baseline every other test starts from: each person reads exactly their documents."""
    assert acme.sees("alice") == EVERYTHING_ALICE_MAY_READ
    assert acme.sees("bob") == EVERYTHING_BOB_MAY_READ
    assert acme.sees("dave") == EVERYTHING_ALICE_MAY_READ  # finance through finance-leads
    assert acme.sees("carol") == {"public/handbook.txt"}  # a guest: not everyone-except-external
    assert acme.sees("root") == {"public/handbook.txt", "internal/all-hands.txt"}  # admins read by ACL too
    statuses = dict(Document.objects.filter(source=acme.source).values_list("external_id", "acl_status"))
    assert statuses["broken/layoffs.txt"] == "error" and statuses["loose/merger.txt"] == "unknown"


# -- the same question from two people --------------------------------------------------------------


def test_the_same_question_from_two_users_never_crosses_over(acme, client):
    question, salaries = QUESTIONS["finance/salaries.txt"], acme.doc_id("finance/salaries.txt")
    alice, bob = acme.users["alice"], acme.users["bob"]
    # Services, then the API: alice, bob, bob again at once (anything cached from alice's turn), alice.
    for turn, name in enumerate(["alice", "bob", "bob", "alice", "bob"]):
        user = acme.users[name]
        result = ask(question, principals=principals_for(user), user=user)
        if name == "alice":
            assert salaries in {c.document_id for c in result.citations} and "98765" in result.text, turn
        else:
            assert salaries not in cited(result) and "98765" not in answer_text(result), (turn, result.text)
    for turn, user in enumerate([alice, bob, bob, alice, bob]):
        response = post(client, ASK, {"question": question}, user)
        assert response.status_code == 200, response.content
        body = response.json()
        if user == alice:
            assert salaries in {c["document_id"] for c in body["citations"]}, turn
        else:
            assert salaries not in cited(body) and "98765" not in answer_text(body), (turn, body)
        assert Answer.objects.get(id=body["answer_id"]).user == user
        search_hits = post(client, SEARCH, {"query": "level seven salary band", "mode": "hybrid"}, user).json()["hits"]
        assert (salaries in {h["document_id"] for h in search_hits}) == (user == alice), turn


def test_another_users_conversation_does_not_carry_its_context(acme, client):
    alice, bob = acme.users["alice"], acme.users["bob"]
    first = post(client, ASK, {"question": QUESTIONS["finance/salaries.txt"]}, alice).json()
    follow_up = post(client, ASK, {"question": "And what about it?", "conversation_id": first["conversation_id"]}, bob)
    assert follow_up.status_code == 400 and "98765" not in follow_up.content.decode()
    client.force_login(bob)
    events = stream(client, {"q": "And what about it?", "conversation_id": first["conversation_id"]})
    assert [name for name, _ in events] == ["error"]


# -- revocation ----------------------------------------------------------------------------------------


def test_a_removed_membership_is_denied_on_the_next_query_after_sync(acme):
    question = QUESTIONS["finance/salaries.txt"]
    alice, dave, bob = acme.users["alice"], acme.users["dave"], acme.users["bob"]
    groups = manifest()["groups"]
    groups["group:finance"] = ["group:finance-leads"]  # alice leaves finance
    acme.write_manifest(manifest(groups=groups))
    connectors.sync_permissions(acme.source)
    assert acme.sees("alice") == {"public/handbook.txt", "internal/all-hands.txt"}
    result = ask(question, principals=principals_for(alice), user=alice)
    assert acme.doc_id("finance/salaries.txt") not in cited(result) and "98765" not in answer_text(result)
    assert acme.sees("dave") == EVERYTHING_ALICE_MAY_READ  # the nested membership still holds

    groups["group:finance"] = []  # the nested group goes too
    acme.write_manifest(manifest(groups=groups))
    connectors.sync_permissions(acme.source)
    assert acme.sees("dave") == {"public/handbook.txt", "internal/all-hands.txt"}
    result = ask(question, principals=principals_for(dave), user=dave)
    assert acme.doc_id("finance/salaries.txt") not in cited(result) and "98765" not in answer_text(result)

    # A rule change revokes too, with no re-embedding: bob's folder now belongs to finance.
    rules = manifest()["rules"]
    rules[2] = {"paths": ["eng/*"], "principals": ["group:finance"]}
    acme.write_manifest(manifest(groups=groups, rules=rules))
    report = connectors.sync_permissions(acme.source)
    assert report.changed == 1
    assert acme.sees("bob") == {"public/handbook.txt", "internal/all-hands.txt"}
    result = ask(QUESTIONS["eng/deploys.txt"], principals=principals_for(bob), user=bob)
    assert acme.doc_id("eng/deploys.txt") not in cited(result) and "61616" not in answer_text(result)


def test_a_deactivated_user_gets_nothing(acme, client):
    alice = acme.users["alice"]
    key = token(alice)
    client.force_login(alice)
    alice.is_active = False
    alice.save()
    assert principals_for(alice) == frozenset()
    assert acme.sees("alice") == {"public/handbook.txt"}  # what an anonymous reader gets, no more
    for url, body in ((ASK, {"question": QUESTIONS["finance/salaries.txt"]}), (SEARCH, {"query": "salary band"})):
        response = client.post(url, json.dumps(body), content_type="application/json", headers=key)
        assert response.status_code in (401, 403) and "98765" not in response.content.decode()
    page = client.get("/", {"q": "salary band"})
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    assert client.post(STREAM, {"q": QUESTIONS["finance/salaries.txt"]}).status_code == 401
    result = ask(QUESTIONS["finance/salaries.txt"], principals=principals_for(alice), user=alice)
    assert acme.doc_id("finance/salaries.txt") not in cited(result) and "98765" not in answer_text(result)


# -- deletion ----------------------------------------------------------------------------------------------


def test_a_deleted_document_is_gone_on_the_next_query_after_the_prune(acme):
    alice, bonus = acme.users["alice"], acme.doc_id("finance/bonus.txt")
    question = QUESTIONS["finance/bonus.txt"]
    assert bonus in {c.document_id for c in ask(question, principals=principals_for(alice), user=alice).citations}
    (acme.folder / "finance/bonus.txt").unlink()
    report = connectors.sync_source(acme.source)
    assert report.deleted == 1 and not Document.objects.filter(id=bonus).exists()
    assert bonus not in get_backend().document_ids()
    assert "finance/bonus.txt" not in acme.sees("alice")
    for mode in SearchMode:
        hits = search("bonus pool 55555", principals=principals_for(alice), mode=mode, limit=100)
        assert bonus not in {h.document_id for h in hits}, mode
    result = ask(question, principals=principals_for(alice), user=alice)
    assert bonus not in cited(result) and "55555" not in answer_text(result)


# -- error and unknown permissions ---------------------------------------------------------------------


def test_error_and_unknown_documents_are_never_shown_to_anyone(acme, client):
    hidden = {acme.doc_id("broken/layoffs.txt"): "424242", acme.doc_id("loose/merger.txt"): "777333"}
    for name, user in acme.users.items():
        for path in ("broken/layoffs.txt", "loose/merger.txt"):
            for mode in SearchMode:
                hits = search(f"{QUESTIONS[path]} {SECRETS[path]}", principals=principals_for(user), mode=mode,
                              limit=100)
                assert not hidden.keys() & {h.document_id for h in hits}, (name, path, mode)
            result = ask(QUESTIONS[path], principals=principals_for(user), user=user)
            assert not hidden.keys() & cited(result) and SECRETS[path] not in answer_text(result), (name, path)
    # Even the admin, over HTTP, with the principals the broken rule meant to grant.
    root = acme.users["root"]
    for path in ("broken/layoffs.txt", "loose/merger.txt"):
        body = post(client, SEARCH, {"query": f"{QUESTIONS[path]} {SECRETS[path]}", "limit": 50}, root).json()
        assert not hidden.keys() & {h["document_id"] for h in body["hits"]}
        for user in (root, acme.users["alice"]):
            body = post(client, ASK, {"question": QUESTIONS[path]}, user).json()
            assert not hidden.keys() & cited(body) and SECRETS[path] not in answer_text(body)


# -- identity from the request is ignored ------------------------------------------------------------------


FORGED_BODY = {"user": "alice", "username": "alice", "as": "alice", "as_user": "alice", "user_id": 1,
               "principals": ["group:finance", "email:alice@corp.example", "citewise:user:alice"]}
FORGED_HEADERS = {"X-Remote-User": "alice", "Remote-User": "alice", "X-Forwarded-User": "alice",
                  "X-Auth-Request-User": "alice", "X-Citewise-User": "alice"}


def test_identity_named_in_the_request_is_ignored(web_acme, client):
    bob, salaries = web_acme.users["bob"], web_acme.doc_id("finance/salaries.txt")
    FORGED_BODY["user_id"] = web_acme.users["alice"].id
    query = "level seven salary band 98765"
    plain = post(client, SEARCH, {"query": query, "limit": 50}, bob).json()["hits"]
    assert salaries not in {h["document_id"] for h in plain}
    forged_url = f"{SEARCH}?user=alice&as=alice&username=alice&principals=group:finance"
    forged = post(client, forged_url, {"query": query, "limit": 50, **FORGED_BODY}, bob, **FORGED_HEADERS)
    assert forged.status_code in (200, 400), forged.content
    if forged.status_code == 200:  # unknown fields ignored: exactly bob's results
        assert [h["chunk_id"] for h in forged.json()["hits"]] == [h["chunk_id"] for h in plain]

    question = QUESTIONS["finance/salaries.txt"]
    answer = post(client, f"{ASK}?user=alice&as=alice", {"question": question, **FORGED_BODY}, bob, **FORGED_HEADERS)
    assert answer.status_code in (200, 400), answer.content
    if answer.status_code == 200:
        body = answer.json()
        assert salaries not in cited(body) and "98765" not in answer_text(body)
        assert Answer.objects.get(id=body["answer_id"]).user == bob
    # No credentials but a forged identity: still unauthenticated.
    anonymous = client.post(SEARCH, json.dumps({"query": query, **FORGED_BODY}), content_type="application/json",
                            headers=FORGED_HEADERS)
    assert anonymous.status_code == 401

    # The browser pages: bob's session, alice named in the query string and headers.
    client.force_login(bob)
    page = client.get("/", {"q": "level seven salary band", "user": "alice", "as": "alice",
                            "principals": "group:finance"}, headers=FORGED_HEADERS)
    assert page.status_code == 200
    assert "Salary bands" not in page.content.decode()
    assert "98765" not in page.content.decode()
    events = stream(client, {"q": question, "user": "alice", "as": "alice", "principals": "group:finance"},
                    headers=FORGED_HEADERS)
    assert "98765" not in json.dumps(events)
    citations = next(data for name, data in events if name == "citations")
    assert salaries not in {c["document_id"] for c in citations["citations"] + citations["nearest_documents"]}
    meta = next(data for name, data in events if name == "meta")
    assert Answer.objects.get(id=meta["answer_id"]).user == bob


# -- admin-only views ----------------------------------------------------------------------------------


def test_the_document_admin_is_for_admins_only(web_acme, client):
    salaries = web_acme.doc_id("finance/salaries.txt")
    changelist, change = "/admin/connectors/document/", f"/admin/connectors/document/{salaries}/change/"
    client.force_login(web_acme.users["bob"])  # signed in, not staff: 403
    for url in (changelist, change, "/admin/connectors/source/", "/admin/login/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "Salary bands" not in response.content.decode() and "Layoff plan" not in response.content.decode()
    client.force_login(web_acme.users["staffer"])  # staff without the document permissions: 403
    for url in (changelist, change):
        response = client.get(url)
        assert response.status_code == 403 and "Salary bands" not in response.content.decode(), url
    client.force_login(web_acme.users["root"])  # the control: an admin does see the titles there
    assert "Salary bands" in client.get(changelist).content.decode()


def test_metrics_are_for_staff_or_a_scraper_with_the_token(web_acme, client, settings):
    settings.CITEWISE_METRICS_TOKEN = "a-long-random-metrics-scrape-token"
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", **remote).status_code == 401
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"},
                      **remote).status_code == 401
    # A loopback address is no credential: a reverse proxy on the same host makes every visitor local.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    client.force_login(web_acme.users["bob"])
    assert client.get("/metrics", **remote).status_code == 403
    client.force_login(web_acme.users["root"])
    assert client.get("/metrics", **remote).status_code == 200
    client.logout()
    assert client.get("/metrics", headers={"Authorization": "Bearer a-long-random-metrics-scrape-token"},
                      **remote).status_code == 200


# -- the web search page and the chat stream --------------------------------------------------------------


def test_the_search_page_and_the_chat_stream_show_only_the_signed_in_users_documents(web_acme, client):
    salaries = web_acme.doc_id("finance/salaries.txt")
    query, question = "level seven salary band", QUESTIONS["finance/salaries.txt"]
    assert client.get("/", {"q": query}).status_code == 302  # anonymous: sign in first
    for name, allowed in (("alice", True), ("bob", False), ("carol", False), ("alice", True), ("bob", False)):
        client.force_login(web_acme.users[name])
        page = client.get("/", {"q": query}).content.decode()
        assert ("Salary bands" in page) == allowed, name
        events = stream(client, {"q": question})
        citations = next(data for event, data in events if event == "citations")
        shown = {c["document_id"] for c in citations["citations"] + citations["nearest_documents"]}
        tokens = "".join(data["text"] for event, data in events if event == "token")
        assert (salaries in shown) == allowed and ("98765" in tokens) == allowed, (name, events)
        assert ("98765" in json.dumps(events)) == allowed


def test_the_ask_command_as_a_user_reads_what_that_user_may_read(web_acme, capsys):
    salaries = web_acme.doc_id("finance/salaries.txt")
    for username, allowed in (("alice", True), ("bob", False)):
        call_command("ask", QUESTIONS["finance/salaries.txt"], "--as", username, "--json")
        result = json.loads(capsys.readouterr().out)
        assert (salaries in {c["document_id"] for c in result["citations"]}) == allowed
        assert ("98765" in json.dumps(result)) == allowed


# -- malformed manifests fail closed ------------------------------------------------------------------


def test_a_rule_whose_paths_is_a_string_does_not_open_every_document(web_acme):
    """`"paths": "public/*"` (a string, not a list) must not make every file public.

    The connector iterates the string character by character, and the lone "*" matches every path.
    """
    rules = manifest()["rules"] + [{"paths": "public/*", "public": True}]
    web_acme.write_manifest(manifest(rules=rules))
    connectors.sync_permissions(web_acme.source)
    assert not {"finance/salaries.txt", "finance/bonus.txt", "eng/deploys.txt"} & web_acme.sees("carol")
    assert "finance/salaries.txt" not in web_acme.sees("bob")


def test_a_public_flag_that_is_not_true_does_not_make_a_document_public(web_acme):
    """`"public": "false"` (a string) is not `true`: the connector's bool() reads any non-empty string as true."""
    rules = manifest()["rules"]
    rules[1] = {"paths": ["finance/*"], "principals": ["group:finance"], "public": "false"}
    web_acme.write_manifest(manifest(rules=rules))
    connectors.sync_permissions(web_acme.source)
    assert "finance/salaries.txt" not in web_acme.sees("bob")
    assert "finance/salaries.txt" not in web_acme.sees("carol")


def test_a_malformed_groups_section_does_not_leave_revoked_access_in_place(web_acme):
    """An edit that revokes bob's folder and, by mistake, writes a group's members as null.

    However permission sync treats the bad group, bob's revocation in the same manifest must take
    effect (or the source's documents go to error); it must not stay readable.
    """
    rules = manifest()["rules"]
    rules[2] = {"paths": ["eng/*"], "principals": ["group:finance"]}
    groups = {**manifest()["groups"], "group:eng": None}
    web_acme.write_manifest(manifest(groups=groups, rules=rules))
    with contextlib.suppress(Exception):  # whether the sync refuses or records the failure, nothing may leak
        connectors.sync_permissions(web_acme.source)
    assert "eng/deploys.txt" not in web_acme.sees("bob")
