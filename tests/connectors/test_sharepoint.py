"""SharePoint Online and OneDrive through the real sync and retrieval path, against a local stand-in of Microsoft
Graph (tests/standins/graph.py); then the connector alone: delta links, checkpoints, tokens, throttling, faults.

Who may read each file comes from the test's own reading of the scenario (`readers`, plain set logic over the
scenario dict), never from the connector: an item's own grants when its inheritance is broken, else its parent's
(up to the library's); only read/write/owner roles count; a user, an Entra group's transitive members, a
SharePoint group's members, "Everyone except external users" (employees), a people link's people, an
organisation link (employees, the admin switch being on here), an anonymous link (nobody); and nobody at all for
a file whose permissions are forbidden or which is granted to a claim the connector cannot name. Every user then
searches the word every file shares, on both backends, and must get exactly those files: no leak, no wrong
denial; and again after the tenant churns.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model

from answers.services import ask
from connectors import services as connectors
from connectors.base import (
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    SourceItem,
    SourceUnavailable,
    id_lister,
)
from connectors.models import Document, Source
from connectors.sources import connector_for
from connectors.sources.sharepoint import SharePointConnector
from core.errors import InvalidInput
from identity.models import Account, ExternalIdentity
from identity.principals import EVERYONE_EXCEPT_EXTERNAL
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from search.types import SearchMode
from tests.standins.base import Reply, malformed
from tests.standins.graph import GRAPH, HOST, GraphStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("encryption_key")]

TOKEN = "zephyr"
TENANT = "5f0c3a1e-0000-4000-8000-00000000c0de"
CLIENT_ID, CLIENT_SECRET = "citewise-app", "secret-do-not-log"
READING = {"read", "write", "owner"}
# Citewise user -> Entra user id; erin is a guest from a partner company.
USERS = {"alice": "u-alice", "bob": "u-bob", "carol": "u-carol", "dave": "u-dave", "erin": "u-erin",
         "frank": "u-frank"}
GUESTS = {"u-erin"}


def file(drive: str, parent: str | None, name: str, word: str, grants: list | None = None) -> dict:
    body = f"The {TOKEN} {word} procedure: ask the {word} desk before the {word} review.\n"
    if name.endswith(".md"):
        body = f"# {name[:-3]}\n\n{body}"
    return {"drive": drive, "parent": parent, "name": name, "body": body, "grants": grants}


def folder(drive: str, parent: str | None, name: str, grants: list | None = None) -> dict:
    return {"drive": drive, "parent": parent, "name": name, "folder": True, "grants": grants}


def scenario() -> dict:
    return {
        "tenant": TENANT,
        "users": {
            "u-alice": {"name": "Alice", "mail": "Alice@Corp.example", "upn": "alice@corp.example"},
            "u-bob": {"name": "Bob", "mail": "bob@corp.example", "upn": "bob@corp.example"},
            "u-carol": {"name": "Carol", "mail": "carol@corp.example", "upn": "carol@corp.example"},
            "u-dave": {"name": "Dave", "mail": "dave@corp.example", "upn": "dave@corp.example"},
            # A guest: SharePoint shows no email in grants, so the connector looks her up.
            "u-erin": {"name": "Erin", "mail": "erin@partner.example",
                       "upn": "erin_partner.example#EXT#@corp.onmicrosoft.com", "show_email": False},
            "u-frank": {"name": "Frank", "mail": "frank@corp.example", "upn": "frank@corp.example"},
        },
        "groups": {
            "g-eng": {"name": "Engineering", "members": ["u-alice", "g-platform"]},
            "g-platform": {"name": "Platform", "members": ["u-bob"]},  # nested in Engineering
            "g-hr": {"name": "HR", "members": ["u-carol"]},
            "g-partners": {"name": "Partners", "members": ["u-erin"]},
        },
        "sites": {
            "eng": {"path": "/sites/eng", "name": "Engineering",
                    "site_groups": {"3": {"name": "Eng Visitors", "members": ["u-dave", "g-hr"]}}},
            "hr": {"path": "/sites/hr", "name": "People"},
            "intranet": {"path": "/sites/intranet", "name": "Intranet",
                         "site_groups": {"5": {"name": "Intranet Members", "members": ["everyone"]}}},
        },
        "drives": {
            "d-eng": {"site": "eng", "name": "Documents",
                      "grants": [{"group": "g-eng", "roles": ["write"]}, {"site_group": "3"}]},
            "d-arch": {"site": "eng", "name": "Archive", "grants": [{"group": "g-eng"}]},
            "d-hr": {"site": "hr", "name": "Documents", "grants": [{"group": "g-hr", "roles": ["owner"]}]},
            "d-intra": {"site": "intranet", "name": "Documents", "grants": [{"site_group": "5"}]},
            "d-alice": {"name": "OneDrive", "grants": [{"user": "u-alice", "roles": ["owner"]}]},
        },
        "onedrives": {"u-alice": "d-alice"},
        "items": {
            "f-runbooks": folder("d-eng", None, "Runbooks"),
            "i-runbook": file("d-eng", "f-runbooks", "Runbook.md", "kestrel"),
            # Broken inheritance: a restricted file under an open folder.
            "i-secret": file("d-eng", "f-runbooks", "Incident secrets.txt", "marmot", [{"user": "u-alice"}]),
            # "Limited access" reads nothing.
            "i-limited": file("d-eng", "f-runbooks", "Limited.txt", "lantern",
                              [{"user": "u-bob", "roles": ["sp.limited access"]}, {"user": "u-carol"}]),
            "i-forbidden": file("d-eng", None, "Forbidden.txt", "nebula"),
            "i-anon": file("d-eng", None, "Anon.txt", "oriole", [{"group": "g-eng"}, {"link": "anonymous"}]),
            "f-2024": folder("d-arch", None, "2024", [{"group": "g-platform"}]),
            "i-design": file("d-arch", "f-2024", "Old design.txt", "quartz"),
            "i-salaries": file("d-hr", None, "Salaries.txt", "rosehip"),
            "i-policy": file("d-hr", None, "Policy.txt", "saffron", [{"group": "g-hr"}, {"link": "organization"}]),
            "i-review": file("d-hr", None, "Review.txt", "tundra",
                             [{"group": "g-hr"}, {"link": "users", "users": ["u-dave", "u-erin"]},
                              {"link": "existingAccess"}]),
            "i-guide": file("d-intra", None, "Office guide.txt", "umber"),
            "i-partner": file("d-intra", None, "Partner brief.txt", "vervain",
                              [{"everyone": True}, {"group": "g-partners"}]),
            # "Everyone" includes guests: no principal says so, so nobody reads it.
            "i-allhands": file("d-intra", None, "All hands.txt", "willow", [{"claim": "c:0(.s|true"}]),
            "i-notes": file("d-alice", None, "Notes.txt", "xenon"),
            "i-plan": file("d-alice", None, "Shared plan.txt", "yarrow",
                           [{"user": "u-alice", "roles": ["owner"]}, {"link": "users", "users": ["u-frank"]}]),
        },
        "forbidden": {"i-forbidden"},
    }


# -- the oracle: straight from the scenario, no connector code ---------------------------------------------------


def members(site: dict, principal: str) -> set[str]:
    """User ids a user or Entra group id stands for, through any nesting."""
    if principal not in site["groups"]:
        return {principal}
    return set().union(*(members(site, m) for m in site["groups"][principal]["members"]))


def effective_grants(site: dict, item_id: str) -> list[dict]:
    item = site["items"][item_id]
    if item.get("grants") is not None:
        return item["grants"]
    if item["parent"] is None:
        return site["drives"][item["drive"]]["grants"]
    return effective_grants(site, item["parent"])


def readers(site: dict, item_id: str, *, org_links: bool) -> set[str]:
    if item_id in site["forbidden"]:
        return set()
    employees = set(site["users"]) - GUESTS
    drive = site["drives"][site["items"][item_id]["drive"]]
    site_groups = site["sites"][drive["site"]].get("site_groups", {}) if "site" in drive else {}
    who: set[str] = set()
    for grant in effective_grants(site, item_id):
        if not set(grant.get("roles", ["read"])) & READING:
            continue
        if "claim" in grant:
            return set()
        if "user" in grant:
            who.add(grant["user"])
        elif "group" in grant:
            who |= members(site, grant["group"])
        elif "site_group" in grant:
            for member in site_groups[grant["site_group"]]["members"]:
                who |= employees if member == "everyone" else members(site, member)
        elif grant.get("everyone"):
            who |= employees
        elif grant.get("link") == "users":
            who |= set(grant["users"])
        elif grant.get("link") == "organization" and org_links:
            who |= employees
    return who


def files(site: dict) -> set[str]:
    return {i for i, item in site["items"].items() if not item.get("folder")}


def expected_matrix(site: dict, *, org_links: bool = True) -> dict[str, set[str]]:
    return {user: {i for i in files(site) if account in readers(site, i, org_links=org_links)}
            for user, account in USERS.items()}


# -- the product -------------------------------------------------------------------------------------------------


@pytest.fixture
def tenant():
    with GraphStandIn(scenario(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET, page_size=2) as server:
        yield server


def config(server: GraphStandIn, **extra: Any) -> dict:
    return {"tenant_id": TENANT, "client_id": CLIENT_ID, "graph_url": f"{server.url}{GRAPH}",
            "login_url": server.url, **extra}


def connector(server: GraphStandIn, *, client_secret: str = CLIENT_SECRET, include_onedrive: bool = True,
              **options: Any) -> SharePointConnector:
    options.setdefault("sleep", lambda seconds: None)  # retries' backoff is counted where a test asks, never waited
    return SharePointConnector(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=client_secret,
                               graph_url=f"{server.url}{GRAPH}", login_url=server.url,
                               include_onedrive=include_onedrive, **options)


def make_users() -> dict:
    users = {}
    for name, account in USERS.items():
        user = get_user_model().objects.create_user(name, password="pw")
        guest = account in GUESTS
        Account.objects.create(user=user, status=Account.Status.GUEST if guest else Account.Status.EMPLOYEE)
        ExternalIdentity.objects.create(user=user, principal=f"email:{scenario()['users'][account]['mail']}",
                                        is_external=guest)
        users[name] = user
    return users


def sync(source: Source, kind: str = "full") -> None:
    """A content run of `kind` (the first must be full; later ones follow the drives' delta links), then a
    permission run: what the scheduler does."""
    run = connectors.run_sync(source, kind)
    assert (run.kind, run.state, run.failed) == (kind, "succeeded", 0), run.errors
    permissions = connectors.run_sync(source, "permissions")
    assert permissions.state == "succeeded" and permissions.details["groups"] == len(scenario()["groups"])


def visible(users: dict, source: Source, mode: SearchMode) -> dict[str, set[str]]:
    external = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
    seen = {}
    for name, user in users.items():
        hits = search(TOKEN, principals=principals_for(user), mode=mode, limit=1000)
        seen[name] = {external[h.document_id].partition(":")[2] for h in hits}
    return seen


def check_matrix(users: dict, source: Source, site: dict) -> None:
    expected = expected_matrix(site)
    assert {e.partition(":")[2] for e in Document.objects.filter(source=source).values_list(
        "external_id", flat=True)} == files(site)
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        seen = visible(users, source, mode)
        leaks = {u: seen[u] - expected[u] for u in users if seen[u] - expected[u]}
        denials = {u: expected[u] - seen[u] for u in users if expected[u] - seen[u]}
        assert not leaks and not denials, (mode, leaks, denials)
    # Answers cite only what the asker may read.
    urls = dict(Document.objects.filter(source=source).values_list("external_id", "url"))
    for name, user in users.items():
        readable = {url for external_id, url in urls.items() if external_id.partition(":")[2] in expected[name]}
        result = ask("What is the marmot procedure and the rosehip procedure?", principals=principals_for(user),
                     user=user)
        assert {c.url.split("#", 1)[0] for c in result.citations} <= readable, (name, result.citations)


def test_every_user_sees_exactly_the_files_microsoft_365_lets_them_read_before_and_after_churn(backend_kind, tenant):
    users = make_users()
    source = connectors.ensure_source(
        "sharepoint", f"https://{HOST}", name=f"m365-{backend_kind}",
        index_name=retrieval_services.get_backend().index_name, search_backend=backend_kind,
        config=config(tenant, include_onedrive=True, organization_links_are_org_wide=True),
        secrets={"client_secret": CLIENT_SECRET})
    sync(source)
    expected = expected_matrix(tenant.scenario)
    # The scenario exercises what it means to: broken inheritance, nesting, site groups, every kind of link.
    assert expected["alice"] >= {"i-runbook", "i-secret", "i-anon", "i-notes", "i-plan"}
    assert "i-secret" not in expected["bob"] and "i-secret" not in expected["dave"]
    assert "i-design" in expected["bob"] and "i-design" not in expected["alice"]  # nested group, broken folder
    assert "i-runbook" in expected["carol"] and "i-runbook" in expected["dave"]  # the site group
    assert expected["erin"] == {"i-review", "i-partner"}  # a people link and a group; never "everyone"
    assert "i-policy" in expected["frank"] and "i-plan" in expected["frank"] and "i-guide" in expected["frank"]
    assert expected["carol"] >= {"i-limited"} and "i-limited" not in expected["bob"]
    assert all(not {"i-forbidden", "i-allhands"} & seen for seen in expected.values())
    check_matrix(users, source, tenant.scenario)

    documents = {d.external_id.partition(":")[2]: d for d in Document.objects.filter(source=source)}
    assert documents["i-forbidden"].acl_status == "unknown" and documents["i-allhands"].acl_status == "unknown"
    assert documents["i-runbook"].external_id == "d-eng:i-runbook"
    assert documents["i-runbook"].url == f"{tenant.url}/sites/eng/Documents/Runbooks/Runbook.md"
    assert documents["i-runbook"].title == "Runbook"
    assert str(documents["i-runbook"].source_modified_at.date()) == "2025-03-01"
    # An anonymous link is a principal of its own that nobody holds, not "public".
    assert not documents["i-anon"].acl_public and any("anonymous-link" in p for p in documents["i-anon"].acl_principals)
    # Listings paginated, and the secret went only to the token endpoint, in its form.
    assert any("$skiptoken" in r.query for r in tenant.requests)
    assert not any(CLIENT_SECRET in r.path or CLIENT_SECRET in str(r.query) for r in tenant.requests)
    assert all(CLIENT_SECRET not in r.body.decode() for r in tenant.requests if "/oauth2/" not in r.path)

    with tenant.scenario_lock:
        items = tenant.scenario["items"]
        items["i-runbook"]["grants"] = [{"user": "u-carol"}]  # a permission change
        tenant.scenario["groups"]["g-platform"]["members"] = ["u-dave"]  # membership: bob out, dave in
        items["i-design"]["parent"] = None  # a move out of the restricted folder: now inherits the library's
        del items["i-anon"]  # a deletion
        items["i-salaries"]["grants"] = [{"group": "g-hr"}, {"link": "users", "users": ["u-bob"]}]  # a link added
        items["i-review"]["grants"] = [{"group": "g-hr"}]  # links removed
        tenant.scenario["sites"]["eng"]["site_groups"]["3"]["members"] = ["u-frank"]
        tenant.scenario["forbidden"] = {"i-guide"}
    sync(source, "incremental")
    after = expected_matrix(tenant.scenario)
    assert after != expected and "i-review" not in after["erin"] and "i-salaries" in after["bob"]
    assert "i-design" in after["alice"] and "i-design" in after["dave"] and "i-design" not in after["bob"]
    assert "i-runbook" not in after["alice"] and "i-runbook" in after["carol"]
    assert "i-forbidden" in after["frank"] and "i-guide" not in after["frank"]  # readable once it can be read
    check_matrix(users, source, tenant.scenario)
    # The moved file is the same document (its external id does not depend on its folder), and its link, in the
    # database and in the index that citations read, is where it now lives.
    moved = Document.objects.get(source=source, external_id="d-arch:i-design")
    assert moved.pk == documents["i-design"].pk
    before = documents["i-design"].url
    folder = before.rsplit("/", 2)[-2]
    assert moved.url == before.replace(f"/{folder}/", "/") != before
    indexed = retrieval_services.get_backend().get_document(moved.pk, frozenset(moved.acl_principals))
    assert indexed is not None and indexed.url == moved.url


# -- the connector alone -----------------------------------------------------------------------------------------


def drain(listing) -> tuple[list, list[Checkpoint], list[Cursor]]:
    entries, checkpoints, cursors = [], [], []
    for entry in listing:
        (checkpoints if isinstance(entry, Checkpoint) else cursors if isinstance(entry, Cursor) else entries).append(
            entry)
    return entries, checkpoints, cursors


def item_ids(entries) -> set[str]:
    return {e.external_id.partition(":")[2] for e in entries if isinstance(e, SourceItem)}


def test_changes_follow_each_drives_delta_link_and_a_gone_link_expires_the_cursor(tenant):
    entries, _, cursors = drain(connector(tenant).load())
    assert item_ids(entries) == files(tenant.scenario) and len(cursors) == 1
    cursor = cursors[0].state
    assert set(cursor["delta"]) == set(tenant.scenario["drives"])

    nothing, _, (unchanged,) = drain(connector(tenant).changes(cursor))
    assert nothing == []

    with tenant.scenario_lock:
        items = tenant.scenario["items"]
        items["i-salaries"]["body"] += "A new paragraph.\n"  # changed
        items["i-runbook"]["parent"] = None  # moved
        del items["i-notes"]  # deleted
        items["i-new"] = file("d-intra", None, "New.txt", "zinnia")  # added
    changed, checkpoints, (after,) = drain(connector(tenant).changes(unchanged.state))
    assert item_ids(changed) == {"i-salaries", "i-runbook", "i-new"}
    assert [e.external_id for e in changed if isinstance(e, Deleted)] == ["d-alice:i-notes"]
    runbook = next(e for e in changed if isinstance(e, SourceItem) and e.external_id == "d-eng:i-runbook")
    assert runbook.url.endswith("/sites/eng/Documents/Runbook.md") and b"kestrel" in runbook.read()
    assert checkpoints and all(set(c.state) >= {"delta", "drive", "next"} for c in checkpoints)
    assert drain(connector(tenant).changes(after.state))[0] == []

    # A site whose libraries cannot be listed: the others' changes, then its drives' links kept for next time.
    tenant.fail(f"{GRAPH}/sites/{HOST},hr,web-hr/drives", status=500, times=None)
    partial_run = connector(tenant).changes(after.state)
    with pytest.raises(IncompleteListing, match="site"):
        for entry in partial_run:
            if isinstance(entry, Cursor):
                assert entry.state["delta"]["d-hr"] == after.state["delta"]["d-hr"]
                kept = entry
    assert set(kept.state["delta"]) == set(after.state["delta"])
    tenant.clear(f"{GRAPH}/sites/{HOST},hr,web-hr/drives")

    tenant.expire_delta_links()
    with pytest.raises(CursorExpired, match="resyncRequired"):
        list(connector(tenant).changes(after.state))
    # A drive that is no longer listed cannot say what it held: a full sync must prune it.
    with pytest.raises(CursorExpired, match="d-gone"):
        list(connector(tenant).changes({"delta": {**after.state["delta"], "d-gone": "x"}}))


def test_a_load_killed_after_some_pages_resumes_at_its_checkpoint_without_reading_earlier_pages(tenant):
    first: list[SourceItem] = []
    state = None
    listing = connector(tenant).load()
    for entry in listing:
        if isinstance(entry, SourceItem):
            first.append(entry)
        elif isinstance(entry, Checkpoint):
            state = entry.state
            if state["next"] and state["drive"] >= 1:  # mid-way through the second drive
                break
    listing.close()  # the worker is killed here
    assert state is not None and state["drive_id"] == "d-arch" and "d-eng" in state["delta"]
    seen_before = len(tenant.requests)

    rest, _, cursors = drain(connector(tenant).load(checkpoint=state))
    resumed = tenant.requests[seen_before:]
    deltas = [r for r in resumed if r.path.endswith("/root/delta")]
    # The resumed run starts at the checkpoint's page: no first page of the drives read or being read.
    assert deltas[0].path == f"{GRAPH}/drives/d-arch/root/delta"
    assert deltas[0].query == {"$skiptoken": state["next"].rsplit("$skiptoken=", 1)[1]}
    assert not any(r.path.endswith(("/d-eng/root/delta", "/d-arch/root/delta")) and not r.query for r in deltas)
    assert item_ids(first) | item_ids(rest) == files(tenant.scenario)
    assert not item_ids(first) & item_ids(rest)
    assert set(cursors[0].state["delta"]) == set(tenant.scenario["drives"])


def test_a_token_is_renewed_before_it_expires_and_once_when_graph_refuses_it(tenant):
    now = [1000.0]
    reader = connector(tenant, include_onedrive=False, clock=lambda: now[0])
    assert len(list(reader.list_ids())) == len(files(tenant.scenario)) - 2  # OneDrive left out
    assert len(tenant.token_requests()) == 1
    assert tenant.token_requests()[0].form == {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                               "client_secret": CLIENT_SECRET,
                                               "scope": "https://graph.microsoft.com/.default"}
    now[0] += 3599 - 30  # within a minute of expiry: renewed before the call, no 401 seen
    list(reader.list_ids())
    assert len(tenant.token_requests()) == 2 and 401 not in tenant.statuses()
    tenant.expire_tokens()  # revoked early: the 401 is answered by one renewal
    assert len(list(reader.list_ids())) == len(files(tenant.scenario)) - 2
    assert len(tenant.token_requests()) == 3 and tenant.statuses().count(401) == 1

    with pytest.raises(SourceUnavailable, match="invalid_client"):
        list(connector(tenant, client_secret="wrong").load())
    # A made-up bearer token is refused by the stand-in, as Graph does.
    assert httpx.get(f"{tenant.url}{GRAPH}/sites/getAllSites", headers={"Authorization": "Bearer nope"}
                     ).status_code == 401


def test_a_429_storm_is_ridden_out_waiting_exactly_as_long_as_graph_asks(tenant):
    tenant.throttle_every = 3
    tenant.retry_after_values = [1, 2, 3]
    waits: list[float] = []
    reader = connector(tenant, sleep=waits.append)
    entries, _, _ = drain(reader.load())
    contents = {e.external_id.partition(":")[2]: e.read() for e in entries if isinstance(e, SourceItem)}
    permissions = {i: reader.fetch_permissions(f"{tenant.scenario['items'][i]['drive']}:{i}") for i in contents}
    assert set(contents) == files(tenant.scenario)
    assert all(contents[i].decode() == tenant.scenario["items"][i]["body"] for i in contents)
    assert permissions["i-secret"].principals == {"email:alice@corp.example"}
    assert len(tenant.throttled) > 10 and waits == tenant.throttled


def test_server_errors_are_retried_then_a_failing_drive_stops_pruning_and_bad_permissions_fail_closed(tenant,
                                                                                                        isolated_index):
    waits: list[float] = []
    reader = connector(tenant, sleep=waits.append)
    tenant.fail(f"{GRAPH}/drives/d-hr/root/delta", status=502, times=2)
    assert len(list(reader.list_ids())) == len(files(tenant.scenario))
    assert waits == [1.0, 2.0]

    source = connectors.ensure_source("sharepoint", f"https://{HOST}", config=config(tenant, include_onedrive=True),
                                      secrets={"client_secret": CLIENT_SECRET})
    report = connectors.sync_source(source)
    assert report.listing_complete and report.indexed == len(files(tenant.scenario))
    with tenant.scenario_lock:
        del tenant.scenario["items"]["i-guide"]
    # Retry-After: 0 (the sync builds its connector from the source's settings, with the real sleep).
    tenant.fail(f"{GRAPH}/drives/d-hr/root/delta", status=500, retry_after=0, times=None)
    report = connectors.sync_source(source)
    assert not report.listing_complete and report.deleted == 0
    assert any("unlistable_drive" in message and "500" in message for _, message in report.errors)
    # Nothing pruned: HR's files and the deleted guide alike wait for a complete listing.
    assert Document.objects.filter(source=source).count() == len(files(tenant.scenario)) + 1
    tenant.clear(f"{GRAPH}/drives/d-hr/root/delta")
    tenant.script(f"{GRAPH}/drives/d-intra/root/delta", malformed())
    with pytest.raises(IncompleteListing, match=r"malformed|JSON"):
        list(connector(tenant).list_ids())

    route = f"{GRAPH}/drives/d-hr/items/i-salaries/permissions"
    tenant.fail(route, status=500, times=None)
    failed = connector(tenant).fetch_permissions("d-hr:i-salaries")
    assert failed.status == "unknown" and not failed.principals and "500" in failed.reason
    tenant.clear(route)
    tenant.script(route, malformed())
    assert connector(tenant).fetch_permissions("d-hr:i-salaries").status == "unknown"
    tenant.script(route, Reply(200, {"value": [{"id": "x", "roles": "read", "grantedToV2": {"user": {"id": "u-bob"}}}]}))
    assert "no roles" in connector(tenant).fetch_permissions("d-hr:i-salaries").reason
    forbidden = connector(tenant).fetch_permissions("d-eng:i-forbidden")
    assert forbidden.status == "unknown" and "403" in forbidden.reason and "accessDenied" in forbidden.reason

    tenant.fail(f"{GRAPH}/sites/getAllSites", status=503, times=None)
    with pytest.raises(SourceUnavailable):
        list(connector(tenant).list_ids())


def test_who_each_kind_of_grant_names(tenant):
    reader = connector(tenant)
    list(reader.list_ids())
    assert reader.fetch_permissions("d-eng:i-runbook").principals == {
        f"entra:{TENANT}:group:g-eng", "email:dave@corp.example", f"entra:{TENANT}:group:g-hr"}
    assert reader.fetch_permissions("d-intra:i-guide").principals == {EVERYONE_EXCEPT_EXTERNAL}
    assert reader.fetch_permissions("d-intra:i-partner").principals == {EVERYONE_EXCEPT_EXTERNAL,
                                                                        f"entra:{TENANT}:group:g-partners"}
    # The guest is named by her mail, looked up because the grant shows none.
    assert "email:erin@partner.example" in reader.fetch_permissions("d-hr:i-review").principals
    assert any(r.path == f"{GRAPH}/users/u-erin" for r in tenant.requests)
    # An organisation link is the whole organisation only when the admin says so.
    policy = reader.fetch_permissions("d-hr:i-policy").principals
    assert EVERYONE_EXCEPT_EXTERNAL not in policy and any("organization-link" in p for p in policy)
    org_wide = connector(tenant, organization_links_are_org_wide=True).fetch_permissions("d-hr:i-policy")
    assert EVERYONE_EXCEPT_EXTERNAL in org_wide.principals
    everyone = reader.fetch_permissions("d-intra:i-allhands")
    assert everyone.status == "unknown" and "c:0(.s|true" in everyone.reason
    # SharePoint's REST API refusing the token (a client secret): site groups cannot be read, nobody reads.
    tenant.rest_refuses_secret_tokens = True
    refused = connector(tenant).fetch_permissions("d-eng:i-runbook")
    assert refused.status == "unknown" and "client secret" in refused.reason
    # The download went to another host without the bearer token.
    item = next(e for e in connector(tenant).load() if isinstance(e, SourceItem))
    assert b"zephyr" in item.read()
    downloads = [r for r in tenant.requests if r.path.startswith("/download/")]
    assert downloads and all("authorization" not in r.headers and r.headers["host"].startswith("localhost")
                             for r in downloads)
    # A download longer than the size Graph listed is not read on (it is read again at the next sync).
    tenant.script(f"/download/{item.external_id.replace(':', '/')}", Reply(200, b"x" * (item.size_bytes + 4096)))
    with pytest.raises(OSError, match="bytes Graph said"):
        item.read()
    assert CLIENT_SECRET not in repr(reader)


def certificate() -> tuple[str, Any, str]:
    """A self-signed certificate as an app registration holds one: (PEM private key, public key, thumbprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citewise")])
    now = datetime.now(UTC)
    cert = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(
        x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(
        key, hashes.SHA256())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, cert.public_key(), cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 (Entra: SHA-1)


def test_a_certificate_gets_the_tokens_sharepoint_takes_for_site_group_members():
    pem, public_key, thumbprint = certificate()
    with GraphStandIn(scenario(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      certificate=(public_key, thumbprint)) as server:
        server.rest_refuses_secret_tokens = True
        reader = connector(server, client_secret="", certificate_key=pem, certificate_thumbprint=thumbprint)
        permissions = reader.fetch_permissions("d-eng:i-runbook")
        assert permissions.status == "ok" and "email:dave@corp.example" in permissions.principals
        assert len(server.token_requests()) == 2  # Graph, then the SharePoint host
        assert all("client_assertion" in r.form and "client_secret" not in r.form for r in server.token_requests())
        stranger, _, _ = certificate()
        with pytest.raises(SourceUnavailable, match="invalid_client"):
            list(connector(server, client_secret="", certificate_key=stranger,
                           certificate_thumbprint=thumbprint).list_ids())
        with pytest.raises(SourceUnavailable, match="PEM"):
            list(connector(server, certificate_key="not a key", certificate_thumbprint=thumbprint).list_ids())


def test_settings_are_checked_and_the_secret_stays_out_of_them(tenant):
    with pytest.raises(InvalidInput, match="tenant id is the directory's GUID"):
        connectors.ensure_source("sharepoint", f"https://{HOST}", config={**config(tenant),
                                                                        "tenant_id": "corp.onmicrosoft.com"})
    with pytest.raises(InvalidInput, match="client_secret is a credential"):
        connectors.ensure_source("sharepoint", f"https://{HOST}", config={**config(tenant), "client_secret": "x"})
    with pytest.raises(InvalidInput, match="site"):
        connectors.ensure_source("sharepoint", f"https://{HOST}", config={**config(tenant), "site": ["eng"]})
    source = connectors.ensure_source("sharepoint", f"https://{HOST}", config={**config(tenant), "sites": [
        f"{HOST}:/sites/hr"]}, secrets={"client_secret": CLIENT_SECRET})
    assert CLIENT_SECRET not in str(source.config) and CLIENT_SECRET not in source.encrypted_secrets
    built = connector_for(source)
    assert {i.partition(":")[0] for i in id_lister(built).list_ids()} == {"d-hr"}


def test_groups_sync_with_their_transitive_user_members(tenant):
    groups = {g.name: g for g in connector(tenant).list_groups()}
    assert set(groups) == {"Engineering", "Platform", "HR", "Partners"}
    assert groups["Engineering"].principal == f"entra:{TENANT}:group:g-eng"
    assert groups["Engineering"].members == ("email:alice@corp.example", "email:bob@corp.example")
    assert groups["Partners"].members == ("email:erin@partner.example",)
    tenant.fail(f"{GRAPH}/groups/g-hr/transitiveMembers", status=403)
    with pytest.raises(ValueError, match="HR"):
        list(connector(tenant).list_groups())
    assert copy.deepcopy(tenant.scenario) == scenario()  # reading changed nothing
