"""Confluence Cloud through the real sync and retrieval path, against a local stand-in of its REST API.

Who may read each page, blog post and attachment comes from the test's own reading of the scenario (the oracle in
tests/connectors/confluence_site.py), never from the connector. Every user then searches the token every item
shares, on both backends, and must get exactly those items: no leak, no wrong denial; and again after the site
churns.

The connector's own capabilities (checkpoints and resume, incremental changes over CQL, archived spaces, nested
groups, attachment downloads and throttling) are tested by calling it directly and reading the stand-in's log.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

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
from connectors.models import Document
from connectors.sources.confluence import CLOCK_SKEW_MARGIN, UNKNOWN_ZONE_MARGIN, ConfluenceConnector
from retrieval import services as retrieval_services
from tests.connectors.confluence_site import (
    API_TOKEN,
    EMAIL,
    TOKEN,
    USERS,
    check_matrix,
    churn,
    expected_matrix,
    indexed_ids,
    make_users,
    scenario,
    sync,
)
from tests.standins.confluence import ConfluenceStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("encryption_key")]

LISTED_AT = datetime(2025, 3, 2, 12, 0, 30, tzinfo=UTC)

# -- the product -------------------------------------------------------------------------------------------------


@pytest.fixture
def site():
    with ConfluenceStandIn(scenario(), email=EMAIL, api_token=API_TOKEN, page_size=2) as server:
        yield server


def test_every_user_sees_exactly_what_confluence_lets_them_read_before_and_after_churn(backend_kind, site):
    users = make_users()
    source = connectors.ensure_source("confluence", site.url, name=f"confluence-{backend_kind}",
                                      index_name=retrieval_services.get_backend().index_name,
                                      search_backend=backend_kind, config={"email": EMAIL},
                                      secrets={"api_token": API_TOKEN})
    sync(source)
    expected = expected_matrix(site.scenario)
    # The scenario exercises what it means to: a restricted page under an open parent, inheritance, a 403, blog
    # posts, an attachment under a restricted page, a nested group, an archived space.
    assert expected["alice"] >= {"page:103", "page:104", "attachment:att901"}
    assert not {"page:103", "attachment:att901"} & (expected["bob"] | expected["dave"])
    assert expected["dave"] >= {"page:101", "page:102", "blogpost:601", "attachment:att902"}
    assert all(not {"page:302", "page:303", "page:401"} & items for items in expected.values())
    assert {u for u in USERS if "page:106" in expected[u]} == {"erin"}  # only through sre, nested in oncall
    assert {u for u in USERS if "blogpost:602" in expected[u]} == {"carol"}
    assert "page:501" not in indexed_ids(site.scenario) and "attachment:att903" not in indexed_ids(site.scenario)
    check_matrix(users, source, site.scenario)

    documents = {d.external_id: d for d in Document.objects.filter(source=source)}
    assert documents["page:302"].acl_status == "unknown" and documents["page:303"].acl_status == "unknown"
    assert documents["page:401"].acl_status == "unknown"
    assert documents["page:101"].url == f"{site.url}/wiki/spaces/ENG/pages/101/Engineering+handbook"
    assert documents["page:101"].title == "Engineering handbook"
    assert str(documents["page:101"].source_modified_at.date()) == "2025-03-01"
    assert documents["blogpost:601"].url == f"{site.url}/wiki/spaces/ENG/blog/2025/03/01/601/Release+notes"
    assert documents["attachment:att901"].mime_type == "text/markdown"
    assert documents["attachment:att901"].url.startswith(f"{site.url}/wiki/pages/viewpageattachments.action")
    # Both kinds of listing paginated (page size 2), and the token went only in the Authorization header.
    assert any("cursor" in r.query for r in site.requests) and any("start" in r.query for r in site.requests)
    assert not any(API_TOKEN in r.path or API_TOKEN in str(r.query) for r in site.requests)
    # Downloads went through the attachment's link and its redirect off the API, never for an unread type.
    assert any(r.path.startswith("/media/att901") for r in site.requests)
    assert not any("diagram.png" in r.path or r.path == "/media/att903" for r in site.requests)

    with site.scenario_lock:
        churn(site.scenario)
    sync(source)
    after = expected_matrix(site.scenario)
    assert after != expected and "page:201" not in after["bob"]
    # 101 is now restricted to engineering: dave, granted the space by name, reads it only as a new member of sre,
    # a group nested in engineering.
    assert "page:101" in after["dave"] and "u-dave" not in site.scenario["groups"]["engineering"]
    assert {u for u in USERS if "page:107" in expected[u]} == {"alice", "bob", "dave", "erin"}
    assert {u for u in USERS if "page:107" in after[u]} == {"alice"}
    assert {u for u in USERS if "page:106" in after[u]} == {"dave", "erin"}
    assert {u for u in USERS if "page:303" in after[u]} == {"carol"}  # readable again, by whom 302 now allows
    assert not {"page:102", "blogpost:602", "attachment:att905", "attachment:att902", "page:701"} & set(
        indexed_ids(site.scenario))
    check_matrix(users, source, site.scenario)


def test_a_forbidden_restriction_lookup_hides_the_page_and_says_why(site):
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    ids = list(connector.list_ids())
    assert sorted(ids) == sorted(indexed_ids(site.scenario))
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
    assert connector.fetch_permissions("attachment:att904") == connector.fetch_permissions("page:202")
    assert connector.fetch_permissions("page:106").principals == frozenset({"email:erin@partner.example"})
    assert "tok-do-not-log" not in repr(connector)


def test_throttling_is_honoured_with_retry_after_and_a_wrong_token_fails_the_listing(site):
    waits: list[float] = []
    site.fail("/wiki/api/v2/spaces", status=429, retry_after=3)
    site.fail("/wiki/api/v2/pages", status=503, retry_after=1)
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, sleep=waits.append)
    assert sorted(connector.list_ids()) == sorted(indexed_ids(site.scenario))
    assert waits == [3.0, 1.0]

    with pytest.raises(SourceUnavailable, match="401"):
        list(ConfluenceConnector(site.url, email=EMAIL, api_token="wrong", sleep=waits.append).list_ids())


def test_a_storm_of_429s_loses_nothing_and_waits_as_told():
    with ConfluenceStandIn(scenario(), email=EMAIL, api_token=API_TOKEN, page_size=2) as calm:
        expected = {item.external_id: item.read() for item in ConfluenceConnector(
            calm.url, email=EMAIL, api_token=API_TOKEN).load() if isinstance(item, SourceItem)}
    with ConfluenceStandIn(scenario(), email=EMAIL, api_token=API_TOKEN, page_size=2, throttle_every=3,
                           retry_afters=(1.0, 2.5, 0.5)) as stormy:
        waits: list[float] = []
        connector = ConfluenceConnector(stormy.url, email=EMAIL, api_token=API_TOKEN, sleep=waits.append)
        loaded = {item.external_id: item.read() for item in connector.load() if isinstance(item, SourceItem)}
        permissions = {external: connector.fetch_permissions(external) for external in loaded}
        assert len(stormy.throttled) > 20 and waits == stormy.throttled
    assert loaded == expected and any(e.startswith("attachment:") for e in loaded)
    assert all(p.status == "ok" for e, p in permissions.items() if e not in {"page:302", "page:303", "page:401"})


def test_groups_sync_as_source_scoped_principals_with_email_members_and_nested_groups(site):
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    groups = {g.name: g for g in connector.list_groups()}
    assert set(groups) == set(site.scenario["groups"])
    assert groups["engineering"].principal.endswith(":group:engineering")
    site_name = site.url.removeprefix("http://")
    assert groups["engineering"].members == ("email:alice@corp.example", "email:bob@corp.example",
                                             f"confluence:{site_name}:group:sre")
    assert groups["oncall"].members == (f"confluence:{site_name}:group:sre",)
    assert copy.deepcopy(site.scenario) == scenario()  # reading changed nothing


# -- checkpoints and resume ----------------------------------------------------------------------------------------


def test_load_checkpoints_every_listing_page_and_resumes_without_listing_again(site):
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, clock=lambda: LISTED_AT)
    run = list(connector.load())
    checkpoints = [i for i, entry in enumerate(run) if isinstance(entry, Checkpoint)]
    # One per listing page: ENG has 7 pages (4 listing pages of 2) and 1 blog post, and so on.
    pages_requests = [r for r in site.requests if r.path in ("/wiki/api/v2/pages", "/wiki/api/v2/blogposts")]
    assert len(checkpoints) == len(pages_requests)
    assert isinstance(run[-1], Cursor) and run[-1].state == {"since": (LISTED_AT - CLOCK_SKEW_MARGIN).isoformat()}
    for index in checkpoints:
        state = run[index].state
        assert len(json.dumps(state)) < 500 and state["started"] == LISTED_AT.isoformat()
    # Stop after the second ENG page listing: resume picks up at its next link.
    stop = checkpoints[1]
    state = run[stop].state
    assert state["space"] == "100" and state["type"] == "page" and "cursor=" in state["next"]
    site.requests.clear()
    later = LISTED_AT + timedelta(hours=1)
    resumed = list(ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, clock=lambda: later).load(
        checkpoint=state))

    def ids(entries: list) -> list[str]:
        return [e.external_id for e in entries if isinstance(e, SourceItem)]

    assert ids(resumed) == ids(run[stop + 1:])
    assert resumed[-1] == run[-1]  # the cursor is still when the first run began
    listed = [r for r in site.requests if r.path == "/wiki/api/v2/pages" and r.query.get("space-id") == "100"]
    assert listed and all("cursor" in r.query for r in listed)  # ENG's first listing pages were not asked again
    assert listed[0].query["cursor"] == parse_qs(urlsplit(state["next"]).query)["cursor"][0]
    # A checkpoint at the end of a listing resumes at the next content type.
    blog_start = next(i for i in checkpoints if run[i].state["type"] == "page" and run[i].state["next"] is None)
    again = list(ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).load(
        checkpoint=run[blog_start].state))
    assert ids(again) == ids(run[blog_start + 1:])


def test_an_incomplete_listing_yields_no_cursor_and_a_resumed_run_still_reports_it(site):
    site.fail("/wiki/api/v2/blogposts", status=500)
    run: list = []
    with pytest.raises(IncompleteListing, match="unlistable_blogposts"):
        for entry in ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).load():
            run.append(entry)
    assert not any(isinstance(e, Cursor) for e in run)
    last = [e for e in run if isinstance(e, Checkpoint)][-1]
    assert last.state["problems"]
    resumed: list = []
    with pytest.raises(IncompleteListing, match="unlistable_blogposts"):
        for entry in ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).load(checkpoint=last.state):
            resumed.append(entry)
    assert not any(isinstance(e, Cursor) for e in resumed)


# -- incremental changes -------------------------------------------------------------------------------------------


def test_changes_reads_what_cql_shows_changed_and_deletes_what_it_shows_archived(site):
    site.scenario["time_zone"] = "Europe/Berlin"  # CQL minutes are the account's: UTC+1 in March
    since = datetime(2025, 3, 2, 11, 0, tzinfo=UTC)
    later = "2025-03-02T11:30:00Z"
    with site.scenario_lock:
        site.scenario["pages"]["102"] |= {"modified": later, "body": f"<p>The {TOKEN} lantern v2 procedure.</p>"}
        site.scenario["pages"]["104"] |= {"modified": later}  # an edit under a restricted parent
        site.scenario["pages"]["105"] |= {"modified": later, "status": "archived"}
        site.scenario["pages"]["107"] |= {"modified": later, "status": "trashed"}  # CQL cannot show it
        site.scenario["blogposts"]["601"] |= {"modified": later}
        site.scenario["attachments"]["att904"] |= {"modified": later}
        site.scenario["pages"]["501"] |= {"modified": later}  # in an archived space: not searched
        site.scenario["pages"]["701"] |= {"modified": "2025-03-02T11:59:00Z"}
        site.scenario["pages"]["201"] |= {"modified": "2025-03-02T10:59:00Z"}  # before the cursor
    now = datetime(2025, 3, 2, 12, 30, tzinfo=UTC)
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, clock=lambda: now)
    run = list(connector.changes({"since": since.isoformat()}))
    items = {e.external_id: e for e in run if isinstance(e, SourceItem)}
    assert set(items) == {"page:102", "page:104", "blogpost:601", "attachment:att904", "page:701"}
    assert [e.external_id for e in run if isinstance(e, Deleted)] == ["page:105"]
    assert b"lantern v2" in items["page:102"].read() and b"rowan checklist" in items["attachment:att904"].read()
    assert run[-1] == Cursor({"since": (now - CLOCK_SKEW_MARGIN).isoformat()})
    searches = [r for r in site.requests if r.path == "/wiki/rest/api/content/search"]
    assert searches[0].query["cql"] == ('lastmodified >= "2025/03/02 12:00" and type in (page, blogpost, attachment)'
                                        ' and space in ("ALL", "ARC", "ENG", "HR", "OPS")')
    assert json.loads(searches[0].query["cqlcontext"]) == {"contentStatuses": ["current", "archived"]}
    # The changed page's permissions need its ancestors, which this run did not list: read on demand, and the
    # same as a full listing's.
    full = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    list(full.list_ids())
    for external in items:
        assert connector.fetch_permissions(external) == full.fetch_permissions(external), external
    assert connector.fetch_permissions("page:104").principals == frozenset({"email:alice@corp.example"})

    # Resuming from the first checkpoint asks for the next result page only.
    first = next(e for e in run if isinstance(e, Checkpoint))
    assert first.state["next"] and len(json.dumps(first.state)) < 1000
    site.requests.clear()
    resumed = list(ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).changes(
        {"since": since.isoformat()}, checkpoint=first.state))
    searched = [r for r in site.requests if r.path == "/wiki/rest/api/content/search"]
    assert searched and all("cursor" in r.query for r in searched)
    after_first = run[run.index(first) + 1:]
    assert [getattr(e, "external_id", None) for e in resumed] == [getattr(e, "external_id", None) for e in after_first]
    assert resumed[-1] == run[-1]


def test_changes_search_a_day_further_back_when_the_account_time_zone_is_hidden(site):
    site.scenario["time_zone_hidden"] = True
    site.scenario["time_zone"] = "Pacific/Kiritimati"  # UTC+14, the widest
    since = datetime(2025, 3, 2, 11, 0, tzinfo=UTC)
    with site.scenario_lock:
        site.scenario["pages"]["102"] |= {"modified": "2025-03-02T11:01:00Z"}
    changed = list(ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).changes(
        {"since": since.isoformat()}))
    assert "page:102" in {e.external_id for e in changed if isinstance(e, SourceItem)}
    search_request = next(r for r in site.requests if r.path == "/wiki/rest/api/content/search")
    assert f'lastmodified >= "{(since - UNKNOWN_ZONE_MARGIN):%Y/%m/%d %H:%M}"' in search_request.query["cql"]


def test_a_cursor_without_a_time_expires_and_unknown_cql_is_refused(site):
    with pytest.raises(CursorExpired):
        list(ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN).changes({"deltaLink": "x"}))
    refused = httpx.get(f"{site.url}/wiki/rest/api/content/search", auth=(EMAIL, API_TOKEN),
                        params={"cql": 'text ~ "zephyr" and type in (page)'})
    assert refused.status_code == 400
    refused = httpx.get(f"{site.url}/wiki/rest/api/content/search", auth=(EMAIL, API_TOKEN),
                        params={"cql": "type in (page)", "cqlcontext": '{"contentStatuses": ["trashed"]}'})
    assert refused.status_code == 400


# -- spaces, attachments --------------------------------------------------------------------------------------------


def test_archived_spaces_are_left_out_unless_configured(site):
    default = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    assert "page:501" not in set(default.list_ids())
    assert all(r.query.get("status") == "current" for r in site.requests if r.path == "/wiki/api/v2/spaces")
    included = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN, include_archived_spaces=True)
    assert "page:501" in set(included.list_ids())
    assert included.fetch_permissions("page:501").status == "ok"


def test_an_attachment_over_the_size_limit_is_never_downloaded(site, settings, backend_kind):
    site.scenario["attachments"]["att901"]["data"] = "# Big\n\n" + "zephyr " * 400
    settings.CITEWISE = settings.CITEWISE.replace(max_file_bytes=1000)
    source = connectors.ensure_source("confluence", site.url, name="confluence-limits",
                                      index_name=retrieval_services.get_backend().index_name,
                                      search_backend=backend_kind, config={"email": EMAIL},
                                      secrets={"api_token": API_TOKEN})
    report = connectors.sync_source(source)
    assert report.failed == 1 and report.listing_complete
    big = Document.objects.get(source=source, external_id="attachment:att901")
    assert big.status == Document.Status.ERROR and "too_large" in big.error
    assert not any("marmot-runbook" in r.path or r.path == "/media/att901" for r in site.requests)
    assert any(r.path == "/media/att904" for r in site.requests)


def test_a_download_longer_than_listed_is_cut_off(site):
    site.scenario["attachments"]["att904"]["fileSize"] = 10  # the listing understates the file
    connector = ConfluenceConnector(site.url, email=EMAIL, api_token=API_TOKEN)
    item = next(i for i in connector.load() if isinstance(i, SourceItem) and i.external_id == "attachment:att904")
    assert item.size_bytes == 10
    with pytest.raises(ItemError, match="too_large"):
        item.read()


def test_a_citation_links_to_its_section_the_way_confluence_names_headings(site, backend_kind):
    """Reproduces what issue 13 asked ("page URLs with section anchors"): citations added a Markdown-style anchor
    (`#getting-started-v2`), which Confluence pages do not have; Confluence Cloud's heading ids keep the words' case
    and punctuation, joined by "-"."""
    with site.scenario_lock:
        site.scenario["pages"]["108"] = {
            "space": "ALL", "parent": None, "title": "Ferry handbook", "restrict": None,
            "body": "<h1>Ferry handbook</h1><p>Boarding rules.</p><h2>Getting Started (v2)</h2>"
                    "<p>The ferry pilgrim ticket is bought at the harbour kiosk before seven.</p>"}
    source = connectors.ensure_source("confluence", site.url, config={"email": EMAIL}, secrets={"api_token": API_TOKEN})
    connectors.sync_source(source)
    result = ask("Where do I buy the ferry pilgrim ticket?",
                 principals=frozenset({f"confluence:{site.url.split('//')[1].lower()}:group:staff"}))
    assert not result.refused, result.text
    [citation] = [c for c in result.citations if "Ferry" in c.title]
    assert citation.url.endswith("/spaces/ALL/pages/108/Ferry+handbook#Getting-Started-(v2)"), citation.url
