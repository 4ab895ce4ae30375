"""Websites: pages crawled from start URLs and sitemaps within configured URL prefixes, their readable text
extracted with trafilatura, visible to the whole company or to the principals an admin names.

What is read, and how:

- **Scope.** The crawl starts at the source's location and `start_urls`, and at every URL of the sitemaps named in
  `sitemaps` or by robots.txt (`Sitemap:` lines; sitemap indexes followed two levels deep, gzip read). It follows
  links (`<a href>`, resolved against `<base href>`) breadth-first, up to `max_depth` links away from where it
  started and `max_pages` pages in all, and never leaves `prefixes` (by default each start URL's directory) or
  enters a URL one of the `exclude` regular expressions matches. URLs are normalised (scheme and host lower-cased,
  default port, fragment and tracking parameters dropped, query sorted: courlan) so that one page is one URL.
- **robots.txt** (per origin, parsed with Protego, the parser Scrapy uses) is honoured for `user_agent`: a
  disallowed URL is never requested, `Crawl-delay` lengthens the politeness delay. A robots.txt that answers 4xx
  allows everything (as Google reads it); one that cannot be read (5xx, no answer) keeps the crawl off that
  origin, and the run counts it incomplete, so nothing is pruned. `<meta name="robots">` and `X-Robots-Tag`:
  `noindex` keeps a page out of the index (its links are still followed), `nofollow` keeps its links unfollowed.
- **Politeness.** One request at a time; at least `delay_s` (or the site's Crawl-delay) between two requests to
  the same origin; 429 and 503 wait as `Retry-After` asks (bounded), other 5xx and timeouts are retried with
  backoff a few times, then the page is a listing problem (nothing pruned that run).
- **Canonical URLs.** A page's id and citation link is its canonical URL (`<link rel="canonical">`, or an HTTP
  `Link: <…>; rel="canonical"` header for a PDF) when that lies within the prefixes, else the URL it was served
  from after redirects (each hop checked against the prefixes and robots.txt). Two URLs with one canonical page
  are indexed once.
- **Text.** HTML is reduced to its main content by trafilatura (navigation, footers, cookie banners and link
  lists dropped; headings, paragraphs, lists and tables kept) and indexed as HTML, so sections follow headings; a
  page with no readable text (a list of links) is not indexed. PDF, Word, Markdown and plain-text files within
  the prefixes are downloaded (after their Content-Length passed the size limit) and read by the parsers.
- **Incremental re-crawl.** Each page keeps its ETag, Last-Modified and links with its document
  (SourceItem.memo); the next crawl asks with If-None-Match / If-Modified-Since, and a 304 costs neither download
  nor parsing: the page is counted unchanged and its links are taken from what was kept. An incremental run is
  such a re-crawl that also deletes the pages that now answer 404 or 410; a full run (or a prune) deletes what the
  crawl no longer reached. A crawl yields a Checkpoint every `CHECKPOINT_EVERY` pages; a run resumed after a
  crash walks the same crawl again, and a page this crawl already processed is not requested again: its links
  are read from its document.

Memory: at most `max_pages` pages are visited per crawl; the URLs seen (to visit each once) are bounded by
`MAX_URLS_PER_PAGE` × `max_pages`, each a string of its length.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import lxml.etree
import lxml.html
import trafilatura
from courlan import normalize_url
from protego import Protego
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import (
    PUBLIC,
    Capability,
    Changed,
    Checkpoint,
    Cursor,
    Deleted,
    IncompleteListing,
    ItemError,
    Listed,
    Permissions,
    SourceItem,
    SourceUnavailable,
)
from connectors.parsing import HTML, SUPPORTED_MIME_TYPES
from connectors.sources.wire import retry_after
from core.config import current
from core.outbound import MeteredClient
from identity.principals import normalize_principal

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.web")

CHECKPOINT_EVERY = 50
MAX_ATTEMPTS = 4
MAX_RETRY_WAIT_S = 60.0
MAX_REDIRECTS = 5
MAX_URLS_PER_PAGE = 20
MAX_LINKS_KEPT = 500  # links kept per page for a 304's re-crawl
SITEMAP_DEPTH = 2
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
GONE_STATUSES = frozenset({404, 410})
_SAFE_XML = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class Config(BaseModel):
    """A website; Source.location is where the crawl starts. `principals` may read its pages (everyone in the
    company when empty)."""

    model_config = ConfigDict(extra="forbid")
    start_urls: list[str] = []
    sitemaps: list[str] = []
    prefixes: list[str] = []
    exclude: list[str] = []
    max_depth: int = Field(5, ge=0, le=100)
    max_pages: int = Field(10_000, ge=1, le=1_000_000)
    delay_s: float = Field(1.0, ge=0.0, le=60.0)
    user_agent: str = "CitewiseBot/1.0 (+https://github.com/citewise)"
    principals: list[str] = []

    @field_validator("start_urls", "sitemaps", "prefixes")
    @classmethod
    def _web_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"{url!r} is not an http(s) URL")
        return urls

    @field_validator("exclude")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return patterns


SECRETS: tuple[str, ...] = ()


def build(source: Source, config: Config, secrets: dict[str, str]) -> WebConnector:
    from connectors.selectors import document_memos

    return WebConnector(source.location, config, memos=partial(document_memos, source))


def _now() -> datetime:
    return datetime.now(UTC)


def normalized(url: str) -> str:
    """One spelling per page: courlan's normalisation (host case, default port, tracking parameters, query order),
    without the fragment, with a path."""
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    if not parts.path:
        url = parts._replace(path="/").geturl()
    try:
        return str(normalize_url(url))
    except ValueError:  # not a URL courlan can read: kept as written, and never in scope unless it matches
        return url


def default_prefix(url: str) -> str:
    """A start URL's directory: `https://acme.test/docs/` for `https://acme.test/docs/index.html`."""
    parts = urlsplit(normalized(url))
    return parts._replace(path=parts.path[:parts.path.rfind("/") + 1], query="").geturl()


@dataclass
class _Page:
    """What one fetch found: a page to index (content set), a 304 (not_modified), or only links to follow."""

    url: str  # where it was served from, after redirects
    external_id: str  # its canonical URL
    links: list[str] = field(default_factory=list)
    content: bytes | None = None
    mime_type: str = HTML
    size: int = 0
    title: str = ""
    modified_at: datetime | None = None
    etag: str = ""
    last_modified: str = ""
    not_modified: bool = False
    index: bool = True


class _Skip(Exception):
    """A URL that is not to be indexed (off the site, disallowed, of a type nobody parses): no problem."""


class _Gone(Exception):
    """404 or 410."""


class _Failed(Exception):
    """The page could not be fetched: a listing problem."""


class WebConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.LOAD, Capability.CHECKPOINT, Capability.INCREMENTAL, Capability.LIST_IDS,
        Capability.PERMISSIONS})

    def __init__(
        self, location: str, config: Config, *, memos: Callable[[Iterable[str]], dict[str, dict[str, Any]]]
        | None = None, max_bytes: int | None = None, timeout_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _now, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.starts = [normalized(url) for url in [location, *config.start_urls] if url]
        self.prefixes = [normalized(p) for p in config.prefixes] or sorted({default_prefix(u) for u in self.starts})
        self._exclude = [re.compile(pattern) for pattern in config.exclude]
        self._memos = memos or (lambda ids: {})
        self.max_bytes = max_bytes or current().max_file_bytes
        self._sleep, self._clock, self._now = sleep, clock, now
        self._client = MeteredClient("connector.web", timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                     transport=transport,
                                     headers={"User-Agent": config.user_agent})
        self._robots: dict[str, Protego | None] = {}
        self._last_request: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        principals = frozenset(normalize_principal(p) for p in config.principals)
        self._permissions = Permissions(principals=principals, status="ok") if principals else PUBLIC

    def __repr__(self) -> str:
        return f"WebConnector({self.starts[0] if self.starts else ''!r})"

    # -- scope ------------------------------------------------------------------------------------------------

    def in_scope(self, url: str) -> bool:
        return (any(url.startswith(prefix) for prefix in self.prefixes)
                and not any(pattern.search(url) for pattern in self._exclude))

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- HTTP -------------------------------------------------------------------------------------------------

    def _wait_turn(self, origin: str) -> None:
        delay = self._delays.get(origin, self.config.delay_s)
        last = self._last_request.get(origin)
        if last is not None:
            wait = last + delay - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request[origin] = self._clock()

    def _request(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """One polite GET (streamed: the caller reads or closes it), retried on 429/5xx and transport errors;
        _Failed when it never succeeded."""
        origin = self._origin(url)
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._wait_turn(origin)
            try:
                response = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
            except httpx.HTTPError as exc:
                problem = exc.__class__.__name__
                wait = 2.0 ** attempt
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return response
                response.close()
                problem = f"HTTP {response.status_code}"
                wait = retry_after(response.headers.get("Retry-After"), default=2.0 ** attempt)
                if wait > MAX_RETRY_WAIT_S:
                    raise _Failed(f"{url}: asked to wait {wait:.0f}s")
            if attempt < MAX_ATTEMPTS:
                self._sleep(wait)
        raise _Failed(f"{url}: {problem} after {MAX_ATTEMPTS} attempts")

    def _body(self, response: httpx.Response, url: str) -> bytes:
        """The reply's body, refused past the size limit (by its Content-Length before reading, else as it comes)."""
        try:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > self.max_bytes:
                raise ItemError("too_large", f"{url}: {declared:,} bytes; the limit is {self.max_bytes:,}")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > self.max_bytes:
                    raise ItemError("too_large", f"{url}: more than the limit of {self.max_bytes:,} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise _Failed(f"{url}: {exc.__class__.__name__} while reading") from exc
        finally:
            response.close()

    # -- robots.txt and sitemaps ------------------------------------------------------------------------------

    def _robots_for(self, url: str) -> Protego | None:
        """The origin's robots.txt rules; None when they could not be read (the origin is then off limits)."""
        origin = self._origin(url)
        if origin not in self._robots:
            try:
                response = self._request(f"{origin}/robots.txt")
                text = self._body(response, f"{origin}/robots.txt").decode("utf-8", "replace") \
                    if response.status_code == 200 else ""
                rules = Protego.parse(text)
                self._robots[origin] = rules
                delay = rules.crawl_delay(self.config.user_agent)
                if delay:
                    self._delays[origin] = max(self.config.delay_s, float(delay))
            except (_Failed, ItemError) as exc:
                logger.warning("robots.txt of %s could not be read (%s): nothing is crawled there", origin, exc)
                self._robots[origin] = None
        return self._robots[origin]

    def _allowed(self, url: str) -> bool:
        robots = self._robots_for(url)
        if robots is None:
            raise _Failed(f"{url}: the site's robots.txt could not be read")
        return bool(robots.can_fetch(url, self.config.user_agent))

    def _sitemap_urls(self, problems: list[tuple[str, str]]) -> Iterator[str]:
        named = [normalized(url) for url in self.config.sitemaps]
        for start in self.starts:
            robots = self._robots_for(start)
            if robots is not None:
                named += [normalized(urljoin(start, url)) for url in robots.sitemaps]
        pending = deque((url, 0) for url in dict.fromkeys(named))
        read: set[str] = set()
        while pending:
            sitemap, depth = pending.popleft()
            if sitemap in read:
                continue
            read.add(sitemap)
            try:
                response = self._request(sitemap)
                if response.status_code != 200:
                    response.close()
                    raise _Failed(f"{sitemap}: HTTP {response.status_code}")
                root = self._sitemap_root(self._body(response, sitemap))
            except (_Failed, ItemError, lxml.etree.XMLSyntaxError) as exc:
                problems.append((sitemap, f"unreadable_sitemap: {exc}"))
                continue
            for loc in root.iter("{*}loc"):
                url = normalized((loc.text or "").strip())
                if root.tag.endswith("sitemapindex"):
                    if depth < SITEMAP_DEPTH:
                        pending.append((url, depth + 1))
                elif self.in_scope(url):
                    yield url

    @staticmethod
    def _sitemap_root(data: bytes) -> Any:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return lxml.etree.fromstring(data, parser=_SAFE_XML)

    # -- one page ---------------------------------------------------------------------------------------------

    def _fetch(self, url: str, memo: dict[str, Any] | None, *, conditional: bool = True) -> _Page:
        """The page at `url`: redirects followed within scope, each URL asked conditionally when what was kept of
        it (`memo`, for `url`) has validators."""
        current_url = url
        for hop in range(MAX_REDIRECTS + 1):
            if not self._allowed(current_url):
                raise _Skip(f"{current_url}: disallowed by robots.txt")
            if hop and conditional:
                memo = self._memos([current_url]).get(current_url)
            headers: dict[str, str] = {}
            if memo and memo.get("etag"):
                headers["If-None-Match"] = memo["etag"]
            if memo and memo.get("last_modified"):
                headers["If-Modified-Since"] = memo["last_modified"]
            response = self._request(current_url, headers)
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                response.close()
                current_url = normalized(urljoin(current_url, response.headers["Location"]))
                if not self.in_scope(current_url):
                    raise _Skip(f"{url}: redirected off the site to {current_url}")
                continue
            return self._page(url, current_url, response, memo)
        raise _Failed(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _page(self, asked: str, url: str, response: httpx.Response, memo: dict[str, Any] | None) -> _Page:
        status = response.status_code
        if status == 304 and memo:
            response.close()
            return _Page(url=url, external_id=memo.get("canonical") or url, links=list(memo.get("links") or []),
                         title=str(memo.get("title") or ""), etag=str(memo.get("etag") or ""),
                         last_modified=str(memo.get("last_modified") or ""), not_modified=True,
                         mime_type=str(memo.get("mime_type") or HTML))
        if status in GONE_STATUSES:
            response.close()
            raise _Gone(asked)
        if status != 200:
            response.close()
            raise _Failed(f"{asked}: HTTP {status}")
        mime_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() or HTML
        directives = response.headers.get("X-Robots-Tag", "").lower()
        page = _Page(url=url, external_id=url, mime_type=mime_type, etag=response.headers.get("ETag", ""),
                     last_modified=response.headers.get("Last-Modified", ""),
                     modified_at=_http_date(response.headers.get("Last-Modified")))
        canonical = (response.links.get("canonical") or {}).get("url")
        if mime_type not in SUPPORTED_MIME_TYPES and mime_type != "application/xhtml+xml":
            response.close()
            raise _Skip(f"{url}: {mime_type or 'no type'} is not read")
        if mime_type in (HTML, "application/xhtml+xml"):
            raw = self._body(response, url)
            page.mime_type = HTML
            document, canonical, page.links, page.title, directives = self._read_html(
                raw, url, canonical, directives)
            if "noindex" in directives or "none" in directives or document is None:
                page.index = False
            else:
                page.content = self._readable(document, url, page.title)
                page.index = page.content is not None
        else:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > self.max_bytes:
                response.close()
                page.size = declared  # the sync refuses it by size without reading
            else:
                page.content = self._body(response, url)
            if "noindex" in directives:
                page.index = False
        if "nofollow" in directives or "none" in directives:
            page.links = []
        if canonical:
            canonical = normalized(urljoin(url, canonical))
            if self.in_scope(canonical):
                page.external_id = canonical
        if page.content is not None:
            page.size = len(page.content)
        return page

    def _read_html(self, raw: bytes, url: str, canonical: str | None, directives: str
                   ) -> tuple[Any, str | None, list[str], str, str]:
        """(parsed page, canonical link, links to follow, title, robots directives) of an HTML page; the page is
        parsed once (from bytes, so its declared charset is honoured) and handed on to the text extraction."""
        try:
            document = lxml.html.document_fromstring(raw)
        except (lxml.etree.ParserError, ValueError):
            return None, canonical, [], "", directives
        base = urljoin(url, (document.xpath("//base/@href") or [url])[0])
        for meta in document.xpath("//meta[@name]"):
            if meta.get("name", "").lower() in ("robots", "citewisebot"):
                directives += "," + meta.get("content", "").lower()
        for link in document.xpath("//link[@rel][@href]"):
            if "canonical" in link.get("rel", "").lower().split():
                canonical = link.get("href")
        links: list[str] = []
        for anchor in document.xpath("//a[@href]"):
            if "nofollow" in anchor.get("rel", "").lower().split():
                continue
            href = anchor.get("href", "").strip()
            if not href or href.startswith(("mailto:", "javascript:", "tel:", "#")):
                continue
            target = normalized(urljoin(base, href))
            if target.startswith(("http://", "https://")) and target not in links:
                links.append(target)
        title = " ".join((document.findtext(".//title") or "").split())
        return document, canonical, links[:MAX_LINKS_KEPT], title, directives

    @staticmethod
    def _readable(document: Any, url: str, title: str) -> bytes | None:
        """The page's main content as HTML (trafilatura, reading the tree already parsed), with its title; None
        when it has no readable text."""
        # Read before extracting, which cleans the tree it is given.
        metadata = trafilatura.extract_metadata(document, default_url=url)
        # Precision over recall, and no fallback extractors (`fast`, six times quicker): on a page with little
        # text they fall back to whatever is there (a footer, a cookie banner), indexed as if the page said it.
        body = trafilatura.extract(document, url=url, output_format="html", include_tables=True,
                                   include_formatting=True, include_links=False, include_comments=False,
                                   favor_precision=True, fast=True)
        if not body:
            return None
        title = (metadata.title if metadata is not None and metadata.title else title) or url
        words = set(lxml.html.fromstring(body).text_content().lower().split())
        if words <= set(title.lower().split()):
            return None  # nothing but its heading: a page of links
        body = re.sub(r"^\s*<html>\s*", "", body).replace("<body>", "", 1)
        return (f"<html><head><title>{escape(title)}</title></head><body>{body}").encode()

    def _item(self, page: _Page, memo: dict[str, Any]) -> SourceItem:
        if page.content is not None:
            content = page.content
            read: Callable[[], bytes] = partial(bytes, content)
        else:
            read = partial(self._read_again, page.url)  # a 304 whose document the sync must index after all
        return SourceItem(external_id=page.external_id, title=page.title or page.external_id,
                          mime_type=page.mime_type, size_bytes=page.size, read=read, url=page.external_id,
                          modified_at=page.modified_at, memo=memo, not_modified=page.not_modified,
                          title_from_name=not page.title)

    def _read_again(self, url: str) -> bytes:
        try:
            page = self._fetch(url, None, conditional=False)
        except (_Skip, _Gone, _Failed) as exc:
            raise ItemError("download_failed", f"{url}: {exc}") from exc
        if page.content is None:
            raise ItemError("no_text", f"{url}: no readable text")
        return page.content

    # -- the crawl --------------------------------------------------------------------------------------------

    def _crawl(self, checkpoint: dict[str, Any] | None, *, deletions: bool) -> Iterator[SourceItem | Deleted |
                                                                                         Checkpoint | Cursor]:
        state = checkpoint or {}
        started = str(state.get("started") or self._now().isoformat())
        problems: list[tuple[str, str]] = []
        seeds = list(dict.fromkeys([*self.starts, *self._sitemap_urls(problems)]))
        frontier: deque[tuple[str, int]] = deque((url, 0) for url in seeds if self.in_scope(url))
        seen_urls = {url for url, _ in frontier}
        seen_ids: set[str] = set()
        url_budget = MAX_URLS_PER_PAGE * self.config.max_pages
        pages = 0
        if not frontier:
            raise SourceUnavailable(f"{self.starts}: no start URL lies within the prefixes {self.prefixes}")
        while frontier and pages < self.config.max_pages:
            url, depth = frontier.popleft()
            memo = self._memos([url]).get(url)
            if memo is not None and memo.get("visited") == started:
                # Processed by this crawl before it was interrupted: not requested again.
                page = _Page(url=url, external_id=url, links=list(memo.get("links") or []), index=False)
                seen_ids.add(url)
                pages += 1
            else:
                try:
                    page = self._fetch(url, memo)
                except _Skip as exc:
                    logger.info("web crawl skipped %s", exc)
                    continue
                except _Gone:
                    if deletions and memo is not None:
                        yield Deleted(url)
                    continue
                except (_Failed, ItemError) as exc:
                    problems.append((url, f"unfetchable: {exc}"))
                    continue
                if page.external_id != url and page.external_id not in seen_ids:
                    kept = self._memos([page.external_id]).get(page.external_id)
                    if kept is not None and kept.get("visited") == started:
                        # Reached through a redirect or a canonical link, and processed by this crawl already.
                        seen_ids.add(page.external_id)
                        pages += 1
                if not page.index and deletions and (memo if page.external_id == url else self._memos(
                        [page.external_id]).get(page.external_id)) is not None:
                    yield Deleted(page.external_id)  # indexed before, now noindex or without text
                elif page.index and page.external_id not in seen_ids:
                    seen_ids.add(page.external_id)
                    pages += 1
                    memo_kept = {"etag": page.etag, "last_modified": page.last_modified, "links": page.links,
                                 "title": page.title, "canonical": page.external_id, "mime_type": page.mime_type,
                                 "visited": started}
                    yield self._item(page, memo_kept)
                    if pages % CHECKPOINT_EVERY == 0:
                        yield Checkpoint({"started": started})
            if depth < self.config.max_depth:
                for link in page.links:
                    if link not in seen_urls and len(seen_urls) < url_budget and self.in_scope(link):
                        seen_urls.add(link)
                        frontier.append((link, depth + 1))
        if problems:
            raise IncompleteListing(problems)
        yield Cursor({"crawled": started})

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        for entry in self._crawl(checkpoint, deletions=False):
            if not isinstance(entry, Deleted):
                yield entry

    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        """A re-crawl asking each page whether it changed since the last visit (304s cost nothing), which also
        deletes the pages that now answer 404 or 410; what is no longer linked is left to pruning."""
        yield from self._crawl(checkpoint, deletions=True)

    def list_ids(self) -> Iterator[str]:
        for entry in self._crawl(None, deletions=False):
            if isinstance(entry, SourceItem):
                yield entry.external_id

    def fetch_permissions(self, external_id: str) -> Permissions:
        return self._permissions


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


CONNECTOR = WebConnector
