"""Confluence Cloud through the real sync and retrieval path, against a local stand-in of its REST API.

Who may read each page comes from the test's own reading of the scenario (`readers`, plain set logic over the
scenario dict), never from the connector: the space's read grant AND every restricted ancestor AND the page's own
restriction, nobody for a page whose restriction (or an ancestor's) cannot be read, nobody in a space granting to
a principal type the connector does not know. Every user then searches the token every page shares, on both
backends, and must get exactly those pages: no leak, no wrong denial; and again after the site churns.
"""

from __future__ import annotations

import copy

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model

from answers.services import ask
from connectors import services as connectors
from connectors.models import Document, Source
from connectors.sources.confluence import ConfluenceConnector
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from search.types import SearchMode
from tests.standins.confluence import ConfluenceStandIn

pytestmark = pytest.mark.django_db

TOKEN = "zephyr"
EMAIL, API_TOKEN = "citewise-bot@corp.example", "tok-do-not-log"
USERS = {"alice": "u-alice", "bob": "u-bob", "carol": "u-carol", "dave": "u-dave", "erin": "u-erin"}


def page(space: str, parent: str | None, title: str, word: str, restrict: dict | None = None) -> dict:
    body = (f"<h1>{title}</h1><p>The {TOKEN} {word} procedure: ask the {word} desk before the {word} review.</p>"
            f'<ac:structured-macro ac:name="info"><ac:rich-text-body><p>{word} note</p></ac:rich-text-body>'
            f"</ac:structured-macro>")
    return {"space": space, "parent": parent, "title": title, "body": body, "restrict": restrict}


def scenario() -> dict:
    return {
        # Emails in mixed case: principals are lower-cased.
        "users": {"u-alice": "Alice@Corp.example", "u-bob": "bob@corp.example", "u-carol": "carol@corp.example",
                  "u-dave": "dave@corp.example", "u-erin": "erin@partner.example", "u-admin": "admin@corp.example"},
        "groups": {"engineering": ["u-alice", "u-bob"], "hr": ["u-bob", "u-carol"],
                   "staff": ["u-alice", "u-bob", "u-carol", "u-dave"], "contractors": ["u-erin"]},
        "spaces": {
            "ENG": {"id": "100", "read": {"groups": ["engineering"], "users": ["u-dave"]}},
            "HR": {"id": "200", "read": {"groups": ["hr"]}},
            "ALL": {"id": "300", "read": {"groups": ["staff", "contractors"]}},
            # Read also granted to a role: the connector cannot say who holds it, so nobody reads the space.
            "OPS": {"id": "400", "read": {"groups": ["staff"], "other": [{"type": "role", "id": "r-ops"}]}},
        },
        "pages": {
            "101": page("ENG", None, "Engineering handbook", "kestrel"),
            "102": page("ENG", "101", "Deploys", "lantern"),
            # A restricted page under an open parent, and its child inheriting the restriction.
            "103": page("ENG", "101", "Incident secrets", "marmot", {"users": ["u-alice"], "groups": []}),
            "104": page("ENG", "103", "Incident follow-ups", "nebula"),
            "105": page("ENG", "101", "Engineering salaries", "oriole", {"users": [], "groups": ["hr"]}),
            "201": page("HR", None, "People handbook", "quartz"),
            "202": page("HR", "201", "Reviews", "rosehip", {"users": ["u-dave"], "groups": ["hr"]}),
            "301": page("ALL", None, "Office guide", "saffron"),
            "302": page("ALL", "301", "Board minutes", "tundra"),
            "303": page("ALL", "302", "Board actions", "umber"),
            "401": page("OPS", None, "Ops rota", "vervain"),
        },
        "forbidden": {"302"},  # the restriction lookup of 302 gets 403
    }


# -- the oracle: straight from the scenario, no connector code ---------------------------------------------------


def allowed(site: dict, grant: dict) -> set[str]:
    """Account ids a grant names, directly or through a group."""
    members = {u for g in grant.get("groups", []) for u in site["groups"].get(g, [])}
    return set(grant.get("users", [])) | members


def readers(site: dict, page_id: str) -> set[str]:
    entry = site["pages"][page_id]
    space = site["spaces"][entry["space"]]
    if space["read"].get("other"):
        return set()
    who = allowed(site, space["read"])
    current: str | None = page_id
    while current is not None:
        if current in site["forbidden"]:
            return set()
        restrict = site["pages"][current]["restrict"]
        if restrict is not None:
            who &= allowed(site, restrict)
        current = site["pages"][current]["parent"]
    return who


def expected_matrix(site: dict) -> dict[str, set[str]]:
    return {user: {p for p in site["pages"] if account in readers(site, p)} for user, account in USERS.items()}


# -- the product -------------------------------------------------------------------------------------------------


@pytest.fixture
def backend_kind(configured_backend: str) -> str:
    """Each backend in turn, configured with a fresh index (tests/conftest.py)."""
    return configured_backend


@pytest.fixture(autouse=True)
def encryption_key(settings) -> None:
    """The API token is stored encrypted (connectors/secrets.py)."""
    settings.CITEWISE = settings.CITEWISE.replace(encryption_key=Fernet.generate_key().decode())


@pytest.fixture
def site():
    with ConfluenceStandIn(scenario(), email=EMAIL, api_token=API_TOKEN, page_size=2) as server:
        yield server


def make_users() -> dict:
    users = {}
    for name, account in USERS.items():
        user = get_user_model().objects.create_user(name, password="pw")
        Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
        email = scenario()["users"][account]
        ExternalIdentity.objects.create(user=user, principal=f"email:{email}")
        users[name] = user
    return users


def sync(source: Source) -> None:
    report = connectors.sync_source(source)
    assert report.failed == 0 and report.listing_complete, report.errors
    connectors.sync_permissions(source)


def visible(users: dict, source: Source, mode: SearchMode) -> dict[str, set[str]]:
    external = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
    seen = {}
    for name, user in users.items():
        hits = search(TOKEN, principals=principals_for(user), mode=mode, limit=1000)
        seen[name] = {external[h.document_id].removeprefix("page:") for h in hits}
    return seen


def check_matrix(users: dict, source: Source, site_scenario: dict) -> None:
    expected = expected_matrix(site_scenario)
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == {
        f"page:{p}" for p in site_scenario["pages"]}
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        seen = visible(users, source, mode)
        leaks = {u: seen[u] - expected[u] for u in users if seen[u] - expected[u]}
        denials = {u: expected[u] - seen[u] for u in users if expected[u] - seen[u]}
        assert not leaks and not denials, (mode, leaks, denials)
    # Answers cite only what the asker may read.
    urls = dict(Document.objects.filter(source=source).values_list("external_id", "url"))
    for name, user in users.items():
        readable = {urls[f"page:{p}"] for p in expected[name]}
        result = ask("What is the marmot procedure and the rosehip procedure?", principals=principals_for(user),
                     user=user)
        assert {c.url.split("#", 1)[0] for c in result.citations} <= readable, (name, result.citations)


def test_every_user_sees_exactly_the_pages_confluence_lets_them_read_before_and_after_churn(backend_kind, site):
    users = make_users()
    source = connectors.ensure_source("confluence", site.url, name=f"confluence-{backend_kind}",
                                      index_name=retrieval_services.get_backend().index_name,
                                      search_backend=backend_kind, config={"email": EMAIL},
                                      secrets={"api_token": API_TOKEN})
    sync(source)
    expected = expected_matrix(site.scenario)
    # The scenario exercises what it means to: a restricted page under an open parent, inheritance, a 403.
    assert expected["alice"] >= {"103", "104"} and "103" not in expected["bob"] and "103" not in expected["dave"]
    assert expected["dave"] >= {"101", "102"} and all(not {"302", "303", "401"} & pages for pages in expected.values())
    check_matrix(users, source, site.scenario)

    documents = {d.external_id: d for d in Document.objects.filter(source=source)}
    assert documents["page:302"].acl_status == "unknown" and documents["page:303"].acl_status == "unknown"
    assert documents["page:401"].acl_status == "unknown"
    assert documents["page:101"].url == f"{site.url}/wiki/spaces/ENG/pages/101/Engineering+handbook"
    assert documents["page:101"].title == "Engineering handbook"
    assert str(documents["page:101"].source_modified_at.date()) == "2025-03-01"
    # Both kinds of listing paginated (page size 2), and the token went only in the Authorization header.
    assert any("cursor" in r.query for r in site.requests) and any("start" in r.query for r in site.requests)
    assert not any(API_TOKEN in r.path or API_TOKEN in str(r.query) for r in site.requests)

    with site.scenario_lock:
        site.scenario["pages"]["101"]["restrict"] = {"users": [], "groups": ["engineering"]}  # on a parent
        site.scenario["groups"]["hr"].remove("u-bob")
        del site.scenario["pages"]["102"]
        site.scenario["forbidden"] = set()
    sync(source)
    after = expected_matrix(site.scenario)
    assert after != expected and "101" not in after["dave"] and "201" not in after["bob"]
    assert "303" in after["alice"]  # readable again once its ancestor's restriction can be read
    check_matrix(users, source, site.scenario)


def test_a_forbidden_restriction_lookup_hides_the_page_and_says_why(site):
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    ids = list(connector.list_ids())
    assert ids == [f"page:{p}" for p in sorted(site.scenario["pages"])]
    forbidden = connector.fetch_permissions("page:302")
    assert forbidden.status == "unknown" and not forbidden.principals and not forbidden.public
    assert "403" in forbidden.reason and "302" in forbidden.reason
    inherited = connector.fetch_permissions("page:303")
    assert inherited.status == "unknown" and "302" in inherited.reason
    assert "role" in connector.fetch_permissions("page:401").reason
    # Restricted to hr inside a space read by engineering and dave: only who is in both.
    assert connector.fetch_permissions("page:105").principals == frozenset({"email:bob@corp.example"})
    # A group every layer names stays a group, expanded at query time.
    site_name = site.url.removeprefix("http://")
    assert connector.fetch_permissions("page:202").principals == frozenset({f"confluence:{site_name}:group:hr"})
    assert "tok-do-not-log" not in repr(connector)


def test_throttling_is_honoured_with_retry_after_and_a_wrong_token_fails_the_listing(site):
    waits: list[float] = []
    site.fail("/wiki/api/v2/spaces", status=429, retry_after=3)
    site.fail("/wiki/api/v2/pages", status=503, retry_after=1)
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, sleep=waits.append)
    assert len(list(connector.list_ids())) == len(site.scenario["pages"])
    assert waits == [3.0, 1.0]

    from connectors.base import SourceUnavailable

    with pytest.raises(SourceUnavailable, match="401"):
        list(ConfluenceConnector(site.url, email=EMAIL, api_token="wrong", sleep=waits.append).list_ids())


def test_groups_sync_as_source_scoped_principals_with_email_members(site):
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    groups = {g.name: g for g in connector.list_groups()}
    assert set(groups) == set(site.scenario["groups"])
    assert groups["engineering"].principal.endswith(":group:engineering")
    assert groups["engineering"].members == ("email:alice@corp.example", "email:bob@corp.example")
    assert copy.deepcopy(site.scenario) == scenario()  # reading changed nothing
