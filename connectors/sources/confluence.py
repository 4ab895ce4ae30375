"""Confluence Cloud pages, blog posts and their attachments, read over the REST API with an account's email and
API token (basic auth).

What is read, and from where (https://developer.atlassian.com/cloud/confluence/rest/):

- spaces: v2 `GET /wiki/api/v2/spaces?status=current` (archived spaces too when `include_archived_spaces`);
  pages and blog posts: v2 `GET /wiki/api/v2/pages` and `/blogposts` `?space-id=…&status=current&body-format=
  storage`, all cursor-paginated through `_links.next`. A body is storage format (XHTML), parsed as HTML; its URL
  is `_links.webui` under `<site>/wiki`; its modified time is `version.createdAt`.
- attachments: v2 `GET /wiki/api/v2/pages/{id}/attachments` and `/blogposts/{id}/attachments`, those whose
  `mediaType` a parser reads (connectors.parsing), downloaded from their `downloadLink` (under /wiki; Cloud
  redirects it to its media store) only when the sync reads them, after it has checked the listed `fileSize`
  against its limit; a download longer than the listed size is cut off and fails.
- who may read a space: v2 `GET /wiki/api/v2/spaces/{id}/permissions` (assignments of `read`/`space` to a user
  or a group, by id). v2 is used rather than v1's `?expand=permissions` because it is paginated and is the API
  Atlassian keeps; users come back as account ids and are looked up with v1 `GET /wiki/rest/api/user`.
- read restrictions: v1 `GET /wiki/rest/api/content/{id}/restriction/byOperation/read`, for a page and every
  ancestor page (Confluence's view restrictions are inherited), or for a blog post (blog posts have no parents).
  An ancestor this sync did not list (an incremental or resumed run) is read with v2 `GET /pages/{id}`.
- groups: v1 `GET /wiki/rest/api/group` and `GET /wiki/rest/api/group/{id}/membersByGroupId`. A member that is
  itself a group (Data Center / Crowd nesting; Cloud lists users only) is listed as that group's principal, and
  identity expands the nesting at query time.

A page or blog post is readable by whoever the space lets read AND every restricted ancestor allows AND its own
restriction allows; an attachment by whoever may read its page or blog post. ACLs here are one list of
principals any of whom may read, so the intersection is worked out when the permissions are fetched: a group
every layer names stays a group principal, `confluence:<site>:group:<name>` (its memberships are synced and
expanded at query time); anyone else allowed by every layer is named by `email:<address>`. A group membership
change that decides a mixed case is therefore seen at the next permission sync, which fetches every item's
permissions again.

Full listing (`load`) yields a Checkpoint after every listing page (which space, which content type, the next
page's link), so a killed run resumes where it stopped, and at the end, if everything could be listed, a Cursor:
the time listing began less `CLOCK_SKEW_MARGIN`. Incremental sync (`changes`) asks CQL (v1 `GET /wiki/rest/api/
content/search`) for pages, blog posts and attachments of the synced spaces modified since the cursor. CQL
compares whole minutes in the account's time zone (v1 `GET /wiki/rest/api/user/current`; when Confluence does
not show it, the bound is moved back by the widest UTC offset), and its index lags edits, so the margin makes
the next sync read a few minutes twice rather than miss an edit made while this one listed. Content CQL shows as
archived becomes Deleted; what it cannot show (content moved to the trash or purged, a space archived, access
lost) is removed by the next full sync's or permission sync's prune, from `list_ids`.

Fails closed: a restriction or permission lookup that is refused (403), fails, or comes back malformed, an
assignment to a principal type this connector does not know (roles, access classes such as anonymous users), an
ancestor that is not a page (a folder, a whiteboard), or a restriction list longer than one reply makes the
item's permissions unknown (visible to nobody) with the reason recorded (Permissions.reason, logged by the
sync). A user whose email Confluence does not show (profile visibility) is left out of a grant: nobody gains
access that way.

Settings are `Config`; the API token is the source's encrypted `api_token` secret and is never logged.

Memory: listings are streamed a page at a time; for the rest of a run the connector keeps what permissions need of
each page and blog post it has seen (id, space, parent, status: about half a kilobyte each, never a body), plus the
space grants, restrictions, groups and users it looked up — about 5 MB per 10,000 items.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from connectors.base import (
    Capability,
    Changed,
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    ItemError,
    Listed,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
)
from connectors.parsing import SUPPORTED_MIME_TYPES
from connectors.sources.wire import Unresolvable, iso_timestamp, retry_after
from core.outbound import MeteredClient
from identity.principals import normalize_principal

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.confluence")

PAGE_PREFIX = "page:"
BLOGPOST_PREFIX = "blogpost:"
ATTACHMENT_PREFIX = "attachment:"
# Content type (as CQL and v1 name it, and as external ids are prefixed) -> its v2 collection.
COLLECTIONS = {"page": "pages", "blogpost": "blogposts"}
# Retries of a throttled or unavailable call, and the longest Retry-After honoured before giving up on it.
MAX_ATTEMPTS = 4
MAX_RETRY_WAIT_S = 30.0
RETRIED_STATUSES = frozenset({429, 503})
# How far before listing began the next incremental sync looks: our clock against Confluence's, and the lag
# between an edit and the search index CQL reads.
CLOCK_SKEW_MARGIN = timedelta(minutes=10)
# When the account's time zone is unknown, CQL's local minutes are read as UTC less the widest offset (UTC+14),
# which is never later than the true bound, whatever the zone.
UNKNOWN_ZONE_MARGIN = timedelta(hours=14)
CQL_TIME = "%Y/%m/%d %H:%M"
# Space keys per CQL query, so that a site of many spaces does not make an overlong URL.
SPACES_PER_QUERY = 50


class ConfluenceError(Exception):
    """A call that did not give a usable answer; `status` is the HTTP status (0 for a transport failure)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Grant:
    """One layer of who may read: users by email, groups by name, or anyone (anonymous access)."""

    emails: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    anyone: bool = False
    # Principals of their own that only this layer can name (Data Center's anonymous access): nobody holds them
    # unless an admin grants them, and no restriction names them, so they survive only an unrestricted item.
    others: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Content:
    """A page or a blog post."""

    kind: str  # a key of COLLECTIONS
    id: str
    space_id: str
    status: str
    title: str
    parent_id: str | None
    parent_type: str | None
    url: str
    modified_at: datetime | None
    body: str

    @property
    def external_id(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class _Attachment:
    id: str
    container: str  # the external id of its page or blog post, whose readers read it
    title: str
    media_type: str
    size: int
    download: str  # a path on the site
    url: str
    modified_at: datetime | None

    @property
    def external_id(self) -> str:
        return ATTACHMENT_PREFIX + self.id


_Read = TypeVar("_Read")


def _remembered(cache: dict[str, _Read | Unresolvable], key: str, read: Callable[[str], _Read], what: str) -> _Read:
    """`read(key)`, once per sync: a lookup that failed stays failed (raised again as Unresolvable), so every item
    under a space or ancestor whose permissions could not be read is unknown alike."""
    if key not in cache:
        try:
            cache[key] = read(key)
        except Unresolvable as exc:
            cache[key] = exc
        except ConfluenceError as exc:
            cache[key] = Unresolvable(f"{what}: {exc}")
    found = cache[key]
    if isinstance(found, Unresolvable):
        raise found
    return found


_SECTIONED = re.compile(r"/wiki/spaces/[^/]+/(pages|blog)/")


def section_url(url: str, heading: str) -> str:
    """A link to a heading of a page or blog post. Confluence Cloud's heading ids are the heading's words joined by
    "-", case and punctuation kept (`#Getting-Started`, `#2.59.0-(Ubuntu-22)`); an attachment has no sections."""
    if not _SECTIONED.search(url):
        return url
    anchor = quote("-".join(heading.split()), safe="-._~()!*',:@")
    return f"{url}#{anchor}"


class Config(BaseModel):
    """A Confluence site; Source.location is its URL (with its context path on Data Center:
    `https://wiki.corp.example/confluence`).

    Cloud (`deployment` "cloud") is read as `email` with the `api_token` secret (an Atlassian API token); Data Center
    and Server 7.9+ ("data_center") with the `api_token` secret as a personal access token, or, when `username` is
    set, as that user's password (basic auth, for sites that disable tokens). `spaces` limits the sync to those
    space keys (all the account can see when empty); archived spaces are left out (and their content pruned) unless
    `include_archived_spaces`. `api_url` is where the REST calls go when it is not the site:
    `https://api.atlassian.com/ex/confluence/<cloud id>` for a Cloud API token with scopes. On Data Center a space
    open to anonymous users is read by `confluence:<site>:anonymous`, a principal nobody holds until an admin grants
    it, unless `anonymous_access_is_public` says that anyone who can reach the site is the whole company."""

    model_config = ConfigDict(extra="forbid")
    deployment: Literal["cloud", "data_center"] = "cloud"
    email: str = ""
    username: str = ""
    spaces: list[str] = []
    include_archived_spaces: bool = False
    api_url: str = ""
    anonymous_access_is_public: bool = False

    @model_validator(mode="after")
    def _credentials_fit_the_deployment(self) -> Config:
        if self.deployment == "cloud":
            if not self.email.strip():
                raise ValueError("a Confluence Cloud site needs `email`, the account its API token belongs to")
            if self.username or self.anonymous_access_is_public:
                raise ValueError("`username` and `anonymous_access_is_public` are Data Center settings; Cloud "
                                 "signs in with `email` and an API token")
        elif self.email:
            raise ValueError("Data Center signs in with a personal access token (or `username` and a password), "
                             "not `email`")
        return self


SECRETS: tuple[str, ...] = ("api_token",)


def build(source: Source, config: Config, secrets: dict[str, str]) -> ConfluenceConnector:
    if config.deployment == "data_center":
        return ConfluenceDataCenterConnector(
            source.location, api_token=secrets.get("api_token", ""), username=config.username,
            spaces=config.spaces or None, include_archived_spaces=config.include_archived_spaces,
            api_url=config.api_url or None, anonymous_access_is_public=config.anonymous_access_is_public)
    return ConfluenceConnector(source.location, email=config.email, api_token=secrets.get("api_token", ""),
                               spaces=config.spaces or None, include_archived_spaces=config.include_archived_spaces,
                               api_url=config.api_url or None)


def _now() -> datetime:
    return datetime.now(UTC)


class ConfluenceConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.LOAD, Capability.CHECKPOINT, Capability.INCREMENTAL, Capability.LIST_IDS,
        Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(
        self, base_url: str, *, email: str, api_token: str, spaces: list[str] | None = None,
        include_archived_spaces: bool = False, api_url: str | None = None, timeout_s: float = 20.0,
        page_limit: int = 250, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] = _now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/wiki")
        self.site = urlsplit(self.base_url).netloc.lower()
        self.space_keys = set(spaces) if spaces else None
        self.include_archived_spaces = include_archived_spaces
        self.page_limit = page_limit
        self._sleep = sleep
        self._clock = clock
        api = (api_url or self.base_url).rstrip("/").removesuffix("/wiki")
        self._client = MeteredClient("connector.confluence", base_url=api, auth=httpx.BasicAuth(email, api_token),
                                     timeout=httpx.Timeout(timeout_s), headers={"Accept": "application/json"},
                                     follow_redirects=False, transport=transport)
        self._contents: dict[str, _Content] = {}
        self._attachments: dict[str, _Attachment] = {}
        self._space_grants: dict[str, _Grant | Unresolvable] = {}
        self._restrictions: dict[str, _Grant | Unresolvable | None] = {}
        self._groups_by_id: dict[str, str] | None = None
        self._members: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._emails: dict[str, str | None] = {}

    def __repr__(self) -> str:  # never the token
        return f"ConfluenceConnector({self.base_url!r})"

    # Where REST v1 lives: under the /wiki context on Cloud.
    V1 = "/wiki/rest/api"
    # The field of a group that its member listing is addressed by.
    GROUP_ID = "id"

    def group_principal(self, name: str) -> str:
        return f"confluence:{self.site}:group:{name}"

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _send(self, path: str, params: dict[str, Any] | None = None, *, stream: bool = False,
              follow_redirects: bool = False, method: str = "GET", body: Any = None) -> httpx.Response:
        """One call (a GET unless said otherwise); 429/503 retried after Retry-After (bounded). The reply, whatever
        its status (open if `stream`); ConfluenceError when it never came or throttling did not end."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            request = self._client.build_request(method, path, params=params, json=body)
            try:
                response = self._client.send(request, stream=stream, follow_redirects=follow_redirects)
            except httpx.HTTPError as exc:
                raise ConfluenceError(0, f"{method} {path}: {exc.__class__.__name__}") from exc
            if response.status_code not in RETRIED_STATUSES:
                return response
            response.close()
            if attempt == MAX_ATTEMPTS:
                break
            wait = retry_after(response.headers.get("Retry-After"), default=2.0 ** attempt)
            if wait > MAX_RETRY_WAIT_S:
                raise ConfluenceError(response.status_code, f"GET {path}: asked to wait {wait:.0f}s")
            self._sleep(wait)
        raise ConfluenceError(response.status_code, f"GET {path}: still HTTP {response.status_code} after "
                                                    f"{MAX_ATTEMPTS} attempts")

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One GET, a JSON object back; anything else raises ConfluenceError."""
        body = self._json(path, params)
        if not isinstance(body, dict):
            raise ConfluenceError(200, f"GET {path}: the reply is not a JSON object")
        return body

    def _json(self, path: str, params: dict[str, Any] | None = None, *, method: str = "GET", body: Any = None
              ) -> Any:
        """One call answered 200 with JSON, which is returned; anything else raises ConfluenceError."""
        response = self._send(path, params, method=method, body=body)
        if response.status_code != 200:
            raise ConfluenceError(response.status_code, f"{method} {path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ConfluenceError(response.status_code, f"{method} {path}: the reply is not JSON") from exc

    def _next_link(self, body: dict[str, Any]) -> str | None:
        link = (body.get("_links") or {}).get("next")
        if not isinstance(link, str) or not link.startswith("/"):
            return None
        # v2 links start at /wiki/api/v2; v1 links are relative to the /wiki context.
        return link if link.startswith("/wiki/") else f"/wiki{link}"

    def _paged(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every result of a paginated listing, following `_links.next` (v2 cursors and v1 start/limit alike)."""
        next_path: str | None = path
        while next_path:
            body = self._get(next_path, params)
            params = None  # the next link carries the query
            yield from _results(body, next_path)
            next_path = self._next_link(body)

    # -- listing ---------------------------------------------------------------------------------------------

    def _spaces(self) -> list[dict[str, Any]]:
        wanted = {"current", "archived"} if self.include_archived_spaces else {"current"}
        params: dict[str, Any] = {"limit": self.page_limit}
        if not self.include_archived_spaces:
            params["status"] = "current"
        try:
            spaces = self._listed_spaces(params)
        except ConfluenceError as exc:
            raise SourceUnavailable(f"{self.base_url}: the spaces could not be listed ({exc}); nothing was "
                                    f"indexed and nothing was pruned") from exc
        return [s for s in spaces if isinstance(s.get("id"), str | int) and s.get("status", "current") in wanted
                and (self.space_keys is None or s.get("key") in self.space_keys)]

    def _listed_spaces(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self._paged("/wiki/api/v2/spaces", params))

    def _walk(self, *, with_body: bool, checkpoint: dict[str, Any] | None) -> Iterator[
            _Content | _Attachment | Checkpoint | Cursor]:
        """Every page and blog post of every synced space with its attachments, a Checkpoint after each listing
        page, and a Cursor at the end when nothing failed; IncompleteListing after that when something did.

        A checkpoint names the space and content type being listed and the next page's link (None once that
        listing is done); it carries when the first run began (the Cursor's time) and the problems met so far, so a
        resumed run reports them too. If its space is no longer listed, listing starts again from the first."""
        state = checkpoint or {}
        started = _instant(state.get("started")) or self._clock()
        problems: list[tuple[str, str]] = [(str(w), str(m)) for w, m in state.get("problems") or []]
        positions = [(space, kind) for space in self._spaces() for kind in COLLECTIONS]
        keys = [(str(space["id"]), kind) for space, kind in positions]
        first, link = 0, None
        if (state.get("space"), state.get("type")) in keys:
            first = keys.index((state["space"], state["type"]))
            link = state.get("next")
            if not isinstance(link, str):
                first += 1  # that listing was finished
                link = None
        for space, kind in positions[first:]:
            for entry in self._listing(space, kind, with_body, link, problems):
                if isinstance(entry, str | None):
                    yield Checkpoint({"space": str(space["id"]), "type": kind, "next": entry,
                                      "started": started.isoformat(), "problems": [list(p) for p in problems]})
                else:
                    yield entry
            link = None
        if problems:
            raise IncompleteListing(problems)
        yield Cursor({"since": (started - CLOCK_SKEW_MARGIN).isoformat()})

    def _listing(self, space: dict[str, Any], kind: str, with_body: bool, link: str | None,
                 problems: list[tuple[str, str]]) -> Iterator[_Content | _Attachment | str | None]:
        """One content type of one space, from `link` (or the start): its items, and after each listing page the
        next page's link (None after the last). A failure is added to `problems` and ends the listing."""
        where = f"space {space.get('key')}"
        path, params = (link, None) if link else self._listing_request(space, kind, with_body)
        while True:
            try:
                body = self._get(path, params)
                results = _results(body, path)
            except ConfluenceError as exc:
                problems.append((where, f"unlistable_{kind}s: {exc}"))
                return
            for result in results:
                content = self._content_of(kind, result)
                if content is None:
                    problems.append((where, f"malformed_{kind}: a {kind} without an id or a space"))
                    continue
                if content.status != "current":
                    continue
                self._remember(content)
                yield content
                yield from self._attachments_of(content, problems)
            next_link = self._next_link(body)
            yield next_link
            if next_link is None:
                return
            path, params = next_link, None

    def _listing_request(self, space: dict[str, Any], kind: str, with_body: bool) -> tuple[str, dict[str, Any]]:
        """The first request of one content type's listing in one space."""
        params: dict[str, Any] = {"space-id": space["id"], "status": "current", "limit": self.page_limit}
        if with_body:
            params["body-format"] = "storage"
        return f"/wiki/api/v2/{COLLECTIONS[kind]}", params

    def _attachments_request(self, content: _Content) -> tuple[str, dict[str, Any]]:
        return (f"/wiki/api/v2/{COLLECTIONS[content.kind]}/{content.id}/attachments",
                {"status": "current", "limit": self.page_limit})

    def _attachments_of(self, content: _Content, problems: list[tuple[str, str]]) -> Iterator[_Attachment]:
        path, params = self._attachments_request(content)
        try:
            for result in self._paged(path, params):
                attachment = self._attachment_of(result, content.external_id)
                if attachment is None or attachment.media_type not in SUPPORTED_MIME_TYPES:
                    continue
                self._attachments[attachment.external_id] = attachment
                yield attachment
        except ConfluenceError as exc:
            problems.append((content.external_id, f"unlistable_attachments: {exc}"))

    def _content_of(self, kind: str, result: dict[str, Any]) -> _Content | None:
        content_id, space_id = result.get("id"), result.get("spaceId")
        if not isinstance(content_id, str | int) or not isinstance(space_id, str | int):
            return None
        version = result.get("version") or {}
        body = ((result.get("body") or {}).get("storage") or {}).get("value") or ""
        parent = result.get("parentId") if kind == "page" else None
        return _Content(
            kind=kind, id=str(content_id), space_id=str(space_id), status=str(result.get("status") or "current"),
            title=str(result.get("title") or ""), parent_id=str(parent) if parent else None,
            parent_type=result.get("parentType") if parent else None,
            url=self._web_url((result.get("_links") or {}).get("webui")),
            modified_at=iso_timestamp(version.get("createdAt")), body=body if isinstance(body, str) else "",
        )

    def _attachment_of(self, result: dict[str, Any], container: str) -> _Attachment | None:
        """The attachment a v2 reply describes; None (logged) when it cannot be read safely: no id, no download
        link on this site, or no listed size to check before downloading."""
        attachment_id, size = result.get("id"), result.get("fileSize")
        link = result.get("downloadLink") or (result.get("_links") or {}).get("download")
        if not isinstance(attachment_id, str | int) or not isinstance(size, int) or isinstance(size, bool) \
                or size < 0 or not isinstance(link, str) or not link.startswith("/"):
            logger.warning("confluence attachment %r of %s skipped: no id, size or download link on the site",
                           attachment_id, container)
            return None
        version = result.get("version") or {}
        return _Attachment(
            id=str(attachment_id), container=container, title=str(result.get("title") or ""),
            media_type=str(result.get("mediaType") or "").split(";", 1)[0].strip().lower(), size=size,
            download=link if link.startswith("/wiki/") else f"/wiki{link}",
            url=self._web_url(result.get("webuiLink") or (result.get("_links") or {}).get("webui")),
            modified_at=iso_timestamp(version.get("createdAt") or result.get("createdAt")),
        )

    def _web_url(self, webui: Any) -> str:
        return f"{self.base_url}/wiki{webui}" if isinstance(webui, str) and webui.startswith("/") else ""

    def _item(self, found: _Content | _Attachment) -> SourceItem:
        if isinstance(found, _Attachment):
            return SourceItem(external_id=found.external_id, title=found.title, mime_type=found.media_type,
                              size_bytes=found.size, read=partial(self._download, found), url=found.url,
                              modified_at=found.modified_at, title_from_name=True)
        content = _html(found).encode("utf-8")
        return SourceItem(external_id=found.external_id, title=found.title, mime_type="text/html",
                          size_bytes=len(content), read=partial(bytes, content), url=found.url,
                          modified_at=found.modified_at)

    def _download(self, attachment: _Attachment) -> bytes:
        """The attachment's bytes, following Cloud's redirect to its media store (httpx drops the credentials
        when the redirect leaves the site); never more than the listed size, which the sync checked."""
        try:
            response = self._send(attachment.download, stream=True, follow_redirects=True)
        except ConfluenceError as exc:
            raise ItemError("download_failed", f"{attachment.external_id}: {exc}") from exc
        chunks: list[bytes] = []
        received = 0
        try:
            if response.status_code != 200:
                raise ItemError("download_failed", f"{attachment.external_id}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > attachment.size:
                    raise ItemError("too_large", f"{attachment.external_id}: the download is longer than the "
                                                 f"listed {attachment.size:,} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ItemError("download_failed", f"{attachment.external_id}: {exc.__class__.__name__}") from exc
        finally:
            response.close()
        return b"".join(chunks)

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        for entry in self._walk(with_body=True, checkpoint=checkpoint):
            yield self._item(entry) if isinstance(entry, _Content | _Attachment) else entry

    def list_ids(self) -> Iterator[str]:
        for entry in self._walk(with_body=False, checkpoint=None):
            if isinstance(entry, _Content | _Attachment):
                yield entry.external_id

    def sync_state(self) -> dict:
        return {}

    # -- incremental -----------------------------------------------------------------------------------------

    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        """Pages, blog posts and attachments of the synced spaces modified since `cursor` (CQL over v1 content
        search), those CQL shows archived as Deleted, a Checkpoint after each result page, then the next Cursor.
        What CQL cannot show (trashed or purged content, archived spaces, lost access) is left to pruning."""
        since = _instant(cursor.get("since"))
        if since is None:
            raise CursorExpired(f"{self.base_url}: the cursor {cursor!r} names no time to search from")
        state = checkpoint or {}
        started = _instant(state.get("started")) or self._clock()
        keys = sorted(str(space["key"]) for space in self._spaces() if isinstance(space.get("key"), str))
        groups = [keys[i:i + SPACES_PER_QUERY] for i in range(0, len(keys), SPACES_PER_QUERY)]
        bound = self._cql_bound(since)
        chunk, link = state.get("chunk"), state.get("next")
        first = chunk if isinstance(chunk, int) else 0
        link = link if isinstance(link, str) else None
        if not 0 <= first < len(groups):  # spaces changed since the checkpoint: search them all again
            first, link = 0, None
        for index in range(first, len(groups)):
            spaces = ", ".join(json.dumps(key) for key in groups[index])
            cql = f'lastmodified >= "{bound}" and type in (page, blogpost, attachment) and space in ({spaces})'
            path: str = link or f"{self.V1}/content/search"
            params: dict[str, Any] | None = None if link else {
                "cql": cql, "limit": self.page_limit,
                "cqlcontext": json.dumps({"contentStatuses": ["current", "archived"]})}
            while True:
                try:
                    body = self._get(path, params)
                    results = _results(body, path)
                except ConfluenceError as exc:
                    raise SourceUnavailable(f"{self.base_url}: changes could not be searched ({exc})") from exc
                for result in results:
                    yield from self._changed(result)
                next_link = self._next_link(body)
                yield Checkpoint({"started": started.isoformat(), "chunk": index if next_link else index + 1,
                                  "next": next_link})
                if next_link is None:
                    break
                path, params = next_link, None
            link = None
        yield Cursor({"since": (started - CLOCK_SKEW_MARGIN).isoformat()})

    def _changed(self, result: dict[str, Any]) -> Iterator[SourceItem | Deleted]:
        kind, found_id, status = result.get("type"), result.get("id"), result.get("status")
        if not isinstance(found_id, str | int) or kind not in (*COLLECTIONS, "attachment"):
            return  # comments and other content types are not indexed
        external_id = f"{kind}:{found_id}"
        if status != "current":
            yield Deleted(external_id)
            return
        try:
            if kind == "attachment":
                changed = self._fetched_attachment(str(found_id))
                if changed is not None and changed.media_type in SUPPORTED_MIME_TYPES:
                    self._attachments[external_id] = changed
                    yield self._item(changed)
                return
            reply = self._read_content(kind, str(found_id), with_body=True)
        except ConfluenceError as exc:
            if exc.status in (403, 404):  # gone, or no longer ours to read, since the search
                yield Deleted(external_id)
                return
            raise SourceUnavailable(f"{self.base_url}: changed {external_id} could not be read ({exc})") from exc
        content = self._content_of(kind, reply)
        if content is None or content.status != "current":
            yield Deleted(external_id)
            return
        self._remember(content)
        yield self._item(content)

    def _read_content(self, kind: str, content_id: str, *, with_body: bool) -> dict[str, Any]:
        """One page or blog post as the API describes it (ConfluenceError if it cannot be read)."""
        return self._get(f"/wiki/api/v2/{COLLECTIONS[kind]}/{content_id}",
                         {"body-format": "storage"} if with_body else None)

    def _fetched_attachment(self, attachment_id: str) -> _Attachment | None:
        reply = self._get(f"/wiki/api/v2/attachments/{attachment_id}")
        for field_name, kind in (("pageId", "page"), ("blogPostId", "blogpost")):
            if isinstance(reply.get(field_name), str | int):
                return self._attachment_of(reply, f"{kind}:{reply[field_name]}")
        return None  # on custom content or a comment: not indexed

    def _cql_bound(self, since: datetime) -> str:
        zone = self._account_zone()
        if zone is None:
            return (since - UNKNOWN_ZONE_MARGIN).astimezone(UTC).strftime(CQL_TIME)
        return since.astimezone(zone).strftime(CQL_TIME)

    def _account_zone(self) -> ZoneInfo | None:
        """The time zone CQL reads dates in (the account's), or None when Confluence does not show it."""
        try:
            name = self._get(f"{self.V1}/user/current").get("timeZone")
            return ZoneInfo(name) if isinstance(name, str) and name else None
        except (ConfluenceError, ZoneInfoNotFoundError, ValueError) as exc:
            logger.info("confluence account time zone unknown (%s); CQL searches a day further back", exc)
            return None

    # -- permissions -----------------------------------------------------------------------------------------

    def fetch_permissions(self, external_id: str) -> Permissions:
        try:
            return self._permissions(external_id)
        except Unresolvable as exc:
            return Permissions(status="unknown", reason=str(exc))

    def _permissions(self, external_id: str) -> Permissions:
        if external_id.startswith(ATTACHMENT_PREFIX):
            attachment = self._attachment(external_id)
            content = self._content(attachment.container)
        else:
            content = self._content(external_id)
        layers = [self._space_grant(content.space_id)]
        seen: set[str] = set()
        current = content
        while True:
            if current.id in seen:
                raise Unresolvable(f"{external_id}: the ancestors of page {current.id} form a cycle")
            seen.add(current.id)
            restriction = self._restriction(current.id)
            if restriction is not None:
                layers.append(restriction)
            if current.parent_id is None:
                break
            if current.parent_type != "page":
                raise Unresolvable(f"{external_id}: ancestor {current.parent_type or 'content'} "
                                    f"{current.parent_id} is not a page; its restrictions cannot be read")
            current = self._content(PAGE_PREFIX + current.parent_id)
        return self._intersection(layers)

    def _remember(self, content: _Content) -> None:
        """Keep what permissions need of a page or blog post for the rest of the run (its space, parent and status:
        about half a kilobyte), never its body, so memory grows with the number of items, not their size."""
        self._contents[content.external_id] = replace(content, body="")

    def _content(self, external_id: str) -> _Content:
        """A page or blog post this sync listed, else read now (an ancestor or container an incremental or
        resumed run did not list)."""
        if external_id not in self._contents:
            kind, _, content_id = external_id.partition(":")
            if kind not in COLLECTIONS or not content_id:
                raise Unresolvable(f"{external_id} is not a page, blog post or attachment of Confluence")
            try:
                content = self._content_of(kind, self._read_content(kind, content_id, with_body=False))
            except ConfluenceError as exc:
                raise Unresolvable(f"{external_id} could not be read: {exc}") from exc
            if content is None:
                raise Unresolvable(f"{external_id}: a malformed {kind}")
            self._remember(content)
        return self._contents[external_id]

    def _attachment(self, external_id: str) -> _Attachment:
        if external_id not in self._attachments:
            try:
                attachment = self._fetched_attachment(external_id.removeprefix(ATTACHMENT_PREFIX))
            except ConfluenceError as exc:
                raise Unresolvable(f"{external_id} could not be read: {exc}") from exc
            if attachment is None:
                raise Unresolvable(f"{external_id}: not attached to a page or blog post")
            self._attachments[external_id] = attachment
        return self._attachments[external_id]

    def _intersection(self, layers: list[_Grant]) -> Permissions:
        """Who every layer lets read, as principals any one of whom may read."""
        limiting = [layer for layer in layers if not layer.anyone]
        if not limiting:
            return Permissions(public=True, status="ok")
        common_groups = frozenset.intersection(*(layer.groups for layer in limiting))
        covered = set().union(*(self._group_members(g) for g in common_groups))
        candidates = set().union(*(layer.emails | set().union(*(self._group_members(g) for g in layer.groups))
                                   for layer in limiting))
        emails = {email for email in candidates - covered
                  if all(email in layer.emails or any(email in self._group_members(g) for g in layer.groups)
                         for layer in limiting)}
        principals = {self.group_principal(g) for g in common_groups} | {f"email:{e}" for e in emails}
        principals |= frozenset.intersection(*(layer.others for layer in limiting))
        return Permissions(principals=frozenset(principals), status="ok")

    def _space_grant(self, space_id: str) -> _Grant:
        return _remembered(self._space_grants, space_id, self._read_space_grant, f"space {space_id} permissions")

    def _read_space_grant(self, space_id: str) -> _Grant:
        emails: set[str] = set()
        groups: set[str] = set()
        for assignment in self._paged(f"/wiki/api/v2/spaces/{space_id}/permissions", {"limit": self.page_limit}):
            operation, principal = assignment.get("operation"), assignment.get("principal")
            if not isinstance(operation, dict) or not isinstance(principal, dict):
                raise Unresolvable(f"space {space_id}: a malformed permission assignment")
            if operation.get("key") != "read" or operation.get("targetType") != "space":
                continue
            kind, principal_id = principal.get("type"), principal.get("id")
            if not isinstance(principal_id, str | int):
                raise Unresolvable(f"space {space_id}: a read assignment without a principal id")
            if kind == "user":
                email = self._email(str(principal_id))
                if email:
                    emails.add(email)
            elif kind == "group":
                name = self._group_names().get(str(principal_id))
                if name is None:
                    raise Unresolvable(f"space {space_id}: read granted to unknown group {principal_id}")
                groups.add(name)
            else:
                raise Unresolvable(f"space {space_id}: read granted to a principal of type {kind!r}, "
                                    f"which this connector does not resolve")
        return _Grant(frozenset(emails), frozenset(groups))

    def _restriction(self, content_id: str) -> _Grant | None:
        """The content's own read restriction, or None when it has none."""
        return _remembered(self._restrictions, content_id, self._read_restriction,
                           f"content {content_id} read restriction")

    def _read_restriction(self, content_id: str) -> _Grant | None:
        # Data Center leaves the lists out unless expanded; Cloud returns them either way.
        body = self._get(f"{self.V1}/content/{content_id}/restriction/byOperation/read",
                         {"expand": "restrictions.user,restrictions.group"})
        restrictions = body.get("restrictions")
        if body.get("operation") != "read" or not isinstance(restrictions, dict):
            raise Unresolvable(f"content {content_id}: a malformed read restriction")
        emails: set[str] = set()
        groups: set[str] = set()
        for kind, listed in restrictions.items():
            if not isinstance(listed, dict) or not isinstance(listed.get("results"), list):
                raise Unresolvable(f"content {content_id}: a malformed {kind} restriction")
            results = listed["results"]
            if int(listed.get("size") or 0) > len(results):
                raise Unresolvable(f"content {content_id}: the {kind} restriction lists more than one reply holds")
            for entry in results:
                if not isinstance(entry, dict):
                    raise Unresolvable(f"content {content_id}: a malformed {kind} restriction entry")
                if kind == "user":
                    email = self._user_email(entry)
                    if email:
                        emails.add(email)
                elif kind == "group":
                    if not isinstance(entry.get("name"), str):
                        raise Unresolvable(f"content {content_id}: a group restriction without a name")
                    groups.add(entry["name"])
                else:
                    raise Unresolvable(f"content {content_id}: a restriction on {kind!r}, which this connector "
                                        f"does not resolve")
        if not emails and not groups and not any(int((v or {}).get("size") or 0) for v in restrictions.values()):
            return None
        return _Grant(frozenset(emails), frozenset(groups))

    # -- people and groups -----------------------------------------------------------------------------------

    def _user_email(self, user: dict[str, Any]) -> str | None:
        """The lower-cased email of a user object a listing returned, looked up when the listing leaves it out."""
        email = user.get("email")
        if isinstance(email, str) and email.strip():
            return normalize_principal(f"email:{email}").removeprefix("email:")
        return self._email(str(user.get("accountId") or ""))

    def _email(self, account_id: str) -> str | None:
        """The user's email, lower-cased, or None when Confluence does not show it (the user is then left out)."""
        if not account_id:
            return None
        if account_id not in self._emails:
            try:
                user = self._get(f"{self.V1}/user", {"accountId": account_id})
            except ConfluenceError as exc:
                if exc.status != 404:
                    raise Unresolvable(f"user {account_id}: {exc}") from exc
                user = {}
            email = user.get("email")
            self._emails[account_id] = email.strip().lower() if isinstance(email, str) and email.strip() else None
            if self._emails[account_id] is None:
                logger.info("confluence user %s has no visible email; left out of grants", account_id)
        return self._emails[account_id]

    def _group_names(self) -> dict[str, str]:
        if self._groups_by_id is None:
            try:
                groups = list(self._paged(f"{self.V1}/group", {"limit": 200}))
            except ConfluenceError as exc:
                raise Unresolvable(f"the groups could not be listed: {exc}") from exc
            self._groups_by_id = {str(g[self.GROUP_ID]): g["name"] for g in groups
                                  if isinstance(g.get(self.GROUP_ID), str | int) and isinstance(g.get("name"), str)}
        return self._groups_by_id

    def _direct_members(self, name: str) -> tuple[frozenset[str], frozenset[str]]:
        """The group's member users (emails) and member groups (names: Data Center nesting)."""
        if name not in self._members:
            ids = [group_id for group_id, group_name in self._group_names().items() if group_name == name]
            if not ids:
                raise Unresolvable(f"group {name!r} is not among the site's groups")
            emails: set[str] = set()
            groups: set[str] = set()
            try:
                for member in self._paged(self._members_path(ids[0]), {"limit": 200}):
                    if member.get("type") == "group":
                        if not isinstance(member.get("name"), str):
                            raise Unresolvable(f"group {name!r}: a member group without a name")
                        groups.add(member["name"])
                        continue
                    email = self._user_email(member)
                    if email:
                        emails.add(email)
            except ConfluenceError as exc:
                raise Unresolvable(f"members of group {name!r}: {exc}") from exc
            self._members[name] = (frozenset(emails), frozenset(groups))
        return self._members[name]

    def _members_path(self, group_id: str) -> str:
        return f"{self.V1}/group/{group_id}/membersByGroupId"

    def _group_members(self, name: str) -> frozenset[str]:
        """Everyone in the group, through nested groups too (a cycle is walked once)."""
        emails: set[str] = set()
        pending, seen = [name], set()
        while pending:
            group = pending.pop()
            if group in seen:
                continue
            seen.add(group)
            direct, nested = self._direct_members(group)
            emails |= direct
            pending.extend(nested)
        return frozenset(emails)

    def list_groups(self) -> Iterator[SourceGroup]:
        """Raises ValueError when the groups cannot be read, so the last good memberships are kept."""
        try:
            names = sorted(set(self._group_names().values()))
            listed = [(name, self._direct_members(name)) for name in names]
        except Unresolvable as exc:
            raise ValueError(str(exc)) from exc
        for name, (emails, groups) in listed:
            members = [f"email:{email}" for email in sorted(emails)]
            members += [self.group_principal(group) for group in sorted(groups)]
            yield SourceGroup(principal=self.group_principal(name), name=name, members=tuple(members))


def _results(body: dict[str, Any], path: str) -> list[dict[str, Any]]:
    results = body.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise ConfluenceError(200, f"GET {path}: results missing or malformed")
    return results




def _instant(value: Any) -> datetime | None:
    """An ISO time with its offset (as Cursors and Checkpoints hold them), or None."""
    found = iso_timestamp(value)
    return found if found is not None and found.tzinfo is not None else None


def _html(content: _Content) -> str:
    return f"<html><head><title>{escape(content.title)}</title></head><body>{content.body}</body></html>"


class _BearerToken(httpx.Auth):
    """A Data Center personal access token, sent as a bearer token (httpx drops it on a redirect off the site)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ConfluenceDataCenterConnector(ConfluenceConnector):
    """Confluence Data Center (and Server) 7.9 or later, which has REST v1 only, under the site's context path.

    The same sync as Cloud's (checkpoints, CQL changes, permissions as the intersection of the space grant and every
    restricted ancestor, groups), read where Data Center keeps it:

    - spaces: `GET /rest/api/space?status=current`, start/limit paginated through `_links.next` (relative to the
      context path); a space is known by its key, which is what its permissions are read by.
    - pages and blog posts: `GET /rest/api/content?spaceKey=…&type=page|blogpost&status=current&expand=version,
      ancestors,space,body.storage`. A page's parent is the last of its `ancestors`; a page listed without them
      is malformed (never a page without ancestors: that would skip their restrictions). One item:
      `GET /rest/api/content/{id}?expand=…`.
    - attachments: `GET /rest/api/content/{id}/child/attachment?expand=version`, media type and size from
      `extensions`, downloaded from `_links.download` on the site itself (no media store, no redirect off it).
    - who may read a space: `GET /rest/api/space/{key}/permissions` (Data Center 9.1 and later: `read`/`space`
      assignments to a user by `userKey`, a group by `name`, or anonymous users); older sites answer it 404 and are
      read through the JSON-RPC remote API they still have, `POST /rpc/json-rpc/confluenceservice-v2/
      getSpacePermissionSets` (its VIEWSPACE set: `userName`, `groupName`, both null for anonymous). Both need
      the account to be a space admin (or Confluence admin): a refusal makes the space's items unknown.
    - restrictions: `GET /rest/api/content/{id}/restriction/byOperation/read?expand=restrictions.user,
      restrictions.group` (users by `username` and `userKey`).
    - people: Data Center's user objects carry no email; `GET /rest/api/user?username=…` (or `?key=…`) and then the
      profile the mobile app reads, `GET /rest/mobile/1.0/profile/{username}`, which does (what Onyx reads too).
      A user whose email neither shows is left out of grants, as on Cloud.
    - groups: `GET /rest/api/group` (known by name; there are no group ids) and `GET /rest/api/group/{name}/member`.
    - changes: CQL over `GET /rest/api/content/search`, as on Cloud. Data Center's user object has no time zone, so
      CQL's bound is moved back by the widest offset (`UNKNOWN_ZONE_MARGIN`): an incremental run re-reads up to
      14 hours of edits rather than miss one.

    Section anchors are not added to Data Center links: its heading ids depend on the page title and editor.
    """

    V1 = "/rest/api"
    GROUP_ID = "name"
    RPC = "/rpc/json-rpc/confluenceservice-v2"

    def __init__(
        self, base_url: str, *, api_token: str, username: str = "", spaces: list[str] | None = None,
        include_archived_spaces: bool = False, api_url: str | None = None, anonymous_access_is_public: bool = False,
        timeout_s: float = 20.0, page_limit: int = 100, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _now, transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, email=username, api_token=api_token, spaces=spaces,
                         include_archived_spaces=include_archived_spaces, api_url=api_url, timeout_s=timeout_s,
                         page_limit=page_limit, sleep=sleep, clock=clock, transport=transport)
        # A Data Center context path may well be /wiki: kept, unlike Cloud's.
        self.base_url = base_url.rstrip("/")
        self.site = urlsplit(self.base_url).netloc.lower()
        self._client.base_url = httpx.URL((api_url or self.base_url).rstrip("/"))
        if not username:
            self._client.auth = _BearerToken(api_token)
        self.anonymous_access_is_public = anonymous_access_is_public

    def __repr__(self) -> str:  # never the token
        return f"ConfluenceDataCenterConnector({self.base_url!r})"

    def anonymous_principal(self) -> str:
        return f"confluence:{self.site}:anonymous"

    def _next_link(self, body: dict[str, Any]) -> str | None:
        links = body.get("_links") or {}
        link = links.get("next")
        if not isinstance(link, str) or not link.startswith("/"):
            return None
        context = links.get("context")
        if isinstance(context, str) and context.strip("/") and link.startswith(context.rstrip("/") + "/"):
            link = link[len(context.rstrip("/")):]
        return link

    # -- listing ---------------------------------------------------------------------------------------------

    def _listed_spaces(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**space, "id": space["key"]} for space in self._paged(f"{self.V1}/space", params)
                if isinstance(space.get("key"), str) and space["key"]]

    def _expand(self, with_body: bool) -> str:
        return "version,ancestors,space" + (",body.storage" if with_body else "")

    def _listing_request(self, space: dict[str, Any], kind: str, with_body: bool) -> tuple[str, dict[str, Any]]:
        return f"{self.V1}/content", {"spaceKey": space["key"], "type": kind, "status": "current",
                                      "expand": self._expand(with_body), "start": 0, "limit": self.page_limit}

    def _attachments_request(self, content: _Content) -> tuple[str, dict[str, Any]]:
        return (f"{self.V1}/content/{content.id}/child/attachment",
                {"expand": "version", "start": 0, "limit": self.page_limit})

    def _read_content(self, kind: str, content_id: str, *, with_body: bool) -> dict[str, Any]:
        reply = self._get(f"{self.V1}/content/{quote(content_id, safe='')}", {"expand": self._expand(with_body)})
        if reply.get("type") != kind:
            raise ConfluenceError(404, f"content {content_id} is a {reply.get('type')!r}, not a {kind}")
        return reply

    def _content_of(self, kind: str, result: dict[str, Any]) -> _Content | None:
        content_id, space_key = result.get("id"), (result.get("space") or {}).get("key")
        ancestors = result.get("ancestors")
        if not isinstance(content_id, str | int) or not isinstance(space_key, str) or (
                kind == "page" and not isinstance(ancestors, list)):
            return None
        parent = ancestors[-1] if kind == "page" and ancestors else None
        if parent is not None and (not isinstance(parent, dict) or not isinstance(parent.get("id"), str | int)):
            return None
        version = result.get("version") or {}
        body = ((result.get("body") or {}).get("storage") or {}).get("value") or ""
        return _Content(
            kind=kind, id=str(content_id), space_id=space_key, status=str(result.get("status") or "current"),
            title=str(result.get("title") or ""), parent_id=str(parent["id"]) if parent else None,
            parent_type=str(parent.get("type") or "") if parent else None,
            url=self._web_url((result.get("_links") or {}).get("webui")),
            modified_at=iso_timestamp(version.get("when")), body=body if isinstance(body, str) else "",
        )

    def _attachment_of(self, result: dict[str, Any], container: str) -> _Attachment | None:
        extensions = result.get("extensions") or {}
        attachment_id, size = result.get("id"), extensions.get("fileSize")
        links = result.get("_links") or {}
        link = links.get("download")
        if not isinstance(attachment_id, str | int) or not isinstance(size, int) or isinstance(size, bool) \
                or size < 0 or not isinstance(link, str) or not link.startswith("/"):
            logger.warning("confluence attachment %r of %s skipped: no id, size or download link on the site",
                           attachment_id, container)
            return None
        media_type = extensions.get("mediaType") or (result.get("metadata") or {}).get("mediaType") or ""
        return _Attachment(
            id=str(attachment_id), container=container, title=str(result.get("title") or ""),
            media_type=str(media_type).split(";", 1)[0].strip().lower(), size=size, download=link,
            url=self._web_url(links.get("webui")),
            modified_at=iso_timestamp((result.get("version") or {}).get("when")),
        )

    def _fetched_attachment(self, attachment_id: str) -> _Attachment | None:
        reply = self._get(f"{self.V1}/content/{quote(attachment_id, safe='')}", {"expand": "version,container"})
        container = reply.get("container") or {}
        if reply.get("type") == "attachment" and container.get("type") in COLLECTIONS \
                and isinstance(container.get("id"), str | int):
            return self._attachment_of(reply, f"{container['type']}:{container['id']}")
        return None

    def _web_url(self, webui: Any) -> str:
        return f"{self.base_url}{webui}" if isinstance(webui, str) and webui.startswith("/") else ""

    # -- permissions -----------------------------------------------------------------------------------------

    def _read_space_grant(self, space_key: str) -> _Grant:
        try:
            assignments = self._json(f"{self.V1}/space/{quote(space_key, safe='')}/permissions")
        except ConfluenceError as exc:
            if exc.status != 404:
                raise
            return self._remote_api_space_grant(space_key)  # before 9.1
        if not isinstance(assignments, list):
            raise Unresolvable(f"space {space_key}: the permissions reply is not a list")
        emails: set[str] = set()
        groups: set[str] = set()
        anonymous = False
        for assignment in assignments:
            operation = assignment.get("operation") if isinstance(assignment, dict) else None
            subject = assignment.get("subject") if isinstance(assignment, dict) else None
            if not isinstance(operation, dict) or not isinstance(subject, dict):
                raise Unresolvable(f"space {space_key}: a malformed permission assignment")
            if operation.get("operationKey") != "read" or operation.get("targetType") != "space":
                continue
            kind = subject.get("type")
            if kind == "user":
                email = self._user_email(subject)
                if email:
                    emails.add(email)
            elif kind == "group" and isinstance(subject.get("name"), str):
                groups.add(subject["name"])
            elif kind == "anonymous":
                anonymous = True
            else:
                raise Unresolvable(f"space {space_key}: read granted to a subject of type {kind!r}, which this "
                                    f"connector does not resolve")
        return self._grant(emails, groups, anonymous)

    def _remote_api_space_grant(self, space_key: str) -> _Grant:
        sets = self._json(f"{self.RPC}/getSpacePermissionSets", method="POST", body=[space_key])
        if not isinstance(sets, list) or not all(isinstance(entry, dict) for entry in sets):
            raise Unresolvable(f"space {space_key}: getSpacePermissionSets did not answer a list of sets")
        emails: set[str] = set()
        groups: set[str] = set()
        anonymous = False
        for entry in (e for e in sets if e.get("type") == "VIEWSPACE"):
            granted = entry.get("spacePermissions")
            if not isinstance(granted, list):
                raise Unresolvable(f"space {space_key}: a malformed VIEWSPACE permission set")
            for permission in granted:
                user = permission.get("userName") if isinstance(permission, dict) else None
                group = permission.get("groupName") if isinstance(permission, dict) else None
                if isinstance(user, str) and user:
                    email = self._email(user)
                    if email:
                        emails.add(email)
                elif isinstance(group, str) and group:
                    groups.add(group)
                elif isinstance(permission, dict) and user is None and group is None:
                    anonymous = True
                else:
                    raise Unresolvable(f"space {space_key}: a malformed VIEWSPACE permission")
        return self._grant(emails, groups, anonymous)

    def _grant(self, emails: set[str], groups: set[str], anonymous: bool) -> _Grant:
        if anonymous and self.anonymous_access_is_public:
            return _Grant(anyone=True)
        return _Grant(frozenset(emails), frozenset(groups),
                      others=frozenset({self.anonymous_principal()}) if anonymous else frozenset())

    # -- people and groups -----------------------------------------------------------------------------------

    def _user_email(self, user: dict[str, Any]) -> str | None:
        email = user.get("email")
        if isinstance(email, str) and email.strip():
            return normalize_principal(f"email:{email}").removeprefix("email:")
        username, key = user.get("username"), user.get("userKey")
        if isinstance(username, str) and username:
            return self._email(username)
        if isinstance(key, str) and key:
            return self._email(self._username_of(key))
        return None

    def _username_of(self, user_key: str) -> str:
        try:
            user = self._get(f"{self.V1}/user", {"key": user_key})
        except ConfluenceError as exc:
            if exc.status == 404:
                return ""  # a deleted user: nobody
            raise Unresolvable(f"user {user_key}: {exc}") from exc
        username = user.get("username")
        return username if isinstance(username, str) else ""

    def _email(self, username: str) -> str | None:
        if not username:
            return None
        if username not in self._emails:
            self._emails[username] = self._looked_up_email(username)
            if self._emails[username] is None:
                logger.info("confluence user %s has no visible email; left out of grants", username)
        return self._emails[username]

    def _looked_up_email(self, username: str) -> str | None:
        for path, params in ((f"{self.V1}/user", {"username": username}),
                             (f"/rest/mobile/1.0/profile/{quote(username, safe='')}", None)):
            try:
                found = self._get(path, params).get("email")
            except ConfluenceError as exc:
                if exc.status != 404:
                    raise Unresolvable(f"user {username}: {exc}") from exc
                return None  # no such user, or no mobile profile to show the email: left out
            if isinstance(found, str) and found.strip():
                return found.strip().lower()
        return None

    def _members_path(self, group_id: str) -> str:
        return f"{self.V1}/group/{quote(group_id, safe='')}/member"


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = ConfluenceConnector
