"""A stand-in for the Confluence Cloud REST API (v2 spaces, pages, blog posts and attachments, attachment downloads,
v1 restrictions, groups, users and CQL content search), serving a scenario a test writes and may change between
syncs.

    scenario = {
        "users": {"u-alice": "Alice@corp.example"},          # account id -> email (None: not visible)
        "groups": {"engineering": ["u-alice", "group:sre"]},  # group name -> members: account ids, "group:<name>"
        "spaces": {"ENG": {"id": "100", "read": {"groups": ["engineering"], "users": []},
                           "status": "current"}},             # or "archived"
        "pages": {"201": {"space": "ENG", "parent": None, "title": "Runbook", "body": "<p>…</p>",
                          "restrict": {"groups": [], "users": ["u-alice"]},   # restrict: None for none
                          "status": "current", "modified": "2025-03-01T10:00:00Z"}},   # both optional
        "blogposts": {"601": {"space": "ENG", "title": "News", "body": "<p>…</p>", "restrict": None}},
        "attachments": {"att901": {"container": "201", "title": "plan.md", "mediaType": "text/markdown",
                                   "data": "# Plan …"}},      # optional: status, modified, fileSize (as listed)
        "forbidden": {"201"},                                  # content ids whose restriction lookup gets 403
        "time_zone": "Europe/Berlin",                          # the account's; CQL dates are read in it (UTC)
        "time_zone_hidden": False,                             # True: /user/current does not show it
    }

Wire format as documented (https://developer.atlassian.com/cloud/confluence/rest/v2/ and /v1/): v2 listings are
cursor-paginated with `_links.next` ("/wiki/api/v2/…?cursor=…"), v1 listings by start/limit (content search by
cursor) with `_links.next` relative to /wiki. Every listing returns at most `page_size` results whatever limit is
asked (Confluence caps limits too), so small scenarios still paginate. v2 content listings return current and
archived content unless `status` says otherwise; trashed content is found by no listing, search or lookup. An
attachment's `downloadLink` redirects (302) to a media URL off the API, as Cloud's does.

CQL: only what the connector needs is understood, `lastmodified >= "yyyy/MM/dd HH:mm"` (or `>`), `type in (…)` of
page, blogpost, attachment and `space in ("KEY", …)`, joined by `and`, with `cqlcontext`'s `contentStatuses`
(current by default, archived; trashed refused as Confluence does). Anything else gets 400, so the connector
cannot come to rely on syntax nobody checked. Content of archived spaces is left out, as Confluence's search does.

Requests without the expected basic auth get 401. Routes are request paths, so
`fail("/wiki/rest/api/content/201/restriction/byOperation/read", status=403)` scripts a fault; `throttle_every=3`
answers every third request with a 429 whose Retry-After cycles through `retry_afters` (recorded in `throttled`).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode
from zoneinfo import ZoneInfo

from tests.standins.base import RecordedRequest, Reply, StandInServer

V2 = "/wiki/api/v2"
V1 = "/wiki/rest/api"
RPC = "/rpc/json-rpc/confluenceservice-v2"
DEFAULT_MODIFIED = "2025-03-01T10:00:00.000Z"
CQL_TYPES = frozenset({"page", "blogpost", "attachment"})
MEDIA_TOKEN = "media-token"


def _group_id(name: str) -> str:
    return f"gid-{name}"


def _slug(title: str) -> str:
    return re.sub(r"\W+", "+", title).strip("+")


def _modified(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry.get("modified", DEFAULT_MODIFIED).replace("Z", "+00:00"))


class CqlRefused(ValueError):
    """CQL this stand-in does not understand (Confluence would read it; we cannot check what it would do)."""


def parse_cql(cql: str, zone: ZoneInfo) -> tuple[datetime | None, set[str] | None, set[str] | None]:
    """(modified since, content types, space keys) of the CQL subset understood; CqlRefused otherwise."""
    since: datetime | None = None
    types: set[str] | None = None
    spaces: set[str] | None = None
    for clause in re.split(r"\s+and\s+", cql.strip(), flags=re.I):
        if match := re.fullmatch(r'lastmodified\s*(>=|>)\s*"(\d{4}/\d{2}/\d{2} \d{2}:\d{2})"', clause, re.I):
            local = datetime.strptime(match[2], "%Y/%m/%d %H:%M").replace(tzinfo=zone)
            # `>` a minute means from the next minute on.
            since = local.replace(second=59, microsecond=999999) if match[1] == ">" else local
        elif match := re.fullmatch(r"type\s+in\s*\(([^()]*)\)", clause, re.I):
            types = {name.strip().strip('"').lower() for name in match[1].split(",")}
            if not types <= CQL_TYPES:
                raise CqlRefused(f"content types {sorted(types - CQL_TYPES)}")
        elif match := re.fullmatch(r"space\s+in\s*\(([^()]*)\)", clause, re.I):
            keys = [key.strip() for key in match[1].split(",")]
            if not all(re.fullmatch(r'"[^"\\]+"', key) for key in keys):
                raise CqlRefused(f"space keys not quoted: {match[1]}")
            spaces = {key.strip('"') for key in keys}
        else:
            raise CqlRefused(f"clause {clause!r}")
    return since, types, spaces


class ConfluenceStandIn(StandInServer):
    def __init__(self, scenario: dict[str, Any], *, email: str = "bot@corp.example", api_token: str = "secret-token",
                 page_size: int = 2, throttle_every: int | None = None,
                 retry_afters: tuple[float, ...] = (1.0, 2.0, 3.0)) -> None:
        super().__init__()
        self.scenario = scenario
        self.page_size = page_size
        self.scenario_lock = threading.Lock()
        self._auth = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()
        self.throttle_every = throttle_every
        self._retry_afters = itertools.cycle(retry_afters)
        self._arrivals = itertools.count(1)
        self.throttled: list[float] = []

    def error_body(self, code: int) -> Any:
        return {"statusCode": code, "message": f"stand-in error {code}"}

    # Paging ---------------------------------------------------------------------------------------------------

    def _cursor_page(self, request: RecordedRequest, items: list[dict[str, Any]], *, v1: bool = False
                     ) -> dict[str, Any]:
        offset = int(base64.urlsafe_b64decode(request.query["cursor"]).decode()) if "cursor" in request.query else 0
        limit = min(int(request.query.get("limit") or 25), self.page_size)
        body: dict[str, Any] = {"results": items[offset:offset + limit], "_links": {"base": f"{self.url}/wiki"}}
        if offset + limit < len(items):
            query = {k: v for k, v in request.query.items() if k != "cursor"}
            query["cursor"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            path = request.path.removeprefix("/wiki") if v1 else request.path
            body["_links"]["next"] = f"{path}?{urlencode(query)}"
        return body

    def _offset_page(self, request: RecordedRequest, items: list[dict[str, Any]]) -> dict[str, Any]:
        start = int(request.query.get("start") or 0)
        limit = min(int(request.query.get("limit") or 25), self.page_size)
        results = items[start:start + limit]
        body: dict[str, Any] = {"results": results, "start": start, "limit": limit, "size": len(results),
                                "_links": {"base": f"{self.url}/wiki", "context": "/wiki"}}
        if start + limit < len(items):
            query = {**request.query, "start": str(start + limit), "limit": str(limit)}
            body["_links"]["next"] = f"{request.path.removeprefix('/wiki')}?{urlencode(query)}"
        return body

    # Objects --------------------------------------------------------------------------------------------------

    def _user(self, account_id: str) -> dict[str, Any]:
        user = {"type": "known", "accountId": account_id, "accountType": "atlassian",
                "publicName": account_id, "displayName": account_id}
        email = self.scenario["users"].get(account_id)
        if email:
            user["email"] = email
        return user

    def _space(self, key: str, space: dict[str, Any]) -> dict[str, Any]:
        return {"id": space["id"], "key": key, "name": space.get("name", key), "type": "global",
                "status": space.get("status", "current"), "_links": {"webui": f"/spaces/{key}"}}

    def _content_entry(self, content_id: str) -> tuple[str, dict[str, Any]] | None:
        """(type, entry) of a page or blog post that is not trashed, or None."""
        for kind, collection in (("page", "pages"), ("blogpost", "blogposts")):
            entry = self.scenario.get(collection, {}).get(content_id)
            if entry is not None and entry.get("status", "current") != "trashed":
                return kind, entry
        return None

    def _content(self, kind: str, content_id: str, entry: dict[str, Any], with_body: bool) -> dict[str, Any]:
        space = self.scenario["spaces"][entry["space"]]
        if kind == "page":
            webui = f"/spaces/{entry['space']}/pages/{content_id}/{_slug(entry['title'])}"
        else:
            webui = f"/spaces/{entry['space']}/blog/2025/03/01/{content_id}/{_slug(entry['title'])}"
        found: dict[str, Any] = {
            "id": content_id, "status": entry.get("status", "current"), "title": entry["title"],
            "spaceId": space["id"], "authorId": "u-admin", "createdAt": "2025-01-01T09:00:00.000Z",
            "version": {"number": entry.get("version", 1), "createdAt": entry.get("modified", DEFAULT_MODIFIED),
                        "authorId": "u-admin", "minorEdit": False},
            "_links": {"webui": webui, "tinyui": f"/x/{content_id}"},
        }
        if kind == "page":
            found["parentId"] = entry.get("parent")
            found["parentType"] = "page" if entry.get("parent") else None
        if with_body:
            found["body"] = {"storage": {"value": entry["body"], "representation": "storage"}}
        return found

    def _attachment(self, attachment_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        container = entry["container"]
        kind, _ = self._content_entry(container) or ("page", {})
        data = entry["data"].encode() if isinstance(entry["data"], str) else entry["data"]
        download = f"/download/attachments/{container}/{quote(entry['title'])}?version=1&api=v2"
        found = {
            "id": attachment_id, "status": entry.get("status", "current"), "title": entry["title"],
            "createdAt": entry.get("modified", DEFAULT_MODIFIED), "mediaType": entry["mediaType"],
            "fileId": f"file-{attachment_id}", "fileSize": entry.get("fileSize", len(data)),
            "webuiLink": f"/pages/viewpageattachments.action?pageId={container}&preview={quote(entry['title'])}",
            "downloadLink": download,
            "version": {"number": 1, "createdAt": entry.get("modified", DEFAULT_MODIFIED)},
            "_links": {"download": download},
        }
        found["pageId" if kind == "page" else "blogPostId"] = container
        return found

    def _attachments_of(self, container: str) -> list[tuple[str, dict[str, Any]]]:
        return [(attachment_id, entry) for attachment_id, entry in sorted(self.scenario.get("attachments", {}).items())
                if entry["container"] == container and entry.get("status", "current") != "trashed"]

    # Routes ---------------------------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        if self.throttle_every and next(self._arrivals) % self.throttle_every == 0:
            wait = next(self._retry_afters)
            self.throttled.append(wait)
            return Reply(429, self.error_body(429), {"Retry-After": f"{wait:g}"})
        if match := re.fullmatch(r"/media/([^/]+)", request.path):
            # Off the API: the signed URL is the credential, as on Cloud's media store.
            with self.scenario_lock:
                entry = self.scenario.get("attachments", {}).get(match[1])
            if entry is None or request.query.get("token") != MEDIA_TOKEN:
                return Reply(404, self.error_body(404))
            return Reply(200, entry["data"].encode() if isinstance(entry["data"], str) else entry["data"])
        if request.headers.get("authorization") != self._auth:
            return Reply(401, {"statusCode": 401, "message": "Unauthorized; scope does not match"})
        with self.scenario_lock:
            return self._answer(request)

    def _answer(self, request: RecordedRequest) -> Reply:
        path, scenario = request.path, self.scenario
        statuses = set(request.query.get("status", "current,archived").split(","))
        if path == f"{V2}/spaces":
            wanted = set(request.query.get("status", "current,archived").split(","))
            spaces = [self._space(key, space) for key, space in scenario["spaces"].items()
                      if space.get("status", "current") in wanted]
            return Reply(200, self._cursor_page(request, spaces))
        if match := re.fullmatch(rf"{V2}/spaces/([^/]+)/permissions", path):
            return self._space_permissions(request, match[1])
        if match := re.fullmatch(rf"{V2}/(pages|blogposts)", path):
            space_ids = set(request.query.get("space-id", "").split(",")) - {""}
            with_body = request.query.get("body-format") == "storage"
            kind = "page" if match[1] == "pages" else "blogpost"
            listed = [self._content(kind, content_id, entry, with_body)
                      for content_id, entry in sorted(scenario.get(match[1], {}).items())
                      if entry.get("status", "current") in statuses
                      and (not space_ids or scenario["spaces"][entry["space"]]["id"] in space_ids)]
            return Reply(200, self._cursor_page(request, listed))
        if match := re.fullmatch(rf"{V2}/(pages|blogposts)/([^/]+)", path):
            found = self._content_entry(match[2])
            if found is None or found[0] != ("page" if match[1] == "pages" else "blogpost"):
                return Reply(404, self.error_body(404))
            return Reply(200, self._content(found[0], match[2], found[1],
                                            request.query.get("body-format") == "storage"))
        if match := re.fullmatch(rf"{V2}/(pages|blogposts)/([^/]+)/attachments", path):
            if self._content_entry(match[2]) is None:
                return Reply(404, self.error_body(404))
            listed = [self._attachment(attachment_id, entry) for attachment_id, entry in self._attachments_of(match[2])
                      if entry.get("status", "current") in statuses]
            return Reply(200, self._cursor_page(request, listed))
        if match := re.fullmatch(rf"{V2}/attachments/([^/]+)", path):
            entry = scenario.get("attachments", {}).get(match[1])
            if entry is None or entry.get("status", "current") == "trashed":
                return Reply(404, self.error_body(404))
            return Reply(200, self._attachment(match[1], entry))
        if match := re.fullmatch(r"/wiki/download/attachments/([^/]+)/([^/]+)", path):
            for attachment_id, entry in self._attachments_of(match[1]):
                if quote(entry["title"]) == match[2] or entry["title"] == match[2]:
                    return Reply(302, b"", {"Location": f"{self.url}/media/{attachment_id}?token={MEDIA_TOKEN}"})
            return Reply(404, self.error_body(404))
        if match := re.fullmatch(rf"{V1}/content/([^/]+)/restriction/byOperation/read", path):
            return self._restriction(match[1])
        if path == f"{V1}/content/search":
            return self._search(request)
        if path == f"{V1}/group":
            groups = [{"type": "group", "name": name, "id": _group_id(name)} for name in sorted(scenario["groups"])]
            return Reply(200, self._offset_page(request, groups))
        if match := re.fullmatch(rf"{V1}/group/([^/]+)/membersByGroupId", path):
            by_id = {_group_id(name): members for name, members in scenario["groups"].items()}
            if match[1] not in by_id:
                return Reply(404, self.error_body(404))
            members = [{"type": "group", "name": m.removeprefix("group:"), "id": _group_id(m.removeprefix("group:"))}
                       if m.startswith("group:") else self._user(m) for m in by_id[match[1]]]
            return Reply(200, self._offset_page(request, members))
        if path == f"{V1}/user/current":
            current = self._user("u-bot")
            if not scenario.get("time_zone_hidden"):
                current["timeZone"] = scenario.get("time_zone", "UTC")
            return Reply(200, current)
        if path == f"{V1}/user":
            account_id = request.query.get("accountId", "")
            if account_id not in scenario["users"]:
                return Reply(404, self.error_body(404))
            return Reply(200, self._user(account_id))
        return Reply(404, self.error_body(404))

    def _space_permissions(self, request: RecordedRequest, space_id: str) -> Reply:
        keyed = {space["id"]: space for space in self.scenario["spaces"].values()}
        if space_id not in keyed:
            return Reply(404, self.error_body(404))
        read = keyed[space_id].get("read") or {}
        assignments: list[dict[str, Any]] = []
        for kind, names in (("user", read.get("users", [])), ("group", read.get("groups", []))):
            for name in names:
                principal = {"type": kind, "id": name if kind == "user" else _group_id(name)}
                # Real spaces grant more than reading; only read/space decides who sees pages.
                for key, target in (("read", "space"), ("create", "page")):
                    assignments.append({"id": str(len(assignments) + 1), "principal": principal,
                                        "operation": {"key": key, "targetType": target}})
        for extra in read.get("other", []):
            assignments.append({"id": str(len(assignments) + 1), "principal": extra,
                                "operation": {"key": "read", "targetType": "space"}})
        return Reply(200, self._cursor_page(request, assignments))

    def _restriction(self, content_id: str) -> Reply:
        if content_id in self.scenario.get("forbidden", set()):
            return Reply(403, self.error_body(403))
        found = self._content_entry(content_id)
        if found is None:
            return Reply(404, self.error_body(404))
        restrict = found[1].get("restrict") or {}
        users = [self._user(u) for u in restrict.get("users", [])]
        groups = [{"type": "group", "name": g, "id": _group_id(g)} for g in restrict.get("groups", [])]
        return Reply(200, {
            "operation": "read",
            "restrictions": {
                "user": {"results": users, "start": 0, "limit": 200, "size": len(users)},
                "group": {"results": groups, "start": 0, "limit": 200, "size": len(groups)},
            },
            "_links": {"base": f"{self.url}/wiki", "context": "/wiki"},
        })

    def _search(self, request: RecordedRequest) -> Reply:
        found = self._searched(request)
        if isinstance(found, Reply):
            return found
        return Reply(200, self._cursor_page(request, found, v1=True))

    def _searched(self, request: RecordedRequest) -> list[dict[str, Any]] | Reply:
        """What a content search finds, in Confluence's order; a 400 reply for CQL this stand-in does not read."""
        scenario = self.scenario
        try:
            context = json.loads(request.query.get("cqlcontext") or "{}")
            statuses = set(context.get("contentStatuses") or ["current"])
            if not statuses <= {"current", "archived", "draft"}:
                raise CqlRefused(f"contentStatuses {sorted(statuses)}")
            since, types, keys = parse_cql(request.query.get("cql", ""), ZoneInfo(scenario.get("time_zone", "UTC")))
        except (CqlRefused, ValueError) as exc:
            return Reply(400, {"statusCode": 400, "message": f"Could not parse cql: {exc}"})
        found: list[tuple[datetime, dict[str, Any]]] = []

        def consider(kind: str, content_id: str, entry: dict[str, Any], space_key: str) -> None:
            space = scenario["spaces"][space_key]
            if (space.get("status", "current") != "current" or entry.get("status", "current") not in statuses
                    or (types is not None and kind not in types) or (keys is not None and space_key not in keys)
                    or (since is not None and _modified(entry) < since)):
                return
            found.append((_modified(entry), {"id": content_id, "type": kind, "status": entry.get("status", "current"),
                                             "title": entry["title"], "_links": {"self": f"{V1}/content/{content_id}"}}))

        for kind, collection in (("page", "pages"), ("blogpost", "blogposts")):
            for content_id, entry in scenario.get(collection, {}).items():
                consider(kind, content_id, entry, entry["space"])
        for attachment_id, entry in scenario.get("attachments", {}).items():
            container = self._content_entry(entry["container"])
            if container is not None:
                consider("attachment", attachment_id, entry, container[1]["space"])
        found.sort(key=lambda pair: (pair[0], pair[1]["id"]))
        return [content for _, content in found]


def utc(text: str) -> datetime:
    """A scenario time ("2025-03-01T10:00:00Z") as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class ConfluenceDataCenterStandIn(ConfluenceStandIn):
    """Confluence Data Center (REST v1 only, https://developer.atlassian.com/server/confluence/rest/) serving the
    same scenario under a context path (`context`, "/confluence" by default), read with a personal access token
    (`Authorization: Bearer <pat>`), or with `username` and a password when given.

    What differs from Cloud, as Data Center does it: spaces, content, attachments and search are start/limit
    paginated with `_links.next` relative to the context path; content objects carry `space`, `version.when` (with
    the server's offset) and `ancestors` (root first) only when `expand` asks for them; restrictions list their
    users and groups only when expanded (`restrictions.user,restrictions.group`), users by `username` and `userKey`
    with no email; `/rest/api/user` shows no email either, the mobile profile (`/rest/mobile/1.0/profile/{name}`)
    does; groups have names, no ids, and `/rest/api/group/{name}/member` lists a group's effective users (the
    directory resolves nesting); attachments are downloaded from the site itself. Who may read a space:
    `GET /rest/api/space/{key}/permissions` from `version` (9, 1) on (a space read entry "anonymous": True grants
    anonymous users; "other" entries are answered as subjects of their own type), and before 9.0 the JSON-RPC remote
    API's `getSpacePermissionSets` (a space with "other" entries answers 500 there). The account's time zone is not
    shown.
    """

    def __init__(self, scenario: dict[str, Any], *, pat: str = "pat-secret", username: str = "",
                 password: str = "", context: str = "/confluence", version: tuple[int, int] = (9, 2),
                 page_size: int = 2, throttle_every: int | None = None,
                 retry_afters: tuple[float, ...] = (1.0, 2.0, 3.0)) -> None:
        super().__init__(scenario, page_size=page_size, throttle_every=throttle_every, retry_afters=retry_afters)
        self.context = context
        self.version = version
        self._auth = ("Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()) if username \
            else f"Bearer {pat}"

    @property
    def site_url(self) -> str:
        return self.url + self.context

    def default(self, request: RecordedRequest) -> Reply:
        if self.throttle_every and next(self._arrivals) % self.throttle_every == 0:
            wait = next(self._retry_afters)
            self.throttled.append(wait)
            return Reply(429, self.error_body(429), {"Retry-After": f"{wait:g}"})
        if request.headers.get("authorization") != self._auth:
            return Reply(401, {"statusCode": 401, "message": "This request requires authentication"})
        if not request.path.startswith(self.context + "/"):
            return Reply(404, self.error_body(404))
        with self.scenario_lock:
            return self._answer_dc(request, request.path.removeprefix(self.context))

    # Objects --------------------------------------------------------------------------------------------------

    def _page_of(self, request: RecordedRequest, items: list[Any]) -> dict[str, Any]:
        start = int(request.query.get("start") or 0)
        limit = min(int(request.query.get("limit") or 25), self.page_size)
        results = items[start:start + limit]
        body: dict[str, Any] = {"results": results, "start": start, "limit": limit, "size": len(results),
                                "_links": {"base": self.site_url, "context": self.context}}
        if start + limit < len(items):
            query = {**request.query, "start": str(start + limit), "limit": str(limit)}
            body["_links"]["next"] = f"{request.path.removeprefix(self.context)}?{urlencode(query)}"
        return body

    def _dc_user(self, username: str) -> dict[str, Any]:
        return {"type": "known", "username": username, "userKey": f"key-{username}", "displayName": username}

    def _when(self, entry: dict[str, Any]) -> str:
        return _modified(entry).astimezone(ZoneInfo("Europe/Berlin")).isoformat(timespec="milliseconds")

    def _ancestors(self, content_id: str) -> list[dict[str, Any]]:
        chain: list[dict[str, Any]] = []
        parent = self.scenario.get("pages", {}).get(content_id, {}).get("parent")
        while parent:
            entry = self.scenario["pages"][parent]
            chain.insert(0, {"id": parent, "type": "page", "status": entry.get("status", "current"),
                             "title": entry["title"]})
            parent = entry.get("parent")
        return chain

    def _dc_content(self, kind: str, content_id: str, entry: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        key = entry["space"]
        webui = f"/display/{key}/{_slug(entry['title'])}" if kind == "page" \
            else f"/display/{key}/2025/03/01/{_slug(entry['title'])}"
        found: dict[str, Any] = {"id": content_id, "type": kind, "status": entry.get("status", "current"),
                                 "title": entry["title"],
                                 "_links": {"webui": webui, "tinyui": f"/x/{content_id}",
                                            "self": f"{self.site_url}/rest/api/content/{content_id}"},
                                 "_expandable": {}}
        if "space" in expand:
            space = self.scenario["spaces"][key]
            found["space"] = {"id": int(space["id"]), "key": key, "name": space.get("name", key), "type": "global"}
        if "version" in expand:
            found["version"] = {"by": self._dc_user("u-admin"), "when": self._when(entry),
                                "number": entry.get("version", 1), "minorEdit": False}
        if "ancestors" in expand:
            found["ancestors"] = self._ancestors(content_id) if kind == "page" else []
        if "body.storage" in expand:
            found["body"] = {"storage": {"value": entry["body"], "representation": "storage"}}
        return found

    def _dc_attachment(self, attachment_id: str, entry: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        container = entry["container"]
        data = entry["data"].encode() if isinstance(entry["data"], str) else entry["data"]
        preview = quote(f"/{container}/{attachment_id}/{entry['title']}", safe="")
        found: dict[str, Any] = {
            "id": attachment_id, "type": "attachment", "status": entry.get("status", "current"),
            "title": entry["title"], "metadata": {"mediaType": entry["mediaType"]},
            "extensions": {"mediaType": entry["mediaType"], "fileSize": entry.get("fileSize", len(data)),
                           "comment": ""},
            "_links": {"webui": f"/pages/viewpageattachments.action?pageId={container}&preview={preview}",
                       "download": f"/download/attachments/{container}/{quote(entry['title'])}?version=1"
                                   f"&modificationDate=1740823200000&api=v2"},
        }
        if "version" in expand:
            found["version"] = {"when": self._when(entry), "number": 1}
        if "container" in expand:
            kind, _ = self._content_entry(container) or ("page", {})
            found["container"] = {"id": container, "type": kind}
        return found

    def _effective_members(self, group: str, seen: frozenset[str] = frozenset()) -> list[str]:
        users: list[str] = []
        for member in self.scenario["groups"].get(group, []):
            if member.startswith("group:"):
                nested = member.removeprefix("group:")
                if nested not in seen:
                    users += [u for u in self._effective_members(nested, seen | {group}) if u not in users]
            elif member not in users:
                users.append(member)
        return users

    # Routes ---------------------------------------------------------------------------------------------------

    def _answer_dc(self, request: RecordedRequest, path: str) -> Reply:
        scenario = self.scenario
        expand = set(request.query.get("expand", "").split(",")) - {""}
        if path == "/rest/api/space":
            wanted = set(request.query.get("status", "current,archived").split(","))
            spaces = [{"id": int(space["id"]), "key": key, "name": space.get("name", key), "type": "global",
                       "_links": {"webui": f"/display/{key}"}}
                      for key, space in scenario["spaces"].items() if space.get("status", "current") in wanted]
            return Reply(200, self._page_of(request, spaces))
        if match := re.fullmatch(r"/rest/api/space/([^/]+)/permissions", path):
            return self._dc_space_permissions(match[1])
        if path == f"{RPC}/getSpacePermissionSets" and request.method == "POST":
            return self._rpc_space_permissions(request)
        if path == "/rest/api/content":
            kind, key = request.query.get("type", "page"), request.query.get("spaceKey")
            statuses = set(request.query.get("status", "current").split(","))
            collection = "pages" if kind == "page" else "blogposts"
            listed = [self._dc_content(kind, content_id, entry, expand)
                      for content_id, entry in sorted(scenario.get(collection, {}).items())
                      if entry.get("status", "current") in statuses and (key is None or entry["space"] == key)]
            return Reply(200, self._page_of(request, listed))
        if path == "/rest/api/content/search":
            return self._dc_search(request)
        if match := re.fullmatch(r"/rest/api/content/([^/]+)/child/attachment", path):
            if self._content_entry(match[1]) is None:
                return Reply(404, self.error_body(404))
            listed = [self._dc_attachment(attachment_id, entry, expand)
                      for attachment_id, entry in self._attachments_of(match[1])]
            return Reply(200, self._page_of(request, listed))
        if match := re.fullmatch(r"/rest/api/content/([^/]+)/restriction/byOperation/read", path):
            reply = self._restriction(match[1])
            if reply.status != 200:
                return reply
            restrictions = json.loads(reply.encoded())["restrictions"]
            body: dict[str, Any] = {"operation": "read", "restrictions": {}, "_expandable": {"content": ""}}
            for kind in ("user", "group"):
                if f"restrictions.{kind}" not in expand:
                    body["_expandable"][kind] = f"/rest/api/content/{match[1]}/restriction/byOperation/read/{kind}"
                    continue
                listed = restrictions[kind]
                if kind == "user":
                    listed["results"] = [self._dc_user(user["accountId"]) for user in listed["results"]]
                else:
                    listed["results"] = [{"type": "group", "name": group["name"]} for group in listed["results"]]
                body["restrictions"][kind] = listed
            return Reply(200, body)
        if match := re.fullmatch(r"/rest/api/content/([^/]+)", path):
            attachment = scenario.get("attachments", {}).get(match[1])
            if attachment is not None and attachment.get("status", "current") != "trashed":
                return Reply(200, self._dc_attachment(match[1], attachment, expand))
            found = self._content_entry(match[1])
            if found is None:
                return Reply(404, self.error_body(404))
            return Reply(200, self._dc_content(found[0], match[1], found[1], expand))
        if match := re.fullmatch(r"/download/attachments/([^/]+)/([^/]+)", path):
            for _, entry in self._attachments_of(match[1]):
                if quote(entry["title"]) == match[2] or entry["title"] == match[2]:
                    return Reply(200, entry["data"].encode() if isinstance(entry["data"], str) else entry["data"])
            return Reply(404, self.error_body(404))
        if path == "/rest/api/group":
            groups = [{"type": "group", "name": name} for name in sorted(scenario["groups"])]
            return Reply(200, self._page_of(request, groups))
        if match := re.fullmatch(r"/rest/api/group/([^/]+)/member", path):
            name = unquote(match[1])
            if name not in scenario["groups"]:
                return Reply(404, self.error_body(404))
            return Reply(200, self._page_of(request, [self._dc_user(u) for u in self._effective_members(name)]))
        if path == "/rest/api/user/current":
            return Reply(200, self._dc_user("u-bot"))
        if path == "/rest/api/user":
            username = request.query.get("username") or request.query.get("key", "").removeprefix("key-")
            if username not in scenario["users"]:
                return Reply(404, self.error_body(404))
            return Reply(200, self._dc_user(username))
        if match := re.fullmatch(r"/rest/mobile/1.0/profile/([^/]+)", path):
            username = unquote(match[1])
            if username not in scenario["users"]:
                return Reply(404, self.error_body(404))
            profile = {"userName": username, "fullName": username, "photoUrl": ""}
            if scenario["users"][username]:
                profile["email"] = scenario["users"][username]
            return Reply(200, profile)
        return Reply(404, self.error_body(404))

    def _dc_space_permissions(self, key: str) -> Reply:
        space = self.scenario["spaces"].get(key)
        if self.version < (9, 1) or space is None:
            return Reply(404, self.error_body(404))
        read = space.get("read") or {}
        subjects: list[dict[str, Any]] = [{"type": "user", "userKey": f"key-{user}"} for user in read.get("users", [])]
        subjects += [{"type": "group", "name": group} for group in read.get("groups", [])]
        subjects += [{"type": "anonymous"}] if read.get("anonymous") else []
        subjects += [dict(other) for other in read.get("other", [])]
        assignments = []
        for subject in subjects:
            for operation in ("read", "create"):  # more than reading is granted; only read/space matters
                assignments.append({"operation": {"targetType": "space" if operation == "read" else "page",
                                                  "operationKey": operation},
                                    "subject": subject, "spaceKey": key, "spaceId": int(space["id"])})
        return Reply(200, assignments)

    def _rpc_space_permissions(self, request: RecordedRequest) -> Reply:
        if self.version >= (9, 0):
            return Reply(404, self.error_body(404))  # 9.0 removed the remote API
        arguments = request.json
        space = self.scenario["spaces"].get(arguments[0]) if isinstance(arguments, list) and arguments else None
        if space is None:
            return Reply(200, {"error": {"code": 500, "message": "No space found"}})
        read = space.get("read") or {}
        if read.get("other"):
            return Reply(500, self.error_body(500))
        viewers = [{"type": "VIEWSPACE", "userName": user, "groupName": None} for user in read.get("users", [])]
        viewers += [{"type": "VIEWSPACE", "userName": None, "groupName": group} for group in read.get("groups", [])]
        viewers += [{"type": "VIEWSPACE", "userName": None, "groupName": None}] if read.get("anonymous") else []
        editors = [{"type": "EDITSPACE", "userName": None, "groupName": group} for group in read.get("groups", [])]
        return Reply(200, [{"type": "EDITSPACE", "spacePermissions": editors},
                           {"type": "VIEWSPACE", "spacePermissions": viewers}])

    def _dc_search(self, request: RecordedRequest) -> Reply:
        found = self._searched(request)
        return found if isinstance(found, Reply) else Reply(200, self._page_of(request, found))
