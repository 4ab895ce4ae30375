"""Google Drive through the real sync and retrieval path, against a local stand-in of Google Workspace
(tests/standins/google_drive.py); then the connector alone: change tokens, checkpoints, tokens, throttling, faults.

Who may read each file comes from the test's own reading of the scenario (`readers`, plain set logic over the
scenario dict), never from the connector: a My Drive file's owner, a shared drive's members (users, and groups'
members through any nesting), the grants of the file and of every folder above it; a domain grant that can be
found by search is every employee at that domain; a domain link or an anyone link is nobody (the admin switch
being off) unless named otherwise; a deleted account's grant nothing; a file whose permissions are forbidden
nobody. Every user then searches the word every file shares, on both backends, and must get exactly those files:
no leak, no wrong denial; and again after the organisation churns.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model

from answers.services import ask
from connectors import services as connectors
from connectors.base import (
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    ItemError,
    SourceItem,
    SourceUnavailable,
)
from connectors.models import Document, Source, SyncRun
from connectors.sources import connector_for
from connectors.sources.google_drive import GoogleDriveConnector
from core.errors import InvalidInput
from identity.models import Account, ExternalIdentity
from identity.principals import EVERYONE_EXCEPT_EXTERNAL
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from search.types import SearchMode
from tests.connectors.conftest import kill_sync_midway
from tests.standins.base import Reply, malformed
from tests.standins.google_drive import (
    DIRECTORY,
    DOCUMENT,
    DRIVE,
    DRIVE_SCOPE,
    FOLDER,
    GROUP_SCOPE,
    PRESENTATION,
    SPREADSHEET,
    USER_SCOPE,
    GoogleDriveStandIn,
    service_account_key,
)
from tests.workers import shared_database, worker_environment  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("encryption_key")]

TOKEN = "zephyr"
DOMAIN = "corp.example"
ADMIN = "admin@corp.example"
SERVICE_ACCOUNT = "citewise@citewise-test.iam.gserviceaccount.com"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                         serialization.NoEncryption()).decode()
KEY_JSON = service_account_key(PEM, SERVICE_ACCOUNT)
# Citewise user -> Google address; erin is a partner's employee, linus only ever got links.
USERS = {"alice": "alice@corp.example", "bob": "bob@corp.example", "carol": "carol@corp.example",
         "dave": "dave@corp.example", "erin": "erin@partner.example", "linus": "linus@elsewhere.example"}
GUESTS = {"erin", "linus"}


def body(word: str) -> str:
    return f"The {TOKEN} {word} procedure: ask the {word} desk before the {word} review.\n"


def item(name: str, word: str, *, owner: str | None = None, drive: str | None = None, parent: str | None = None,
         grants: list | None = None, mime: str = DOCUMENT) -> dict:
    text = body(word)
    if mime == SPREADSHEET:
        text = f"step,desk\n{TOKEN} {word} procedure,{word} desk\n"
    elif mime == "text/markdown":
        text = f"# {name}\n\n{text}"
    return {"name": name, "mime": mime, "body": text, "owner": owner, "drive": drive, "parent": parent,
            "grants": grants or []}


def folder(name: str, *, owner: str | None = None, drive: str | None = None, parent: str | None = None,
           grants: list | None = None) -> dict:
    return {"name": name, "mime": FOLDER, "owner": owner, "drive": drive, "parent": parent, "grants": grants or []}


def user(email: str, role: str = "reader", **extra: Any) -> dict:
    return {"type": "user", "email": email, "role": role, **extra}


def group(email: str, role: str = "reader") -> dict:
    return {"type": "group", "email": email, "role": role}


ALICE, BOB, CAROL, DAVE = (USERS[n] for n in ("alice", "bob", "carol", "dave"))


def scenario() -> dict:
    return {
        "domain": DOMAIN, "customer": "C01corp", "service_account": SERVICE_ACCOUNT,
        "authorized_scopes": {DRIVE_SCOPE, GROUP_SCOPE, USER_SCOPE},
        "admins": {ADMIN},
        "users": {ALICE: {}, BOB: {}, CAROL: {}, DAVE: {}, "sam@corp.example": {"suspended": True}},
        "groups": {
            "eng@corp.example": {"name": "Engineering", "members": [ALICE, "platform@corp.example"]},
            "platform@corp.example": {"name": "Platform", "members": [BOB]},  # nested in Engineering
            "hr@corp.example": {"name": "HR", "members": [CAROL, "sam@corp.example"]},
            "partners@corp.example": {"name": "Partners", "members": [USERS["erin"]]},
            "all@corp.example": {"name": "Everyone", "members": ["customer"]},
        },
        "drives": {
            "0Aeng": {"name": "Engineering", "members": [group("eng@corp.example", "writer"),
                                                         user(ADMIN, "organizer")]},
            "0Ahr": {"name": "People", "members": [group("hr@corp.example", "organizer"), user(ADMIN),
                                                   user(DAVE, "commenter")]},
        },
        "files": {
            "f-notes": item("Notes", "kestrel", owner=ALICE),
            "d-project": folder("Project", owner=ALICE, grants=[group("platform@corp.example")]),
            "f-plan": item("Plan", "lantern", owner=ALICE, parent="d-project"),
            "f-budget": item("Budget", "marmot", owner=ALICE, parent="d-project", mime=SPREADSHEET,
                             grants=[user(USERS["erin"])]),
            "f-link": item("Link only.txt", "nebula", owner=ALICE, mime="text/plain",
                           grants=[{"type": "anyone", "role": "reader"}]),
            "f-public": item("Deck", "oriole", owner=ALICE, mime=PRESENTATION,
                             grants=[{"type": "anyone", "role": "reader", "discoverable": True}]),
            "f-old": {**item("Old", "quartz", owner=ALICE), "trashed": True},
            "f-photo": {**item("Photo.png", "rosehip", owner=ALICE, mime="image/png")},
            "f-policy": item("Policy", "saffron", owner=CAROL,
                             grants=[{"type": "domain", "domain": DOMAIN, "role": "reader", "discoverable": True}]),
            "f-memo": item("Memo", "tundra", owner=CAROL,
                           grants=[{"type": "domain", "domain": DOMAIN, "role": "commenter"}]),
            "f-all": item("All hands.html", "umber", owner=CAROL, mime="text/html",
                          grants=[group("all@corp.example")]),
            "f-gone-account": item("Former", "vervain", owner=CAROL, grants=[user(BOB, deleted=True)]),
            "f-partner": item("Partner brief", "willow", owner=BOB, grants=[group("partners@corp.example")]),
            "d-specs": folder("Specs", drive="0Aeng"),
            "f-design": item("Design", "xenon", drive="0Aeng", parent="d-specs"),
            "f-runbook": item("Runbook.md", "yarrow", drive="0Aeng", mime="text/markdown",
                              grants=[user(DAVE, "commenter")]),
            "f-secret": item("Secret", "zinnia", drive="0Aeng"),
            "f-salaries": item("Salaries", "amber", drive="0Ahr", mime=SPREADSHEET),
        },
        "forbidden": {"f-secret"},
    }


# -- the oracle: straight from the scenario, no connector code ---------------------------------------------------


def employees() -> set[str]:
    return {email for name, email in USERS.items() if name not in GUESTS}


def members(site: dict, principal: str) -> set[str]:
    """Addresses a user or group address stands for, through any nesting ("customer": every employee)."""
    if principal == "customer":
        return employees()
    if principal not in site["groups"]:
        return {principal}
    return set().union(*(members(site, m) for m in site["groups"][principal]["members"]))


def ancestry(site: dict, file_id: str) -> list[str]:
    chain = [file_id]
    while site["files"][chain[-1]].get("parent"):
        chain.append(site["files"][chain[-1]]["parent"])
    return chain


def grantees(site: dict, grant: dict, *, org_links: bool) -> set[str]:
    if grant.get("deleted"):
        return set()
    if grant["type"] in ("user", "group"):
        return members(site, grant["email"])
    if grant["type"] == "domain" and (grant.get("discoverable") or org_links):
        return {e for e in employees() if e.endswith("@" + grant["domain"])}
    if grant["type"] == "anyone" and org_links:
        return employees()
    return set()


def readers(site: dict, file_id: str, *, org_links: bool = False) -> set[str]:
    if file_id in site["forbidden"]:
        return set()
    found = site["files"][file_id]
    who: set[str] = set()
    if found.get("drive"):
        for member in site["drives"][found["drive"]]["members"]:
            who |= grantees(site, member, org_links=org_links)
    else:
        who.add(found["owner"])
    for place in ancestry(site, file_id):
        for grant in site["files"][place]["grants"]:
            who |= grantees(site, grant, org_links=org_links)
    return who


def indexed(site: dict) -> set[str]:
    readable = {DOCUMENT, SPREADSHEET, PRESENTATION, "text/plain", "text/markdown", "text/html"}
    return {f for f, found in site["files"].items() if found["mime"] in readable
            and not any(site["files"][p].get("trashed") for p in ancestry(site, f))}


def expected_matrix(site: dict) -> dict[str, set[str]]:
    return {name: {f for f in indexed(site) if email in readers(site, f)} for name, email in USERS.items()}


# -- the product -------------------------------------------------------------------------------------------------


@pytest.fixture
def workspace():
    with GoogleDriveStandIn(scenario(), public_key=_KEY.public_key(), page_size=2) as server:
        yield server


def config(server: GoogleDriveStandIn, **extra: Any) -> dict:
    return {"domain": DOMAIN, "admin_email": ADMIN, "drive_url": f"{server.url}{DRIVE}",
            "directory_url": f"{server.url}{DIRECTORY}", "token_url": f"{server.url}/token", **extra}


def connector(server: GoogleDriveStandIn, *, key: str = KEY_JSON, **options: Any) -> GoogleDriveConnector:
    return GoogleDriveConnector(domain=DOMAIN, admin_email=ADMIN, service_account_key=key,
                                drive_url=f"{server.url}{DRIVE}", directory_url=f"{server.url}{DIRECTORY}",
                                token_url=f"{server.url}/token", page_size=2, **options)


def file_id(external_id: str) -> str:
    return external_id.rsplit(":", 1)[1]


def make_users() -> dict:
    users = {}
    for name, email in USERS.items():
        person = get_user_model().objects.create_user(name, password="pw")
        guest = name in GUESTS
        Account.objects.create(user=person, status=Account.Status.GUEST if guest else Account.Status.EMPLOYEE)
        ExternalIdentity.objects.create(user=person, principal=f"email:{email}", is_external=guest)
        users[name] = person
    return users


def make_source(server: GoogleDriveStandIn, name: str = "drive", **extra: Any) -> Source:
    return connectors.ensure_source("google_drive", f"https://drive.google.com/{DOMAIN}", name=name,
                                    config=config(server), secrets={"service_account_key": KEY_JSON}, **extra)


def sync(source: Source, kind: str = "full") -> tuple[SyncRun, SyncRun]:
    """A content run of `kind`, then a permission run (groups first): what the scheduler does."""
    run = connectors.run_sync(source, kind)
    assert (run.kind, run.state, run.failed) == (kind, "succeeded", 0), run.errors
    permissions = connectors.run_sync(source, "permissions")
    assert permissions.state == "succeeded" and permissions.details["groups"] == len(scenario()["groups"])
    return run, permissions


def visible(users: dict, source: Source, mode: SearchMode) -> dict[str, set[str]]:
    external = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
    seen = {}
    for name, person in users.items():
        hits = search(TOKEN, principals=principals_for(person), mode=mode, limit=1000)
        seen[name] = {file_id(external[h.document_id]) for h in hits}
    return seen


def check_matrix(users: dict, source: Source, site: dict) -> None:
    expected = expected_matrix(site)
    assert {file_id(e) for e in Document.objects.filter(source=source).values_list("external_id", flat=True)
            } == indexed(site)
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        seen = visible(users, source, mode)
        leaks = {u: seen[u] - expected[u] for u in users if seen[u] - expected[u]}
        denials = {u: expected[u] - seen[u] for u in users if expected[u] - seen[u]}
        assert not leaks and not denials, (mode, leaks, denials)
    urls = dict(Document.objects.filter(source=source).values_list("external_id", "url"))
    for name, person in users.items():
        readable = {url for external_id, url in urls.items() if file_id(external_id) in expected[name]}
        result = ask("What is the lantern procedure and the amber procedure?", principals=principals_for(person),
                     user=person)
        assert {c.url.split("#", 1)[0] for c in result.citations} <= readable, (name, result.citations)


def churn(site: dict) -> None:
    files, groups, drives = site["files"], site["groups"], site["drives"]
    files["f-notes"]["grants"].append(user(CAROL))  # shared with one more person
    groups["platform@corp.example"]["members"] = [DAVE]  # bob leaves a nested group, dave joins it
    files["f-link"]["parent"] = "d-project"  # moved into a shared folder
    files["f-runbook"]["drive"] = "0Ahr"  # moved to another shared drive
    files["f-budget"]["trashed"] = True
    del files["f-memo"], files["f-design"]
    files["f-policy"]["grants"] = [{"type": "domain", "domain": DOMAIN, "role": "reader"}]  # link only now
    files["f-public"]["grants"].append({"type": "domain", "domain": DOMAIN, "role": "reader", "discoverable": True})
    drives["0Ahr"]["members"] = [m for m in drives["0Ahr"]["members"] if m.get("email") != DAVE]
    files["f-all"]["body"] = files["f-all"]["body"].replace("review", "all-hands review")
    files["f-new"] = item("New", "bramble", owner=BOB, grants=[group("hr@corp.example")])
    site["forbidden"] = set()


def test_every_user_sees_exactly_the_files_google_drive_lets_them_read_before_and_after_churn(backend_kind,
                                                                                              workspace):
    users = make_users()
    source = make_source(workspace, name=f"drive-{backend_kind}",
                         index_name=retrieval_services.get_backend().index_name, search_backend=backend_kind)
    sync(source)
    expected = expected_matrix(workspace.scenario)
    # The scenario exercises what it means to: folder inheritance, nesting, shared drive members, links, domains.
    assert expected["alice"] >= {"f-notes", "f-plan", "f-budget", "f-link", "f-public", "f-design"}
    assert {u for u in USERS if "f-plan" in expected[u]} == {"alice", "bob"}  # bob through a nested group
    assert {u for u in USERS if "f-budget" in expected[u]} == {"alice", "bob", "erin"}
    assert {u for u in USERS if "f-link" in expected[u]} == {"alice"}  # the link reaches nobody else
    assert {u for u in USERS if "f-policy" in expected[u]} == {"alice", "bob", "carol", "dave"}
    assert {u for u in USERS if "f-memo" in expected[u]} == {"carol"}  # a domain link
    assert {u for u in USERS if "f-all" in expected[u]} == {"alice", "bob", "carol", "dave"}  # the customer
    assert {u for u in USERS if "f-gone-account" in expected[u]} == {"carol"}
    assert {u for u in USERS if "f-runbook" in expected[u]} == {"alice", "bob", "dave"}
    assert {u for u in USERS if "f-salaries" in expected[u]} == {"carol", "dave"}
    assert expected["erin"] == {"f-budget", "f-partner"} and expected["linus"] == set()
    assert not {"f-old", "f-photo", "d-project"} & indexed(workspace.scenario)
    check_matrix(users, source, workspace.scenario)

    documents = {file_id(d.external_id): d for d in Document.objects.filter(source=source)}
    assert documents["f-secret"].acl_status == "unknown" and "403" in documents["f-secret"].acl_reason
    assert documents["f-plan"].external_id == f"user:{ALICE}:f-plan"
    assert documents["f-runbook"].external_id == "drive:0Aeng:f-runbook"
    assert documents["f-plan"].url == "https://docs.google.com/document/d/f-plan/edit?usp=drivesdk"
    assert documents["f-budget"].mime_type == "text/markdown" and documents["f-plan"].mime_type == "text/html"
    cursor = Source.objects.get(pk=source.pk).sync_cursor
    assert set(cursor["tokens"]) == {f"user:{u}" for u in (ADMIN, ALICE, BOB, CAROL, DAVE)} | {
        "drive:0Aeng", "drive:0Ahr"}  # the suspended user's My Drive is not read

    with workspace.scenario_lock:
        churn(workspace.scenario)
    run, permissions = sync(source, "incremental")
    # Read again: five files whose sharing or place changed (content unchanged), the edited one; added: the new
    # file and the runbook under its new drive; deleted: the runbook's old self, the trashed and the two deleted.
    assert (run.seen, run.unchanged, run.updated, run.added, run.deleted) == (8, 5, 1, 2, 4)
    # Notes, the moved link, policy, the deck, salaries (dave left the drive), the secret (readable again).
    assert permissions.permission_changes == 6
    after = expected_matrix(workspace.scenario)
    assert after != expected
    assert {u for u in USERS if "f-plan" in after[u]} == {"alice", "dave"}
    assert {u for u in USERS if "f-link" in after[u]} == {"alice", "dave"}
    assert {u for u in USERS if "f-runbook" in after[u]} == {"carol", "dave"}
    assert {u for u in USERS if "f-salaries" in after[u]} == {"carol"}
    assert {u for u in USERS if "f-policy" in after[u]} == {"carol"}
    assert {u for u in USERS if "f-public" in after[u]} == {"alice", "bob", "carol", "dave"}
    # Readable again now that its permissions can be read: dave through platform, nested in the drive's group.
    assert {u for u in USERS if "f-secret" in after[u]} == {"alice", "dave"}
    check_matrix(users, source, workspace.scenario)
    assert Document.objects.get(source=source, external_id="drive:0Ahr:f-runbook").acl_status == "ok"


def test_each_step_propagates_in_one_cycle_with_exact_counts(workspace, isolated_index):
    source = make_source(workspace)
    first, permissions = sync(source)
    total = len(indexed(workspace.scenario))
    assert (first.seen, first.added, first.deleted) == (total, total, 0)
    assert permissions.permission_changes == 0 and permissions.seen == total

    # An edit, a deletion and a file trashed with its folder: one incremental run.
    with workspace.scenario_lock:
        workspace.scenario["files"]["f-notes"]["body"] = body("kestrel") + "A second paragraph.\n"
        del workspace.scenario["files"]["f-memo"]
        workspace.scenario["files"]["d-project"]["trashed"] = True  # f-plan and f-budget with it
    edited, permissions = sync(source, "incremental")
    assert (edited.seen, edited.updated, edited.added, edited.deleted, edited.unchanged) == (1, 1, 0, 3, 0)
    assert permissions.permission_changes == 0
    assert not Document.objects.filter(source=source, external_id__endswith=":f-plan").exists()

    # Sharing changes: Drive shows the file changed (its content is not), the permission run rewrites its ACL.
    with workspace.scenario_lock:
        workspace.scenario["files"]["f-notes"]["grants"].append(user(DAVE))
        workspace.scenario["drives"]["0Ahr"]["members"].pop()  # dave leaves the HR drive
    shared, permissions = sync(source, "incremental")
    assert (shared.seen, shared.unchanged, shared.updated, shared.deleted) == (2, 2, 0, 0)
    assert permissions.permission_changes == 2
    notes = Document.objects.get(source=source, external_id=f"user:{ALICE}:f-notes")
    assert f"email:{DAVE}" in notes.acl_principals
    assert f"email:{DAVE}" not in Document.objects.get(source=source, external_id="drive:0Ahr:f-salaries"
                                                       ).acl_principals

    # A group membership change needs no content run at all: the group sync of the permission run.
    with workspace.scenario_lock:
        workspace.scenario["groups"]["hr@corp.example"]["members"].append(DAVE)
    assert connectors.run_sync(source, "incremental").seen == 0
    groups = connectors.run_sync(source, "groups")
    assert groups.state == "succeeded" and groups.details["memberships"] == sum(
        len(g["members"]) for g in workspace.scenario["groups"].values()) - 1  # the suspended member
    # A full run now finds everything unchanged and nothing to prune.
    full = connectors.run_sync(source, "full")
    assert (full.seen, full.unchanged, full.deleted) == (total - 3, total - 3, 0)


# -- the connector alone ------------------------------------------------------------------------------------------


def drain(entries: Any) -> tuple[list, list[Checkpoint], list[Cursor]]:
    items, checkpoints, cursors = [], [], []
    for entry in entries:
        if isinstance(entry, Checkpoint):
            checkpoints.append(entry)
        elif isinstance(entry, Cursor):
            cursors.append(entry)
        else:
            items.append(entry)
    return items, checkpoints, cursors


def item_ids(entries: list) -> set[str]:
    return {file_id(e.external_id) for e in entries if isinstance(e, SourceItem)}


def test_changes_follow_each_corpus_s_token_and_a_refused_token_expires_the_cursor(workspace):
    entries, _, cursors = drain(connector(workspace).load())
    assert item_ids(entries) == indexed(workspace.scenario) and len(cursors) == 1
    cursor = cursors[0].state
    nothing, _, (unchanged,) = drain(connector(workspace).changes(cursor))
    assert nothing == []

    with workspace.scenario_lock:
        files = workspace.scenario["files"]
        files["f-partner"]["body"] += "A new paragraph.\n"  # changed
        files["f-runbook"]["drive"] = "0Ahr"  # moved between drives
        files["f-notes"]["owner"] = BOB  # ownership transferred
        del files["f-policy"]  # deleted
        files["f-old"]["trashed"] = False  # restored from the trash
        files["f-budget"]["trashed"] = True
        files["d-specs"]["name"] = "Specifications"  # a folder: nothing to index
    changed, checkpoints, (after,) = drain(connector(workspace).changes(unchanged.state))
    assert {e.external_id for e in changed if isinstance(e, SourceItem)} == {
        f"user:{BOB}:f-partner", "drive:0Ahr:f-runbook", f"user:{BOB}:f-notes", f"user:{ALICE}:f-old"}
    assert {e.external_id for e in changed if isinstance(e, Deleted)} >= {
        "drive:0Aeng:f-runbook", f"user:{ALICE}:f-notes", f"user:{CAROL}:f-policy", f"user:{ALICE}:f-budget"}
    assert not any(isinstance(e, Deleted) and e.external_id.endswith("d-specs") for e in changed)
    assert checkpoints and all(len(json.dumps(c.state)) < 1000 for c in checkpoints)
    assert drain(connector(workspace).changes(after.state))[0] == []
    requests = [r for r in workspace.requests if r.path == f"{DRIVE}/changes"]
    assert all(r.query["includeRemoved"] == "true" for r in requests)
    assert {r.query.get("driveId") for r in requests} == {None, "0Aeng", "0Ahr"}
    assert all(r.query["restrictToMyDrive"] == "true" for r in requests if "driveId" not in r.query)

    # A corpus the cursor does not know (a new user) is listed whole; one it knows and no longer sees expires it.
    with workspace.scenario_lock:
        workspace.scenario["users"]["nina@corp.example"] = {}
        workspace.scenario["files"]["f-nina"] = item("Nina's", "cobalt", owner="nina@corp.example")
    new, _, (with_nina,) = drain(connector(workspace).changes(after.state))
    assert item_ids(new) == {"f-nina"} and "user:nina@corp.example" in with_nina.state["tokens"]
    with workspace.scenario_lock:
        del workspace.scenario["drives"]["0Ahr"]
    with pytest.raises(CursorExpired, match="drive:0Ahr"):
        list(connector(workspace).changes(with_nina.state))
    workspace.expire_change_tokens()
    with pytest.raises(CursorExpired, match="invalid"):
        list(connector(workspace, shared_drives=["0Aeng"]).changes(
            {"tokens": {k: v for k, v in with_nina.state["tokens"].items() if k != "drive:0Ahr"}}))
    with pytest.raises(CursorExpired):
        list(connector(workspace).changes({"since": "yesterday"}))


def test_a_load_killed_after_some_pages_resumes_at_its_checkpoint_without_reading_earlier_pages(workspace):
    first: list[SourceItem] = []
    state = None
    listing = connector(workspace).load()
    for entry in listing:
        if isinstance(entry, SourceItem):
            first.append(entry)
        elif isinstance(entry, Checkpoint):
            state = entry.state
            if state["current"] == f"user:{CAROL}" and state["page"]:  # mid-way through carol's My Drive
                break
    listing.close()  # the worker is killed here
    assert state is not None and set(state["done"]) == {f"user:{u}" for u in (ADMIN, ALICE, BOB)}
    assert len(json.dumps(state)) < 1000
    seen_before = len(workspace.requests)

    rest, _, cursors = drain(connector(workspace).load(checkpoint=state))
    resumed = [r for r in workspace.requests[seen_before:] if r.path == f"{DRIVE}/files"]
    assert resumed[0].query["pageToken"] == state["page"]
    assert not any(r.query.get("pageToken") is None and r.query["corpora"] == "user"
                   and r.headers["authorization"] for r in resumed[:1])
    # No My Drive read before carol's was listed again, nor carol's first page.
    subjects = workspace.subjects()
    assert all(s not in (ALICE, BOB) for s in subjects[len(subjects) - 3:])
    assert item_ids(first) | item_ids(rest) == indexed(workspace.scenario)
    assert not item_ids(first) & item_ids(rest)
    assert cursors[0].state["tokens"][f"user:{CAROL}"] == state["token"]
    assert set(cursors[0].state["tokens"]) >= set(state["done"])


def test_tokens_are_signed_jwts_per_user_cached_renewed_before_expiry_and_once_on_401(workspace):
    now = [1000.0]
    reader = connector(workspace, clock=lambda: now[0], users=[ALICE], include_shared_drives=False)
    assert file_id(next(iter(reader.list_ids()))) in indexed(workspace.scenario)
    list(reader.list_ids())
    assert len(workspace.token_requests()) == 1
    request = workspace.token_requests()[0]
    assert request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(request.form["assertion"], _KEY.public_key(), algorithms=["RS256"],
                        audience=f"{workspace.url}/token")
    assert (claims["iss"], claims["sub"], claims["scope"]) == (SERVICE_ACCOUNT, ALICE, DRIVE_SCOPE)
    assert claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(request.form["assertion"])["kid"] == "k1"
    now[0] += 3599 - 30  # within a minute of expiry: renewed before the call, no 401 seen
    list(reader.list_ids())
    assert len(workspace.token_requests()) == 2 and 401 not in workspace.statuses()
    workspace.expire_tokens()
    list(reader.list_ids())
    assert len(workspace.token_requests()) == 3 and workspace.statuses().count(401) == 1

    # The directory is read as the admin, with the directory scopes only.
    list(connector(workspace).list_groups())
    assert ADMIN in workspace.subjects()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(SourceUnavailable, match="invalid_grant"):
        list(connector(workspace, key=service_account_key(other, SERVICE_ACCOUNT)).load())
    workspace.scenario["authorized_scopes"] = {DRIVE_SCOPE}  # the delegation lacks the directory scopes
    with pytest.raises(SourceUnavailable, match=r"unauthorized_client.*domain-wide delegation"):
        list(connector(workspace).load())
    with pytest.raises(SourceUnavailable, match="JSON key"):
        list(connector(workspace, key="not json").load())
    assert PEM not in repr(reader)


def test_a_429_storm_is_ridden_out_waiting_exactly_as_long_as_google_asks(workspace):
    calm = connector(workspace)
    expected = {e.external_id: e.read() for e in calm.load() if isinstance(e, SourceItem)}
    workspace.throttle_every = 3
    workspace.throttle_statuses = [429, 403]  # and 403 userRateLimitExceeded, as Drive also answers
    workspace.retry_after_values = [1, 2, 3]
    waits: list[float] = []
    reader = connector(workspace, sleep=waits.append)
    entries, _, _ = drain(reader.load())
    contents = {e.external_id: e.read() for e in entries if isinstance(e, SourceItem)}
    permissions = {e: reader.fetch_permissions(e) for e in contents}
    groups = list(reader.list_groups())
    assert contents == expected
    assert all(p.status == "ok" for e, p in permissions.items() if not e.endswith("f-secret"))
    assert len(groups) == len(workspace.scenario["groups"])
    assert len(workspace.throttled) > 20 and waits == workspace.throttled


def test_server_errors_are_retried_then_a_failing_corpus_stops_pruning_and_bad_permissions_fail_closed(workspace):
    waits: list[float] = []
    tenant = connector(workspace, sleep=waits.append)
    workspace.fail(f"{DRIVE}/changes/startPageToken", status=503, times=2)
    assert {file_id(i) for i in tenant.list_ids()} == indexed(workspace.scenario)
    assert waits == [1.0, 2.0]

    with workspace.scenario_lock:
        workspace.scenario["drives"]["0Ahr"]["members"] = [user(CAROL)]  # the admin is no longer a member
    assert "0Ahr" not in {e.split(":")[1] for e in connector(workspace).list_ids()}  # not listed: not read
    listing = connector(workspace, shared_drives=["0Aeng", "0Ahr"]).load()  # named: its failure is a problem
    with pytest.raises(IncompleteListing, match=r"drive:0Ahr.*404"):
        entries = []
        for entry in listing:
            entries.append(entry)
    assert "f-salaries" not in item_ids(entries) and "f-design" in item_ids(entries)
    with workspace.scenario_lock:
        workspace.scenario["drives"]["0Ahr"]["members"].append(user(ADMIN))
    workspace.script(f"{DRIVE}/files", malformed())
    with pytest.raises(IncompleteListing, match="JSON"):
        list(connector(workspace).list_ids())

    route = f"{DRIVE}/files/f-design/permissions"
    workspace.fail(route, status=500, times=None)
    failed = connector(workspace, sleep=waits.append).fetch_permissions("drive:0Aeng:f-design")
    assert failed.status == "unknown" and not failed.principals and "500" in failed.reason
    workspace.clear(route)
    workspace.script(route, malformed())
    assert connector(workspace).fetch_permissions("drive:0Aeng:f-design").status == "unknown"
    for odd in ({"id": "p", "type": "user", "role": "reader"}, {"id": "p", "type": "audience", "role": "reader"},
                {"id": "p", "type": "user", "role": "overlord", "emailAddress": BOB}):
        workspace.script(route, Reply(200, {"permissions": [odd]}))
        unknown = connector(workspace).fetch_permissions("drive:0Aeng:f-design")
        assert unknown.status == "unknown" and unknown.reason, odd
    forbidden = connector(workspace).fetch_permissions("drive:0Aeng:f-secret")
    assert forbidden.status == "unknown" and "insufficientFilePermissions" in forbidden.reason
    assert connector(workspace).fetch_permissions("nonsense").status == "unknown"

    workspace.fail(f"{DIRECTORY}/users", status=503, times=None)
    with pytest.raises(SourceUnavailable):
        list(connector(workspace, sleep=waits.append).list_ids())


def test_who_each_kind_of_grant_names(workspace):
    reader = connector(workspace)
    list(reader.list_ids())
    group = f"google:{DOMAIN}:group:"
    assert reader.fetch_permissions(f"user:{ALICE}:f-plan").principals == {f"email:{ALICE}", group + "platform@corp.example"}
    assert reader.fetch_permissions(f"user:{ALICE}:f-budget").principals == {
        f"email:{ALICE}", group + "platform@corp.example", "email:erin@partner.example"}
    assert reader.fetch_permissions("drive:0Aeng:f-runbook").principals == {
        group + "eng@corp.example", f"email:{ADMIN}", f"email:{DAVE}"}
    assert reader.fetch_permissions(f"user:{CAROL}:f-policy").principals == {f"email:{CAROL}", f"domain:{DOMAIN}"}
    assert reader.fetch_permissions(f"user:{CAROL}:f-gone-account").principals == {f"email:{CAROL}"}
    # Links: principals nobody holds, unless the admin says link sharing is the organisation's.
    assert reader.fetch_permissions(f"user:{ALICE}:f-link").principals == {
        f"email:{ALICE}", f"google:{DOMAIN}:anyone:f-link"}
    assert reader.fetch_permissions(f"user:{ALICE}:f-public").principals == {
        f"email:{ALICE}", f"google:{DOMAIN}:anyone:f-public"}
    assert reader.fetch_permissions(f"user:{CAROL}:f-memo").principals == {
        f"email:{CAROL}", f"google:{DOMAIN}:domain-link:f-memo"}
    asked = [r for r in workspace.requests if r.path.endswith("/permissions")]
    org_wide = connector(workspace, link_sharing_is_org_wide=True)
    assert org_wide.fetch_permissions(f"user:{ALICE}:f-link").principals == {f"email:{ALICE}",
                                                                             EVERYONE_EXCEPT_EXTERNAL}
    assert org_wide.fetch_permissions(f"user:{CAROL}:f-memo").principals == {f"email:{CAROL}", f"domain:{DOMAIN}"}
    assert not any(reader.fetch_permissions(e).public for e in reader.list_ids())
    # My Drive permissions came with the listing; a shared drive's were asked for, with supportsAllDrives.
    assert asked and all(r.path.startswith(f"{DRIVE}/files/f-") and r.query["supportsAllDrives"] == "true"
                         for r in asked)
    assert {r.path.split("/")[4] for r in asked} <= {"f-runbook", "f-design", "f-secret", "f-salaries"}


def test_editors_files_are_exported_and_uploads_downloaded_within_their_limits(workspace):
    entries = {file_id(e.external_id): e for e in connector(workspace).load() if isinstance(e, SourceItem)}
    assert entries["f-plan"].mime_type == "text/html" and b"<h1>Plan</h1>" in entries["f-plan"].read()
    assert entries["f-budget"].read().decode() == (
        f"# Budget\n\n| step | desk |\n| --- | --- |\n| {TOKEN} marmot procedure | marmot desk |\n")
    assert entries["f-public"].mime_type == "text/plain" and b"oriole" in entries["f-public"].read()
    assert entries["f-link"].size_bytes == len(workspace.scenario["files"]["f-link"]["body"])
    assert entries["f-link"].read().decode() == workspace.scenario["files"]["f-link"]["body"]
    exports = [r for r in workspace.requests if r.path.endswith("/export")]
    assert {r.query["mimeType"] for r in exports} == {"text/html", "text/csv", "text/plain"}
    downloads = [r for r in workspace.requests if r.query.get("alt") == "media"]
    assert [r.path for r in downloads] == [f"{DRIVE}/files/f-link"]
    # Drive refuses an export over its limit: the file is recorded as too large.
    workspace.export_limit = 10
    with pytest.raises(ItemError, match="too_large"):
        entries["f-plan"].read()
    # A download longer than the size Drive listed is not read on.
    workspace.script(f"{DRIVE}/files/f-link", Reply(200, b"x" * (entries["f-link"].size_bytes + 4096)))
    with pytest.raises(OSError, match="bytes expected"):
        entries["f-link"].read()


def test_groups_sync_with_their_direct_members(workspace):
    groups = {g.name: g for g in connector(workspace).list_groups()}
    principal = f"google:{DOMAIN}:group:"
    assert set(groups) == {"Engineering", "Platform", "HR", "Partners", "Everyone"}
    assert groups["Engineering"].principal == principal + "eng@corp.example"
    assert groups["Engineering"].members == (f"email:{ALICE}", principal + "platform@corp.example")
    assert groups["HR"].members == (f"email:{CAROL}",)  # the suspended member left out
    assert groups["Partners"].members == ("email:erin@partner.example",)
    assert groups["Everyone"].members == (EVERYONE_EXCEPT_EXTERNAL,)
    workspace.fail(f"{DIRECTORY}/groups/hr@corp.example/members", status=403)
    with pytest.raises(ValueError, match="HR"):
        list(connector(workspace).list_groups())
    assert copy.deepcopy(workspace.scenario) == scenario()  # reading changed nothing


def test_settings_are_checked_and_the_key_stays_out_of_them(workspace):
    with pytest.raises(InvalidInput, match="domain"):
        connectors.ensure_source("google_drive", "https://drive.google.com", config={**config(workspace),
                                                                                     "domain": "admin@corp.example"})
    with pytest.raises(InvalidInput, match="service_account_key is a credential"):
        connectors.ensure_source("google_drive", "https://drive.google.com", config={
            **config(workspace), "service_account_key": KEY_JSON})
    with pytest.raises(InvalidInput, match="shared_drive"):
        connectors.ensure_source("google_drive", "https://drive.google.com", config={
            **config(workspace), "shared_drive": ["0Aeng"]})
    with pytest.raises(InvalidInput, match="admin_email"):
        connectors.ensure_source("google_drive", "https://drive.google.com", config={"domain": DOMAIN})
    source = connectors.ensure_source("google_drive", "https://drive.google.com", config={
        **config(workspace), "users": ["Carol@Corp.example"], "shared_drives": ["0Ahr"]},
        secrets={"service_account_key": KEY_JSON})
    assert "PRIVATE KEY" not in json.dumps(source.config) and "PRIVATE KEY" not in source.encrypted_secrets
    built = connector_for(source)
    assert {e.rsplit(":", 1)[0] for e in built.list_ids()} == {f"user:{CAROL}", "drive:0Ahr"}  # type: ignore[attr-defined]
    # Named users need no directory scope for users.
    assert all(USER_SCOPE not in jwt.decode(r.form["assertion"], options={"verify_signature": False})["scope"]
               for r in workspace.token_requests())


# -- a sync process killed mid-listing ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_sync_process_resumes_its_run_from_the_checkpoint(tmp_path, settings, workspace, shared_database):
    """`manage.py sync --kind full` in a process of its own, SIGKILLed while the stand-in holds back a later listing
    page; the next run in this process resumes the same run from its last checkpoint: earlier pages are not asked
    for again, the counts are exact and every file is indexed once."""
    index_dir, index_name = tmp_path / "index", f"test-gdrive-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                                                  index_name=index_name, ingest_batch_documents=1)
    retrieval_services._backends.clear()
    source = make_source(workspace)
    env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
    env["CITEWISE_ENCRYPTION_KEY"] = settings.CITEWISE.encryption_key
    env["CITEWISE_INGEST_BATCH_DOCUMENTS"] = "1"
    workspace.hang_pages["p2"] = 120  # every corpus's second page; the first asked for hangs
    log = tmp_path / "sync.log"

    def hung() -> bool:
        return any(r.path == f"{DRIVE}/files" and r.query.get("pageToken") == "p2" for r in workspace.requests)

    run = kill_sync_midway(source, env, log, hung, timeout_s=240)
    checkpoint = run.checkpoint["resume"]
    assert (checkpoint["page"], checkpoint["current"]) == ("p2", f"user:{ALICE}")
    committed = run.added
    assert committed > 0
    before = len(workspace.requests)

    resumed = connectors.run_sync(source, "full")
    total = len(indexed(workspace.scenario))
    assert (resumed.pk, resumed.resumed, resumed.state) == (run.pk, 1, "succeeded")
    assert (resumed.seen, resumed.added, resumed.failed) == (total, total, 0)
    listed = [r for r in workspace.requests[before:] if r.path == f"{DRIVE}/files"]
    assert listed[0].query.get("pageToken") == "p2"  # the hung page again, not the pages before it
    first_pages = [r for r in listed if "pageToken" not in r.query]
    assert len(first_pages) == len(checkpoint_corpora_left(checkpoint)) - 1
    documents = Document.objects.filter(source=source)
    assert documents.count() == total and not documents.exclude(status="indexed").exists()
    backend = retrieval_services.get_backend(index_name, "embedded")
    assert sum(len(page) for page in backend.chunk_texts()) == sum(documents.values_list("chunk_count", flat=True))


def checkpoint_corpora_left(checkpoint: dict) -> list[str]:
    """The corpora a resumed run still has to read: the one it was in, and those after it."""
    every = [*sorted(f"user:{u}" for u in (ADMIN, ALICE, BOB, CAROL, DAVE)), "drive:0Aeng", "drive:0Ahr"]
    return [c for c in every if c not in checkpoint["done"]]
