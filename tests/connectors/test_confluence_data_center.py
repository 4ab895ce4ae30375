"""Confluence Data Center through the real sync and retrieval path, against a local stand-in of its REST v1 API
(tests/standins/confluence.py, ConfluenceDataCenterStandIn) serving the same site as the Cloud tests, with the same
oracle (tests/connectors/confluence_site.py): who reads what is worked out from the scenario, never from the
connector. What only Data Center has is tested on its own: a personal access token, a context path, start/limit
pages, ancestors read from `expand`, users without emails, space permissions from REST (9.1 and later) or from the
JSON-RPC remote API (before 9.0), anonymous access."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connectors import services as connectors
from connectors.base import Checkpoint, Cursor, Deleted, Permissions, SourceItem, SourceUnavailable
from connectors.models import Document
from connectors.sources import validated_config
from connectors.sources.confluence import (
    CLOCK_SKEW_MARGIN,
    UNKNOWN_ZONE_MARGIN,
    ConfluenceDataCenterConnector,
)
from core.errors import InvalidInput
from retrieval import services as retrieval_services
from tests.connectors.confluence_site import (
    USERS,
    check_matrix,
    churn,
    expected_matrix,
    indexed_ids,
    make_users,
    page,
    scenario,
    sync,
)
from tests.standins.confluence import ConfluenceDataCenterStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("encryption_key")]

PAT = "pat-do-not-log"
LISTED_AT = datetime(2025, 3, 2, 12, 0, 30, tzinfo=UTC)


def data_center_scenario() -> dict:
    site = scenario()
    # A space open to anonymous users and to nobody else.
    site["spaces"]["PUB"] = {"id": "800", "read": {"groups": [], "anonymous": True}}
    site["pages"]["801"] = page("PUB", None, "Visitor guide", "alpaca")
    return site


@pytest.fixture
def dc_site():
    with ConfluenceDataCenterStandIn(data_center_scenario(), pat=PAT, page_size=2) as server:
        yield server


def connector(server: ConfluenceDataCenterStandIn, **options) -> ConfluenceDataCenterConnector:
    return ConfluenceDataCenterConnector(server.site_url, api_token=PAT, **options)


def test_every_user_sees_exactly_what_data_center_lets_them_read_before_and_after_churn(backend_kind, dc_site):
    users = make_users()
    source = connectors.ensure_source("confluence", dc_site.site_url, name=f"confluence-dc-{backend_kind}",
                                      index_name=retrieval_services.get_backend().index_name,
                                      search_backend=backend_kind, config={"deployment": "data_center"},
                                      secrets={"api_token": PAT})
    sync(source)
    expected = expected_matrix(dc_site.scenario)
    assert expected["alice"] >= {"page:103", "page:104", "attachment:att901"}
    assert {u for u in USERS if "page:106" in expected[u]} == {"erin"}  # only through sre, nested in oncall
    assert "page:801" in indexed_ids(dc_site.scenario) and not any("page:801" in seen for seen in expected.values())
    check_matrix(users, source, dc_site.scenario)

    documents = {d.external_id: d for d in Document.objects.filter(source=source)}
    assert documents["page:302"].acl_status == "unknown" and documents["page:401"].acl_status == "unknown"
    # Anonymous access is a principal of its own, which nobody holds until an admin grants it.
    assert documents["page:801"].acl_status == "ok" and not documents["page:801"].acl_public
    assert documents["page:101"].url == f"{dc_site.site_url}/display/ENG/Engineering+handbook"
    assert documents["blogpost:601"].url == f"{dc_site.site_url}/display/ENG/2025/03/01/Release+notes"
    assert str(documents["page:101"].source_modified_at.date()) == "2025-03-01"
    # Listed by start/limit pages under the context path, with the token only in the Authorization header.
    requests = dc_site.requests
    assert all(r.path.startswith("/confluence/") for r in requests)
    assert any(r.path == "/confluence/rest/api/content" and r.query.get("start") not in (None, "0") for r in requests)
    assert not any(PAT in r.path or PAT in str(r.query) for r in requests)
    assert any(r.path == "/confluence/download/attachments/103/marmot-runbook.md" for r in requests)

    with dc_site.scenario_lock:
        churn(dc_site.scenario)
    sync(source)
    after = expected_matrix(dc_site.scenario)
    assert after != expected and {u for u in USERS if "page:107" in after[u]} == {"alice"}
    check_matrix(users, source, dc_site.scenario)


def portable(permissions: Permissions, server: ConfluenceDataCenterStandIn) -> Permissions:
    host = server.url.removeprefix("http://")
    return replace(permissions, principals=frozenset(p.replace(host, "SITE") for p in permissions.principals))


def test_space_permissions_before_9_1_come_from_the_remote_api_and_agree_with_rest():
    site = data_center_scenario()
    with ConfluenceDataCenterStandIn(copy.deepcopy(site), pat=PAT, version=(9, 2)) as rest, \
            ConfluenceDataCenterStandIn(copy.deepcopy(site), pat=PAT, version=(8, 5)) as remote:
        modern, older = connector(rest), connector(remote)
        ids = sorted(modern.list_ids())
        assert ids == sorted(older.list_ids()) == sorted(indexed_ids(site))
        for external in ids:  # the same readers (each stand-in is its own site, so its principals name it)
            assert portable(modern.fetch_permissions(external), rest) == portable(
                older.fetch_permissions(external), remote), external
        assert any(r.path == "/confluence/rpc/json-rpc/confluenceservice-v2/getSpacePermissionSets"
                   for r in remote.requests)
        assert not any("json-rpc" in r.path for r in rest.requests)
    readers = modern.fetch_permissions("page:105")  # restricted to hr in a space read by engineering and dave
    assert readers.status == "ok" and readers.principals == frozenset({"email:bob@corp.example"})
    host = rest.url.removeprefix("http://")
    assert modern.fetch_permissions("page:801").principals == frozenset({f"confluence:{host}:anonymous"})
    assert "'role'" in modern.fetch_permissions("page:401").reason  # a subject it cannot resolve: nobody

    # 9.0 has neither (the remote API is gone, the REST resource not yet there): every space's items are unknown.
    with ConfluenceDataCenterStandIn(copy.deepcopy(site), pat=PAT, version=(9, 0)) as neither:
        unknown = connector(neither)
        list(unknown.list_ids())
        found = unknown.fetch_permissions("page:101")
        assert found.status == "unknown" and not found.principals and "404" in found.reason


def test_anonymous_access_is_public_only_when_the_admin_says_so(dc_site):
    public = connector(dc_site, anonymous_access_is_public=True)
    list(public.list_ids())
    assert public.fetch_permissions("page:801").public
    # A restricted page in such a space is still read only by whom its restriction names.
    with dc_site.scenario_lock:
        dc_site.scenario["pages"]["802"] = page("PUB", "801", "Desk rota", "bison", {"users": ["u-carol"],
                                                                                     "groups": []})
    fresh = connector(dc_site, anonymous_access_is_public=True)
    list(fresh.list_ids())
    assert fresh.fetch_permissions("page:802").principals == frozenset({"email:carol@corp.example"})
    closed = connector(dc_site)
    list(closed.list_ids())
    assert closed.fetch_permissions("page:802").principals == frozenset()  # anonymous ∩ carol: nobody


def test_emails_come_from_the_profile_and_a_user_without_one_is_left_out(dc_site):
    with dc_site.scenario_lock:
        dc_site.scenario["users"]["u-alice"] = None  # her profile hides her email
    reader = connector(dc_site)
    list(reader.list_ids())
    restricted = reader.fetch_permissions("page:103")  # restricted to alice alone
    assert restricted.status == "ok" and restricted.principals == frozenset()
    assert reader.fetch_permissions("page:202").principals == frozenset(
        {f"confluence:{dc_site.url.removeprefix('http://')}:group:hr"})
    profiles = [r.path for r in dc_site.requests if r.path.startswith("/confluence/rest/mobile/1.0/profile/")]
    assert "/confluence/rest/mobile/1.0/profile/u-alice" in profiles and len(profiles) == len(set(profiles))
    groups = {g.name: g for g in reader.list_groups()}
    assert groups["engineering"].members == ("email:bob@corp.example", "email:erin@partner.example")


def test_a_personal_access_token_or_a_password_signs_in_and_a_wrong_one_fails_the_listing(dc_site):
    with pytest.raises(SourceUnavailable, match="401"):
        list(ConfluenceDataCenterConnector(dc_site.site_url, api_token="wrong").list_ids())
    assert PAT not in repr(connector(dc_site))
    with ConfluenceDataCenterStandIn(data_center_scenario(), username="citewise", password="hunter2") as basic:
        ids = set(ConfluenceDataCenterConnector(basic.site_url, username="citewise", api_token="hunter2").list_ids())
        assert ids == set(indexed_ids(basic.scenario))
        assert all(r.headers["authorization"].startswith("Basic ") for r in basic.requests)


def test_load_checkpoints_every_listing_page_and_resumes_at_its_start(dc_site):
    run = list(connector(dc_site, clock=lambda: LISTED_AT).load())
    checkpoints = [i for i, entry in enumerate(run) if isinstance(entry, Checkpoint)]
    listings = [r for r in dc_site.requests if r.path == "/confluence/rest/api/content"]
    assert len(checkpoints) == len(listings)
    assert isinstance(run[-1], Cursor) and run[-1].state == {"since": (LISTED_AT - CLOCK_SKEW_MARGIN).isoformat()}
    state = run[checkpoints[1]].state
    assert state["space"] == "ENG" and state["type"] == "page" and "start=4" in state["next"]
    assert state["next"].startswith("/rest/api/content?")  # relative to the context path
    dc_site.requests.clear()
    resumed = list(connector(dc_site).load(checkpoint=state))

    def ids(entries: list) -> list[str]:
        return [e.external_id for e in entries if isinstance(e, SourceItem)]

    assert ids(resumed) == ids(run[checkpoints[1] + 1:])
    eng = [r for r in dc_site.requests if r.path == "/confluence/rest/api/content" and r.query["spaceKey"] == "ENG"
           and r.query["type"] == "page"]
    assert eng and int(eng[0].query["start"]) == 4  # ENG's first listing pages were not asked again


def test_changes_search_cql_a_day_back_and_read_what_changed_with_its_ancestors(dc_site):
    since = datetime(2025, 3, 2, 11, 0, tzinfo=UTC)
    later = "2025-03-02T11:30:00Z"
    with dc_site.scenario_lock:
        dc_site.scenario["pages"]["104"] |= {"modified": later}  # under a restricted parent
        dc_site.scenario["pages"]["105"] |= {"modified": later, "status": "archived"}
        dc_site.scenario["attachments"]["att904"] |= {"modified": later}
        dc_site.scenario["pages"]["201"] |= {"modified": "2025-03-01T12:00:00Z"}  # long before
    now = datetime(2025, 3, 2, 12, 30, tzinfo=UTC)
    reader = connector(dc_site, clock=lambda: now)
    run = list(reader.changes({"since": since.isoformat()}))
    assert {e.external_id for e in run if isinstance(e, SourceItem)} == {"page:104", "attachment:att904"}
    assert [e.external_id for e in run if isinstance(e, Deleted)] == ["page:105"]
    assert run[-1] == Cursor({"since": (now - CLOCK_SKEW_MARGIN).isoformat()})
    search = next(r for r in dc_site.requests if r.path == "/confluence/rest/api/content/search")
    # Data Center does not show the account's time zone: the bound goes back by the widest offset.
    assert f'lastmodified >= "{(since - UNKNOWN_ZONE_MARGIN):%Y/%m/%d %H:%M}"' in search.query["cql"]
    assert json.loads(search.query["cqlcontext"]) == {"contentStatuses": ["current", "archived"]}
    assert reader.fetch_permissions("page:104").principals == frozenset({"email:alice@corp.example"})
    assert reader.fetch_permissions("attachment:att904") == reader.fetch_permissions("page:202")


def test_a_storm_of_429s_on_data_center_loses_nothing_and_waits_as_told():
    with ConfluenceDataCenterStandIn(data_center_scenario(), pat=PAT) as calm:
        expected = {i.external_id: i.read() for i in connector(calm).load() if isinstance(i, SourceItem)}
    with ConfluenceDataCenterStandIn(data_center_scenario(), pat=PAT, throttle_every=3,
                                     retry_afters=(1.0, 2.5, 0.5)) as stormy:
        waits: list[float] = []
        reader = connector(stormy, sleep=waits.append)
        loaded = {i.external_id: i.read() for i in reader.load() if isinstance(i, SourceItem)}
        permissions = {external: reader.fetch_permissions(external) for external in loaded}
        assert len(stormy.throttled) > 20 and waits == stormy.throttled
    assert loaded == expected and any(e.startswith("attachment:") for e in loaded)
    assert all(p.status == "ok" for e, p in permissions.items() if e not in {"page:302", "page:303", "page:401"})


def test_settings_name_the_deployment_and_its_own_credentials():
    assert validated_config("confluence", {"deployment": "data_center"}).deployment == "data_center"
    assert validated_config("confluence", {"email": "bot@corp.example"}).deployment == "cloud"
    for wrong, problem in (({"deployment": "data_center", "email": "bot@corp.example"}, "personal access token"),
                           ({}, "needs `email`"),
                           ({"email": "bot@corp.example", "username": "bot"}, "Data Center settings"),
                           ({"deployment": "server 7"}, "deployment")):
        with pytest.raises(InvalidInput, match=problem):
            validated_config("confluence", wrong)
