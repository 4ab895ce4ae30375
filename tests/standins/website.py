"""A stand-in for a website: pages, robots.txt and sitemaps from a scenario a test writes and may change between
crawls, served the way HTTP servers do (RFC 9110/9111 conditional requests, redirects, robots.txt per RFC 9309,
sitemaps per sitemaps.org).

    scenario = {
        "robots": "User-agent: *\\nDisallow: /docs/private/\\nSitemap: /sitemap.xml\\n",  # None: 404; int: status; Reply: as is
        "sitemaps": {"/sitemap.xml": {"index": ["/sitemap-docs.xml.gz"]},                # a sitemap index
                     "/sitemap-docs.xml.gz": {"urls": ["/docs/orphan"], "gzip": True}},    # a urlset, gzipped
        "pages": {
            "/docs/": {"title": "Docs", "text": "<p>…</p>", "links": ["/docs/a", "/blog/"],
                       "modified": "2025-03-01T10:00:00Z",   # Last-Modified (optional)
                       "etag": True,                         # False: no ETag, only Last-Modified validates
                       "canonical": "/docs/a",               # <link rel="canonical"> (optional)
                       "meta_robots": "noindex",             # <meta name="robots"> (optional)
                       "x_robots": "nofollow",               # X-Robots-Tag header (optional)
                       "status": 500,                        # answered with this status instead (optional)
                       "redirect": "/docs/b",                # 301 to there (optional)
                       "type": "text/markdown", "data": b"…" # a file instead of an HTML page (optional)
                       },
        },
    }

An HTML page is served inside boilerplate a reader should drop: a navigation bar holding its links, a cookie
banner and a footer. Its ETag is a hash of what is served, so an edit changes it; If-None-Match (or, for a page
without an ETag, If-Modified-Since) that still matches gets a 304 with no body. `throttle_every=3` answers every
third request with a 429 whose Retry-After cycles through `retry_afters` (recorded in `throttled`).
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import threading
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from typing import Any

from tests.standins.base import RecordedRequest, Reply, StandInServer

BOILERPLATE_WORD = "cookieconsent"


class WebsiteStandIn(StandInServer):
    def __init__(self, scenario: dict[str, Any], *, throttle_every: int | None = None,
                 retry_afters: tuple[float, ...] = (1.0, 2.0, 3.0)) -> None:
        super().__init__()
        self.scenario = scenario
        self.scenario_lock = threading.Lock()
        self.throttle_every = throttle_every
        self._retry_afters = itertools.cycle(retry_afters)
        self._arrivals = itertools.count(1)
        self.throttled: list[float] = []

    def error_body(self, code: int) -> Any:
        return f"<html><body><h1>Error {code}</h1></body></html>"

    def pages_requested(self) -> list[str]:
        return [r.path for r in self.requests if r.path != "/robots.txt" and "sitemap" not in r.path]

    def default(self, request: RecordedRequest) -> Reply:
        if self.throttle_every and next(self._arrivals) % self.throttle_every == 0:
            wait = next(self._retry_afters)
            self.throttled.append(wait)
            return Reply(429, "Too Many Requests", {"Retry-After": f"{wait:g}", "Content-Type": "text/plain"})
        with self.scenario_lock:
            return self._answer(request)

    def _answer(self, request: RecordedRequest) -> Reply:
        scenario, path = self.scenario, request.path
        if path == "/robots.txt":
            robots = scenario.get("robots")
            if robots is None:
                return Reply(404, "Not Found", {"Content-Type": "text/plain"})
            if isinstance(robots, int):
                return Reply(robots, "Error", {"Content-Type": "text/plain"})
            if isinstance(robots, Reply):
                return robots
            return Reply(200, robots, {"Content-Type": "text/plain"})
        if path in scenario.get("sitemaps", {}):
            return self._sitemap(scenario["sitemaps"][path], self.url)
        page = scenario.get("pages", {}).get(path + (f"?{self._query(request)}" if request.query else ""))
        if page is None:
            page = scenario.get("pages", {}).get(path)
        if page is None:
            return Reply(404, self.error_body(404), {"Content-Type": "text/html"})
        if page.get("status"):
            return Reply(page["status"], self.error_body(page["status"]), {"Content-Type": "text/html"})
        if page.get("redirect"):
            return Reply(301, b"", {"Location": page["redirect"], "Content-Type": "text/html"})
        body, content_type = self._body(path, page)
        headers = {"Content-Type": content_type}
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if page.get("etag", True) else ""
        if etag:
            headers["ETag"] = etag
        modified = _instant(page["modified"]) if page.get("modified") else None
        if modified is not None:
            headers["Last-Modified"] = format_datetime(modified, usegmt=True)
        if page.get("x_robots"):
            headers["X-Robots-Tag"] = page["x_robots"]
        if page.get("link_canonical"):
            headers["Link"] = f'<{page["link_canonical"]}>; rel="canonical"'
        if etag and request.headers.get("if-none-match") == etag:
            return Reply(304, b"", headers)
        since = request.headers.get("if-modified-since")
        if not etag and since and modified is not None and modified <= parsedate_to_datetime(since):
            return Reply(304, b"", headers)
        return Reply(200, body, headers)

    @staticmethod
    def _query(request: RecordedRequest) -> str:
        return "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))

    @staticmethod
    def _body(path: str, page: dict[str, Any]) -> tuple[bytes, str]:
        if "data" in page:
            data = page["data"]
            return (data.encode() if isinstance(data, str) else data), page.get("type", "application/octet-stream")
        head = f"<title>{escape(page['title'])} | Acme</title>"
        if page.get("canonical"):
            head += f'<link rel="canonical" href="{escape(page["canonical"])}">'
        if page.get("meta_robots"):
            head += f'<meta name="robots" content="{escape(page["meta_robots"])}">'
        links = "".join(f'<li><a href="{escape(link)}">{escape(link.strip("/") or "home")}</a></li>'
                        for link in page.get("links", []))
        html = (f"<!doctype html><html><head>{head}</head><body>"
                f'<div class="cookie-banner">We use cookies. {BOILERPLATE_WORD} <button>Accept all</button></div>'
                f'<nav><ul><li><a href="/">Home</a></li>{links}</ul></nav>'
                f"<main><article><h1>{escape(page['title'])}</h1>{page.get('text', '')}</article></main>"
                f'<footer><p>© Acme Ltd. All rights reserved. <a href="/legal">Legal</a></p></footer>'
                f"</body></html>")
        return html.encode(), "text/html; charset=utf-8"

    @staticmethod
    def _sitemap(sitemap: dict[str, Any], site: str) -> Reply:
        """Locations are absolute, as the protocol requires: the scenario's paths on this site."""
        if "index" in sitemap:
            entries = "".join(f"<sitemap><loc>{escape(site + url)}</loc></sitemap>" for url in sitemap["index"])
            xml = f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/' \
                  f'sitemap/0.9">{entries}</sitemapindex>'
        else:
            entries = "".join(f"<url><loc>{escape(site + url)}</loc><lastmod>2025-03-01</lastmod></url>"
                              for url in sitemap["urls"])
            xml = f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/' \
                  f'0.9">{entries}</urlset>'
        data = xml.encode()
        if sitemap.get("gzip"):
            return Reply(200, gzip.compress(data), {"Content-Type": "application/x-gzip"})
        return Reply(200, data, {"Content-Type": "application/xml"})


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
