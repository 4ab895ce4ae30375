"""Confluence Cloud pages, read over the REST API with an account's email and API token (basic auth).

What is read, and from where (https://developer.atlassian.com/cloud/confluence/rest/):

- spaces: v2 `GET /wiki/api/v2/spaces`, pages: v2 `GET /wiki/api/v2/pages?space-id=…&body-format=storage`, both
  cursor-paginated through `_links.next`. A page's body is storage format (XHTML), parsed as HTML; its URL is
  `_links.webui` under `<site>/wiki`; its modified time is `version.createdAt`.
- who may read a space: v2 `GET /wiki/api/v2/spaces/{id}/permissions` (assignments of `read`/`space` to a user
  or a group, by id). v2 is used rather than v1's `?expand=permissions` because it is paginated and is the API
  Atlassian keeps; users come back as account ids and are looked up with v1 `GET /wiki/rest/api/user`.
- page read restrictions: v1 `GET /wiki/rest/api/content/{id}/restriction/byOperation/read`, for the page and
  every ancestor page (Confluence's view restrictions are inherited).
- groups: v1 `GET /wiki/rest/api/group` and `GET /wiki/rest/api/group/{id}/membersByGroupId`.

A page is readable by whoever the space lets read AND every restricted ancestor allows AND its own restriction
allows. ACLs here are one list of principals any of whom may read, so the intersection is worked out when the
permissions are fetched: a group every layer names stays a group principal, `confluence:<site>:group:<name>`
(its memberships are synced and expanded at query time); anyone else allowed by every layer is named by
`email:<address>`. A group membership change that decides a mixed case is therefore seen at the next permission
sync, which fetches every page's permissions again.

Fails closed: a restriction or permission lookup that is refused (403), fails, or comes back malformed, an
assignment to a principal type this connector does not know (roles, access classes such as anonymous users), an
ancestor that is not a page, or a restriction list longer than one reply makes the page's permissions unknown
(visible to nobody) with the reason recorded (Permissions.reason, logged by the sync). A user whose email
Confluence does not show (profile visibility) is left out of a grant: nobody gains access that way.

Settings are `Config` (`{"email": …, "spaces": [keys]}`); the API token is the source's encrypted `api_token`
secret and is never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from html import escape
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from connectors.base import (
    Capability,
    IncompleteListing,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
)
from identity.principals import normalize_principal

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.confluence")

PAGE_PREFIX = "page:"
# Retries of a throttled or unavailable call, and the longest Retry-After honoured before giving up on it.
MAX_ATTEMPTS = 4
MAX_RETRY_WAIT_S = 30.0
RETRIED_STATUSES = frozenset({429, 503})


class ConfluenceError(Exception):
    """A call that did not give a usable answer; `status` is the HTTP status (0 for a transport failure)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Unresolvable(Exception):
    """Why a page's readers cannot be known: its permissions are then unknown."""


@dataclass(frozen=True)
class _Grant:
    """One layer of who may read: users by email, groups by name, or anyone (anonymous access)."""

    emails: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    anyone: bool = False


@dataclass(frozen=True)
class _Page:
    id: str
    space_id: str
    title: str
    parent_id: str | None
    parent_type: str | None
    url: str
    modified_at: datetime | None
    body: str


_Read = TypeVar("_Read")


def _remembered(cache: dict[str, _Read | _Unresolvable], key: str, read: Callable[[str], _Read], what: str) -> _Read:
    """`read(key)`, once per sync: a lookup that failed stays failed (raised again as _Unresolvable), so every page
    under a space or ancestor whose permissions could not be read is unknown alike."""
    if key not in cache:
        try:
            cache[key] = read(key)
        except _Unresolvable as exc:
            cache[key] = exc
        except ConfluenceError as exc:
            cache[key] = _Unresolvable(f"{what}: {exc}")
    found = cache[key]
    if isinstance(found, _Unresolvable):
        raise found
    return found


class Config(BaseModel):
    """A Confluence Cloud site (Source.location is its URL) read as `email` with the `api_token` secret; `spaces`
    limits the sync to those space keys (all the account can see when empty)."""

    model_config = ConfigDict(extra="forbid")
    email: str
    spaces: list[str] = []


SECRETS: tuple[str, ...] = ("api_token",)


def build(source: Source, config: Config, secrets: dict[str, str]) -> ConfluenceConnector:
    return ConfluenceConnector(source.location, email=config.email, api_token=secrets.get("api_token", ""),
                               spaces=config.spaces or None)


class ConfluenceConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOAD, Capability.LIST_IDS, Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(
        self, base_url: str, *, email: str, api_token: str, spaces: list[str] | None = None,
        timeout_s: float = 20.0, page_limit: int = 250, sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/wiki")
        self.site = urlsplit(self.base_url).netloc.lower()
        self.space_keys = set(spaces) if spaces else None
        self.page_limit = page_limit
        self._sleep = sleep
        self._client = httpx.Client(base_url=self.base_url, auth=httpx.BasicAuth(email, api_token),
                                    timeout=httpx.Timeout(timeout_s), headers={"Accept": "application/json"},
                                    follow_redirects=False, transport=transport)
        self._pages: dict[str, _Page] = {}
        self._space_grants: dict[str, _Grant | _Unresolvable] = {}
        self._restrictions: dict[str, _Grant | _Unresolvable | None] = {}
        self._groups_by_id: dict[str, str] | None = None
        self._members: dict[str, frozenset[str]] = {}
        self._emails: dict[str, str | None] = {}

    def __repr__(self) -> str:  # never the token
        return f"ConfluenceConnector({self.base_url!r})"

    def group_principal(self, name: str) -> str:
        return f"confluence:{self.site}:group:{name}"

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One GET, JSON object back; 429/503 retried after Retry-After (bounded), anything else raises."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise ConfluenceError(0, f"GET {path}: {exc.__class__.__name__}") from exc
            if response.status_code in RETRIED_STATUSES and attempt < MAX_ATTEMPTS:
                wait = _retry_after(response.headers.get("Retry-After"), default=2.0 ** attempt)
                if wait > MAX_RETRY_WAIT_S:
                    raise ConfluenceError(response.status_code, f"GET {path}: asked to wait {wait:.0f}s")
                self._sleep(wait)
                continue
            if response.status_code != 200:
                raise ConfluenceError(response.status_code, f"GET {path}: HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError as exc:
                raise ConfluenceError(response.status_code, f"GET {path}: the reply is not JSON") from exc
            if not isinstance(body, dict):
                raise ConfluenceError(response.status_code, f"GET {path}: the reply is not a JSON object")
            return body
        raise ConfluenceError(429, f"GET {path}: still throttled after {MAX_ATTEMPTS} attempts")

    def _paged(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every result of a paginated listing, following `_links.next` (v2 cursors and v1 start/limit alike)."""
        next_path: str | None = path
        while next_path:
            body = self._get(next_path, params)
            params = None  # the next link carries the query
            results = body.get("results")
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise ConfluenceError(200, f"GET {next_path}: results missing or malformed")
            yield from results
            link = (body.get("_links") or {}).get("next")
            # v2 links start at /wiki/api/v2; v1 links are relative to the /wiki context.
            next_path = (link if link.startswith("/wiki/") else f"/wiki{link}") if isinstance(link, str) else None

    # -- content ---------------------------------------------------------------------------------------------

    def _spaces(self) -> list[dict[str, Any]]:
        try:
            spaces = list(self._paged("/wiki/api/v2/spaces", {"limit": self.page_limit}))
        except ConfluenceError as exc:
            raise SourceUnavailable(f"{self.base_url}: the spaces could not be listed ({exc}); nothing was "
                                    f"indexed and nothing was pruned") from exc
        return [s for s in spaces if self.space_keys is None or s.get("key") in self.space_keys]

    def _listed_pages(self, with_body: bool) -> Iterator[_Page]:
        problems: list[tuple[str, str]] = []
        for space in self._spaces():
            params: dict[str, Any] = {"space-id": space.get("id"), "limit": self.page_limit}
            if with_body:
                params["body-format"] = "storage"
            try:
                for result in self._paged("/wiki/api/v2/pages", params):
                    page = self._page(result)
                    if page is None:
                        problems.append((f"space {space.get('key')}", "malformed_page: a page without an id"))
                        continue
                    self._pages[page.id] = page
                    yield page
            except ConfluenceError as exc:
                problems.append((f"space {space.get('key')}", f"unlistable_space: {exc}"))
        if problems:
            raise IncompleteListing(problems)

    def _page(self, result: dict[str, Any]) -> _Page | None:
        page_id, space_id = result.get("id"), result.get("spaceId")
        if not isinstance(page_id, str | int) or not isinstance(space_id, str | int):
            return None
        version = result.get("version") or {}
        body = ((result.get("body") or {}).get("storage") or {}).get("value") or ""
        webui = (result.get("_links") or {}).get("webui") or ""
        parent = result.get("parentId")
        return _Page(
            id=str(page_id), space_id=str(space_id), title=str(result.get("title") or ""),
            parent_id=str(parent) if parent else None, parent_type=result.get("parentType") if parent else None,
            url=f"{self.base_url}/wiki{webui}" if webui else "", modified_at=_timestamp(version.get("createdAt")),
            body=body if isinstance(body, str) else "",
        )

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[SourceItem]:
        for page in self._listed_pages(with_body=True):
            content = _html(page).encode("utf-8")
            yield SourceItem(external_id=PAGE_PREFIX + page.id, title=page.title, mime_type="text/html",
                             size_bytes=len(content), read=partial(bytes, content), url=page.url,
                             modified_at=page.modified_at)

    def list_ids(self) -> Iterator[str]:
        for page in self._listed_pages(with_body=False):
            yield PAGE_PREFIX + page.id

    def sync_state(self) -> dict:
        return {}

    # -- permissions -----------------------------------------------------------------------------------------

    def fetch_permissions(self, external_id: str) -> Permissions:
        try:
            return self._permissions(external_id)
        except _Unresolvable as exc:
            return Permissions(status="unknown", reason=str(exc))

    def _permissions(self, external_id: str) -> Permissions:
        page = self._known_page(external_id.removeprefix(PAGE_PREFIX))
        layers = [self._space_grant(page.space_id)]
        seen: set[str] = set()
        current: _Page | None = page
        while current is not None:
            if current.id in seen:
                raise _Unresolvable(f"{external_id}: the ancestors of page {current.id} form a cycle")
            seen.add(current.id)
            restriction = self._restriction(current.id)
            if restriction is not None:
                layers.append(restriction)
            if current.parent_id is None:
                break
            if current.parent_type != "page":
                raise _Unresolvable(f"{external_id}: ancestor {current.parent_type or 'content'} "
                                    f"{current.parent_id} is not a page; its restrictions cannot be read")
            current = self._known_page(current.parent_id)
        return self._intersection(layers)

    def _known_page(self, page_id: str) -> _Page:
        """A page this sync listed, else read alone (a permission sync lists nothing): v2 `GET /pages/{id}`."""
        if page_id not in self._pages:
            try:
                page = self._page(self._get(f"/wiki/api/v2/pages/{page_id}"))
            except ConfluenceError as exc:
                raise _Unresolvable(f"page {page_id} cannot be read: {exc}") from exc
            if page is None:
                raise _Unresolvable(f"page {page_id}: malformed reply")
            self._pages[page_id] = page
        return self._pages[page_id]

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
        return Permissions(principals=frozenset(principals), status="ok")

    def _space_grant(self, space_id: str) -> _Grant:
        return _remembered(self._space_grants, space_id, self._read_space_grant, f"space {space_id} permissions")

    def _read_space_grant(self, space_id: str) -> _Grant:
        emails: set[str] = set()
        groups: set[str] = set()
        for assignment in self._paged(f"/wiki/api/v2/spaces/{space_id}/permissions", {"limit": self.page_limit}):
            operation, principal = assignment.get("operation"), assignment.get("principal")
            if not isinstance(operation, dict) or not isinstance(principal, dict):
                raise _Unresolvable(f"space {space_id}: a malformed permission assignment")
            if operation.get("key") != "read" or operation.get("targetType") != "space":
                continue
            kind, principal_id = principal.get("type"), principal.get("id")
            if not isinstance(principal_id, str | int):
                raise _Unresolvable(f"space {space_id}: a read assignment without a principal id")
            if kind == "user":
                email = self._email(str(principal_id))
                if email:
                    emails.add(email)
            elif kind == "group":
                name = self._group_names().get(str(principal_id))
                if name is None:
                    raise _Unresolvable(f"space {space_id}: read granted to unknown group {principal_id}")
                groups.add(name)
            else:
                raise _Unresolvable(f"space {space_id}: read granted to a principal of type {kind!r}, "
                                    f"which this connector does not resolve")
        return _Grant(frozenset(emails), frozenset(groups))

    def _restriction(self, content_id: str) -> _Grant | None:
        """The content's own read restriction, or None when it has none."""
        return _remembered(self._restrictions, content_id, self._read_restriction,
                           f"page {content_id} read restriction")

    def _read_restriction(self, content_id: str) -> _Grant | None:
        body = self._get(f"/wiki/rest/api/content/{content_id}/restriction/byOperation/read")
        restrictions = body.get("restrictions")
        if body.get("operation") != "read" or not isinstance(restrictions, dict):
            raise _Unresolvable(f"page {content_id}: a malformed read restriction")
        emails: set[str] = set()
        groups: set[str] = set()
        for kind, listed in restrictions.items():
            if not isinstance(listed, dict) or not isinstance(listed.get("results"), list):
                raise _Unresolvable(f"page {content_id}: a malformed {kind} restriction")
            results = listed["results"]
            if int(listed.get("size") or 0) > len(results):
                raise _Unresolvable(f"page {content_id}: the {kind} restriction lists more than one reply holds")
            for entry in results:
                if not isinstance(entry, dict):
                    raise _Unresolvable(f"page {content_id}: a malformed {kind} restriction entry")
                if kind == "user":
                    email = entry.get("email") or self._email(str(entry.get("accountId") or ""))
                    if email:
                        emails.add(normalize_principal(f"email:{email}").removeprefix("email:"))
                elif kind == "group":
                    if not isinstance(entry.get("name"), str):
                        raise _Unresolvable(f"page {content_id}: a group restriction without a name")
                    groups.add(entry["name"])
                else:
                    raise _Unresolvable(f"page {content_id}: a restriction on {kind!r}, which this connector "
                                        f"does not resolve")
        if not emails and not groups and not any(int((v or {}).get("size") or 0) for v in restrictions.values()):
            return None
        return _Grant(frozenset(emails), frozenset(groups))

    # -- people and groups -----------------------------------------------------------------------------------

    def _email(self, account_id: str) -> str | None:
        """The user's email, lower-cased, or None when Confluence does not show it (the user is then left out)."""
        if not account_id:
            return None
        if account_id not in self._emails:
            try:
                user = self._get("/wiki/rest/api/user", {"accountId": account_id})
            except ConfluenceError as exc:
                if exc.status != 404:
                    raise _Unresolvable(f"user {account_id}: {exc}") from exc
                user = {}
            email = user.get("email")
            self._emails[account_id] = email.strip().lower() if isinstance(email, str) and email.strip() else None
            if self._emails[account_id] is None:
                logger.info("confluence user %s has no visible email; left out of grants", account_id)
        return self._emails[account_id]

    def _group_names(self) -> dict[str, str]:
        if self._groups_by_id is None:
            try:
                groups = list(self._paged("/wiki/rest/api/group", {"limit": 200}))
            except ConfluenceError as exc:
                raise _Unresolvable(f"the groups could not be listed: {exc}") from exc
            self._groups_by_id = {str(g["id"]): g["name"] for g in groups
                                  if isinstance(g.get("id"), str | int) and isinstance(g.get("name"), str)}
        return self._groups_by_id

    def _group_members(self, name: str) -> frozenset[str]:
        if name not in self._members:
            ids = [group_id for group_id, group_name in self._group_names().items() if group_name == name]
            if not ids:
                raise _Unresolvable(f"group {name!r} is not among the site's groups")
            emails: set[str] = set()
            try:
                for member in self._paged(f"/wiki/rest/api/group/{ids[0]}/membersByGroupId", {"limit": 200}):
                    email = member.get("email") or self._email(str(member.get("accountId") or ""))
                    if email:
                        emails.add(str(email).strip().lower())
            except ConfluenceError as exc:
                raise _Unresolvable(f"members of group {name!r}: {exc}") from exc
            self._members[name] = frozenset(emails)
        return self._members[name]

    def list_groups(self) -> Iterator[SourceGroup]:
        """Raises ValueError when the groups cannot be read, so the last good memberships are kept."""
        try:
            names = sorted(set(self._group_names().values()))
            listed = [(name, self._group_members(name)) for name in names]
        except _Unresolvable as exc:
            raise ValueError(str(exc)) from exc
        for name, members in listed:
            yield SourceGroup(principal=self.group_principal(name), name=name,
                              members=tuple(f"email:{email}" for email in sorted(members)))


def _retry_after(value: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _html(page: _Page) -> str:
    return f"<html><head><title>{escape(page.title)}</title></head><body>{page.body}</body></html>"
