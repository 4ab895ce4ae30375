"""Websites through the real sync and retrieval path, against a local stand-in of a site (tests/standins/website.py):
what a crawl reaches (start URL, links within the prefixes and depth, sitemaps; not what robots.txt disallows, not
off the site, not noindex, canonical duplicates once) is worked out from the scenario by the test itself; who may
read it is the source's setting (the whole company, or the principals an admin names), on both backends."""

from __future__ import annotations

import uuid
from collections import deque
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model

from connectors import services as connectors
from connectors.base import Checkpoint, Cursor, SourceItem
from connectors.models import Document, Source, SyncRun
from connectors.sources import validated_config
from connectors.sources.web import Config, WebConnector
from core.errors import InvalidInput
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from search.types import SearchMode
from tests.connectors.conftest import kill_sync_midway
from tests.standins.base import Reply, hang
from tests.standins.website import BOILERPLATE_WORD, WebsiteStandIn
from tests.workers import shared_database, worker_environment  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

TOKEN = "zephyr"
MAX_DEPTH = 2


def page(title: str, word: str, links: tuple[str, ...] = (), **extra) -> dict:
    text = (f"<p>The {TOKEN} {word} policy explains how the {word} desk handles a request from start to finish.</p>"
            f"<p>Ask the {word} desk before the {word} review, and keep the {word} form with the ticket.</p>")
    return {"title": title, "text": text, "links": list(links), "modified": "2025-03-01T10:00:00Z", **extra}


def scenario() -> dict:
    return {
        "robots": "User-agent: *\nDisallow: /docs/private/\nSitemap: /sitemap.xml\n",
        "sitemaps": {"/sitemap.xml": {"index": ["/sitemap-docs.xml.gz"]},
                     "/sitemap-docs.xml.gz": {"urls": ["/docs/orphan", "/blog/from-sitemap"], "gzip": True}},
        "pages": {
            "/docs/": page("Handbook", "kestrel", (
                "/docs/shipping", "/docs/returns", "/docs/private/salaries", "/blog/news", "/docs/guide.md",
                "/docs/moved", "/docs/hub", "/docs/diagram.png", "https://elsewhere.invalid/x",
                "/docs/shipping?utm_source=newsletter#rates")),
            "/docs/shipping": page("Shipping", "lantern"),
            "/docs/returns": page("Returns", "marmot", ("/docs/returns/deep",)),
            "/docs/returns/deep": page("Deep returns", "nebula", ("/docs/returns/deeper",)),
            "/docs/returns/deeper": page("Deeper returns", "oriole"),  # three links away: past max_depth
            "/docs/private/salaries": page("Salaries", "plover"),  # robots.txt disallows it
            "/blog/news": page("News", "quartz"),  # off the prefix
            "/blog/from-sitemap": page("Blog", "quartz"),  # in the sitemap, still off the prefix
            "/docs/guide.md": {"type": "text/markdown", "data": f"# Guide\n\nThe {TOKEN} rosehip guide.\n"},
            "/docs/diagram.png": {"type": "image/png", "data": b"\x89PNG..."},
            "/docs/moved": {"redirect": "/docs/new-home"},
            "/docs/new-home": page("New home", "saffron"),
            "/docs/hub": {"title": "Hub", "text": "", "links": ["/docs/shipping-print", "/docs/draft"]},
            "/docs/shipping-print": page("Shipping", "lantern", canonical="/docs/shipping"),
            "/docs/draft": page("Draft", "tundra", meta_robots="noindex"),
            "/docs/orphan": page("Orphan", "umber"),  # linked from nowhere: the sitemap names it
        },
    }


# -- the oracle: straight from the scenario ----------------------------------------------------------------------


def expected_paths(site: dict, max_depth: int = MAX_DEPTH) -> set[str]:
    """Paths of the documents a crawl of /docs/ should index: reached within max_depth links (or named by the
    sitemap), within /docs/, not disallowed, redirects followed, pages with text and without noindex, canonical
    duplicates under their canonical path."""
    pages = site["pages"]
    sitemap_urls = [u for entry in site["sitemaps"].values() for u in entry.get("urls", [])]
    queue = deque([("/docs/", 0), *((u, 0) for u in sitemap_urls)])
    reached: set[str] = set()
    indexed: set[str] = set()
    while queue:
        path, depth = queue.popleft()
        path = urlsplit(path).path if not path.startswith("http") else path
        if path in reached or not path.startswith("/docs/") or path.startswith("/docs/private/"):
            continue
        reached.add(path)
        entry = pages.get(path)
        while entry is not None and entry.get("redirect"):
            path = entry["redirect"]
            entry = pages.get(path)
        if entry is None or entry.get("status"):
            continue
        if "data" in entry:
            if entry["type"] in ("text/markdown", "text/plain", "application/pdf"):
                indexed.add(path)
            continue
        if entry.get("text") and "noindex" not in entry.get("meta_robots", ""):
            indexed.add(entry.get("canonical") or path)
        if depth < max_depth:
            queue.extend((link, depth + 1) for link in entry.get("links", []))
    return indexed


# -- the product -------------------------------------------------------------------------------------------------


@pytest.fixture
def site():
    with WebsiteStandIn(scenario()) as server:
        yield server


def web_source(server: WebsiteStandIn, backend_kind: str, name: str, **config) -> Source:
    return connectors.ensure_source("web", f"{server.url}/docs/", name=name,
                                    index_name=retrieval_services.get_backend().index_name,
                                    search_backend=backend_kind,
                                    config={"delay_s": 0, "max_depth": MAX_DEPTH, **config})


def indexed_paths(source: Source) -> set[str]:
    return {urlsplit(url).path for url in Document.objects.filter(source=source, status="indexed").values_list(
        "external_id", flat=True)}


def counts(run: SyncRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in ("seen", "added", "updated", "unchanged", "deleted", "failed")
            if getattr(run, name)}


def test_a_site_is_crawled_within_its_prefixes_and_robots_txt_and_indexed_as_readable_text(backend_kind, site):
    source = web_source(site, backend_kind, f"web-{backend_kind}")
    run = connectors.run_sync(source, "full")
    expected = expected_paths(site.scenario)
    assert expected == {"/docs/", "/docs/shipping", "/docs/returns", "/docs/returns/deep", "/docs/guide.md",
                        "/docs/new-home", "/docs/orphan"}
    assert run.state == "succeeded" and indexed_paths(source) == expected, run.errors
    assert counts(run) == {"seen": len(expected), "added": len(expected)}
    requested = set(site.pages_requested())
    # Never asked: what robots.txt disallows, what lies off the prefix (linked or in the sitemap), past the depth.
    assert not requested & {"/docs/private/salaries", "/blog/news", "/blog/from-sitemap", "/docs/returns/deeper"}
    # The tracking-parameter link and the print copy were the same page as /docs/shipping: indexed once.
    assert Document.objects.filter(source=source, title="Shipping").count() == 1
    shipping = Document.objects.get(source=source, title="Shipping")
    assert shipping.url == f"{site.url}/docs/shipping" and shipping.acl_public and shipping.acl_status == "ok"
    assert str(shipping.source_modified_at.date()) == "2025-03-01"
    # The readable text is indexed; the navigation, cookie banner and footer around it are not.
    backend = retrieval_services.get_backend(source.index_name, backend_kind)
    found_text = {hit.document_id for hit in search(f"{TOKEN} lantern desk", principals=frozenset(),
                                                    mode=SearchMode.BM25, backend=backend)}
    assert shipping.id in found_text
    assert not search(BOILERPLATE_WORD, principals=frozenset(), mode=SearchMode.BM25, backend=backend)
    assert not search("rights reserved", principals=frozenset(), mode=SearchMode.BM25, backend=backend)


def test_pages_are_public_to_the_company_or_to_the_principals_the_admin_names(backend_kind):
    users = {}
    for name in ("alice", "bob"):
        user = get_user_model().objects.create_user(name, password="pw")
        Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
        ExternalIdentity.objects.create(user=user, principal=f"email:{name}@corp.example")
        users[name] = user
    with WebsiteStandIn(scenario()) as public_site, WebsiteStandIn(scenario()) as hr_site:
        public = web_source(public_site, backend_kind, f"web-public-{backend_kind}")
        restricted = web_source(hr_site, backend_kind, f"web-hr-{backend_kind}", principals=["email:Alice@corp.example"])
        for source in (public, restricted):
            assert connectors.run_sync(source, "full").state == "succeeded"
    ids = {source: set(Document.objects.filter(source=source).values_list("id", flat=True))
           for source in (public, restricted)}
    expected = {"alice": ids[public] | ids[restricted], "bob": ids[public]}
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        for name, user in users.items():
            seen = {hit.document_id for hit in search(TOKEN, principals=principals_for(user), mode=mode, limit=1000)}
            assert seen == expected[name], (mode, name)
    assert not Document.objects.get(source=restricted, title="Shipping").acl_public


def test_a_recrawl_asks_each_page_conditionally_and_follows_edits_deletions_and_new_pages(backend_kind, site):
    source = web_source(site, backend_kind, f"web-recrawl-{backend_kind}")
    connectors.run_sync(source, "full")
    indexed = indexed_paths(source)
    site.requests.clear()
    quiet = connectors.run_sync(source, "incremental")
    assert quiet.state == "succeeded" and counts(quiet) == {"seen": len(indexed), "unchanged": len(indexed)}
    pages = [r for r in site.requests if r.path in indexed and r.path != "/docs/guide.md"]
    # Every page was asked with its ETag and answered 304: nothing downloaded, nothing parsed.
    assert pages and all(r.headers.get("if-none-match") for r in pages)

    with site.scenario_lock:
        pages_now = site.scenario["pages"]
        pages_now["/docs/returns"]["text"] += f"<p>New: the {TOKEN} walrus exception for damaged parcels.</p>"
        pages_now["/docs/returns"]["links"].append("/docs/warranty")
        pages_now["/docs/warranty"] = page("Warranty", "yarrow")
        del pages_now["/docs/returns/deep"]  # now 404
        pages_now["/docs/new-home"]["meta_robots"] = "noindex"
    changed = connectors.run_sync(source, "incremental")
    assert changed.state == "succeeded", changed.errors
    assert counts(changed) == {"seen": len(indexed) - 1, "added": 1, "updated": 1, "unchanged": len(indexed) - 3,
                               "deleted": 2}
    assert indexed_paths(source) == expected_paths(site.scenario) == indexed - {
        "/docs/returns/deep", "/docs/new-home"} | {"/docs/warranty"}
    backend = retrieval_services.get_backend(source.index_name, backend_kind)
    assert search(f"{TOKEN} walrus", principals=frozenset(), mode=SearchMode.BM25, backend=backend)

    # A page no longer linked from anywhere is not a 404: a full crawl (or a prune) removes it.
    with site.scenario_lock:
        site.scenario["pages"]["/docs/"]["links"].remove("/docs/shipping")
        site.scenario["pages"]["/docs/"]["links"].remove("/docs/shipping?utm_source=newsletter#rates")
        site.scenario["pages"]["/docs/hub"]["links"].remove("/docs/shipping-print")
    assert "/docs/shipping" not in expected_paths(site.scenario)
    assert counts(connectors.run_sync(source, "incremental")).get("deleted") is None
    pruned = connectors.run_sync(source, "full")
    assert pruned.deleted == 1 and indexed_paths(source) == expected_paths(site.scenario)


def test_a_page_without_an_etag_is_validated_by_its_last_modified_time(site):
    with site.scenario_lock:
        site.scenario["pages"]["/docs/shipping"]["etag"] = False
    source = web_source(site, "embedded", "web-last-modified")
    connectors.run_sync(source, "full")
    site.requests.clear()
    assert connectors.run_sync(source, "incremental").updated == 0
    [asked] = [r for r in site.requests if r.path == "/docs/shipping"]
    assert asked.headers["if-modified-since"] == "Sat, 01 Mar 2025 10:00:00 GMT" and "if-none-match" not in asked.headers
    with site.scenario_lock:
        site.scenario["pages"]["/docs/shipping"] |= {"modified": "2025-04-01T10:00:00Z",
                                                     "text": f"<p>The {TOKEN} lantern desk moved upstairs.</p>" * 3}
    assert connectors.run_sync(source, "incremental").updated == 1


def test_politeness_delay_crawl_delay_and_a_429_storm(site):
    calm = {i.external_id: i.read() for i in WebConnector(f"{site.url}/docs/", Config(delay_s=0, max_depth=MAX_DEPTH))
            .load() if isinstance(i, SourceItem)}
    with WebsiteStandIn(scenario(), throttle_every=3, retry_afters=(1.0, 2.5, 0.5)) as stormy:
        with stormy.scenario_lock:
            stormy.scenario["robots"] += "Crawl-delay: 2\n"
        clock = [0.0]
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            clock[0] += seconds

        connector = WebConnector(f"{stormy.url}/docs/", Config(delay_s=0.5, max_depth=MAX_DEPTH), sleep=sleep,
                                 clock=lambda: clock[0])
        loaded = {i.external_id: i.read() for i in connector.load() if isinstance(i, SourceItem)}
        assert len(stormy.throttled) >= 5
        # Every 429's Retry-After was waited out; between two requests, at least the site's Crawl-delay.
        retry_waits = [w for w in waits if w in (1.0, 2.5, 0.5)]
        assert len(retry_waits) >= len(stormy.throttled)
        assert all(w <= 2.0 for w in waits if w not in (1.0, 2.5, 0.5)) and any(w == 2.0 for w in waits)
    assert {urlsplit(k).path: v for k, v in loaded.items()} == {urlsplit(k).path: v for k, v in calm.items()}


def test_an_unreadable_robots_txt_keeps_the_crawl_off_the_site_and_nothing_is_pruned(site, backend_kind):
    source = web_source(site, backend_kind, f"web-robots-{backend_kind}")
    connectors.run_sync(source, "full")
    before = indexed_paths(source)
    with site.scenario_lock:  # Retry-After: 0, so the connector's retries (built with the real sleep) wait nothing
        site.scenario["robots"] = Reply(503, "Error", {"Content-Type": "text/plain", "Retry-After": "0"})
    site.requests.clear()
    run = connectors.run_sync(source, "full")
    assert run.state == "partial" and indexed_paths(source) == before
    assert set(site.pages_requested()) == set()  # not one page asked without the site's rules
    # A robots.txt that is missing (404) allows everything.
    with site.scenario_lock:
        site.scenario["robots"] = None
    assert connectors.run_sync(source, "full").state == "succeeded"
    assert "/docs/private/salaries" in site.pages_requested()


def test_a_crawl_resumed_from_its_checkpoint_does_not_ask_for_what_it_already_processed(site):
    with site.scenario_lock:
        for number in range(120):
            site.scenario["pages"]["/docs/"]["links"].append(f"/docs/note-{number}")
            site.scenario["pages"][f"/docs/note-{number}"] = page(f"Note {number}", f"word{number}")
    kept: dict[str, dict] = {}

    def memos(ids):
        return {i: kept[i] for i in ids if i in kept}

    first = WebConnector(f"{site.url}/docs/", Config(delay_s=0, max_depth=MAX_DEPTH), memos=memos)
    processed: list[str] = []
    checkpoint = None
    for entry in first.load():
        if isinstance(entry, SourceItem):
            processed.append(entry.external_id)
            kept[entry.external_id] = entry.memo  # what the sync commits with each batch
        elif isinstance(entry, Checkpoint):
            checkpoint = entry.state
            break  # the worker dies here
    assert checkpoint is not None and len(processed) == 50 and len(str(checkpoint)) < 200
    site.requests.clear()
    resumed = WebConnector(f"{site.url}/docs/", Config(delay_s=0, max_depth=MAX_DEPTH), memos=memos)
    rest = [e for e in resumed.load(checkpoint=checkpoint)]
    again = [e.external_id for e in rest if isinstance(e, SourceItem)]
    assert not set(again) & set(processed) and isinstance(rest[-1], Cursor)
    assert set(processed) | set(again) == {f"{site.url}{p}" for p in expected_paths(site.scenario)}
    # Not asked again, except where a redirect leads (the URL that redirects is what the crawl knows).
    assert not {urlsplit(url).path for url in processed} & set(site.pages_requested()) - {"/docs/new-home"}


def test_a_killed_sync_resumes_the_same_run_and_indexes_every_page_once(tmp_path, settings, shared_database):
    index_dir, index_name = tmp_path / "index", f"test-web-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                                                  index_name=index_name)
    retrieval_services._backends.clear()
    pages = 130
    with WebsiteStandIn(scenario()) as server:
        with server.scenario_lock:
            for number in range(pages):
                server.scenario["pages"]["/docs/"]["links"].append(f"/docs/note-{number}")
                server.scenario["pages"][f"/docs/note-{number}"] = page(f"Note {number}", f"word{number}")
        server.always("/docs/note-100", hang(3600))  # the crawl stops here until the worker is killed
        source = connectors.ensure_source("web", f"{server.url}/docs/", name="web-killed",
                                          config={"delay_s": 0, "max_depth": MAX_DEPTH})
        env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)

        def stuck() -> bool:  # at the hung page, with a checkpoint committed before it
            return any(r.path == "/docs/note-100" for r in server.requests) and bool(
                SyncRun.objects.filter(source=source).exclude(checkpoint={}).exists())

        run = kill_sync_midway(source, env, tmp_path / "sync.log", stuck)
        assert 0 < run.added < pages
        done = set(Document.objects.filter(source=source, seen_by_run=run.pk).values_list("external_id", flat=True))
        server.clear("/docs/note-100")
        server.requests.clear()
        resumed = connectors.run_sync(source, "full")
    expected = expected_paths(server.scenario)
    assert (resumed.pk, resumed.state, resumed.resumed) == (run.pk, "succeeded", 1)
    assert counts(resumed) == {"seen": len(expected), "added": len(expected)}
    assert indexed_paths(source) == expected
    # Processed before the kill: not asked again (but where a redirect leads, which the crawl knows by its source).
    assert not {urlsplit(url).path for url in done} & set(server.pages_requested()) - {"/docs/new-home"}
    backend = retrieval_services.get_backend(index_name, "embedded")
    chunks = sum(len(batch) for batch in backend.chunk_texts())
    assert chunks == sum(Document.objects.filter(source=source).values_list("chunk_count", flat=True))


def test_a_file_over_the_size_limit_is_refused_by_its_length_and_odd_urls_stay_out(site, settings):
    settings.CITEWISE = settings.CITEWISE.replace(max_file_bytes=2000)
    with site.scenario_lock:
        site.scenario["pages"]["/docs/guide.md"]["data"] = "# Guide\n\n" + "zephyr rosehip " * 400
    source = web_source(site, "embedded", "web-limits")
    run = connectors.run_sync(source, "full")
    assert run.failed == 1 and "too_large" in Document.objects.get(source=source, external_id__endswith=".md").error
    connector = WebConnector(f"{site.url}/docs/", Config())
    assert not connector.in_scope(f"{site.url}/docs")  # the prefix is a directory
    assert not WebConnector(f"{site.url}/docs/", Config(exclude=[r"/shipping"])).in_scope(f"{site.url}/docs/shipping")


def test_settings_are_checked():
    assert validated_config("web", {"max_depth": 3}).max_depth == 3
    for wrong, problem in (({"start_urls": ["ftp://x"]}, "not an http"), ({"exclude": ["("]}, "regular expression"),
                           ({"max_pages": 0}, "max_pages"), ({"depth": 3}, "Extra inputs")):
        with pytest.raises(InvalidInput, match=problem):
            validated_config("web", wrong)
