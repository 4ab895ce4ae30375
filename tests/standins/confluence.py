"""A stand-in for the Confluence Cloud REST API (v2 spaces and pages, v1 restrictions, groups and users), serving a
scenario a test writes and may change between syncs.

    scenario = {
        "users": {"u-alice": "Alice@corp.example"},          # account id -> email (None: not visible)
        "groups": {"engineering": ["u-alice"]},               # group name -> member account ids
        "spaces": {"ENG": {"id": "100", "read": {"groups": ["engineering"], "users": []}}},
        "pages": {"201": {"space": "ENG", "parent": None, "title": "Runbook", "body": "<p>…</p>",
                          "restrict": {"groups": [], "users": ["u-alice"]}}},   # restrict: None for none
        "forbidden": {"201"},                                  # content ids whose restriction lookup gets 403
    }

Wire format as documented (https://developer.atlassian.com/cloud/confluence/rest/v2/ and /v1/): v2 listings are
cursor-paginated with `_links.next` ("/wiki/api/v2/…?cursor=…"), v1 listings by start/limit with `_links.next`
relative to /wiki. Every listing returns at most `page_size` results whatever limit is asked (Confluence caps limits
too), so small scenarios still paginate. Requests without the expected basic auth get 401. Routes are request
paths, so `fail("/wiki/rest/api/content/201/restriction/byOperation/read", status=403)` scripts a fault.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import urlencode

from tests.standins.base import RecordedRequest, Reply, StandInServer

V2 = "/wiki/api/v2"
V1 = "/wiki/rest/api"


def _group_id(name: str) -> str:
    return f"gid-{name}"


class ConfluenceStandIn(StandInServer):
    def __init__(self, scenario: dict[str, Any], *, email: str = "bot@corp.example", api_token: str = "secret-token",
                 page_size: int = 2) -> None:
        super().__init__()
        self.scenario = scenario
        self.page_size = page_size
        self.scenario_lock = threading.Lock()
        self._auth = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()

    def error_body(self, code: int) -> Any:
        return {"statusCode": code, "message": f"stand-in error {code}"}

    # Paging ---------------------------------------------------------------------------------------------------

    def _cursor_page(self, request: RecordedRequest, items: list[dict[str, Any]]) -> dict[str, Any]:
        offset = int(base64.urlsafe_b64decode(request.query["cursor"]).decode()) if "cursor" in request.query else 0
        limit = min(int(request.query.get("limit") or 25), self.page_size)
        body: dict[str, Any] = {"results": items[offset:offset + limit], "_links": {"base": f"{self.url}/wiki"}}
        if offset + limit < len(items):
            query = {k: v for k, v in request.query.items() if k != "cursor"}
            query["cursor"] = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            body["_links"]["next"] = f"{request.path}?{urlencode(query)}"
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
                "status": "current", "_links": {"webui": f"/spaces/{key}"}}

    def _page(self, page_id: str, page: dict[str, Any], with_body: bool) -> dict[str, Any]:
        space = self.scenario["spaces"][page["space"]]
        slug = re.sub(r"\W+", "+", page["title"]).strip("+")
        found: dict[str, Any] = {
            "id": page_id, "status": "current", "title": page["title"], "spaceId": space["id"],
            "parentId": page.get("parent"), "parentType": "page" if page.get("parent") else None,
            "authorId": "u-admin", "createdAt": "2025-01-01T09:00:00.000Z",
            "version": {"number": page.get("version", 1), "createdAt": page.get("modified", "2025-03-01T10:00:00.000Z"),
                        "authorId": "u-admin", "minorEdit": False},
            "_links": {"webui": f"/spaces/{page['space']}/pages/{page_id}/{slug}", "tinyui": f"/x/{page_id}"},
        }
        if with_body:
            found["body"] = {"storage": {"value": page["body"], "representation": "storage"}}
        return found

    # Routes ---------------------------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        if request.headers.get("authorization") != self._auth:
            return Reply(401, {"statusCode": 401, "message": "Unauthorized; scope does not match"})
        with self.scenario_lock:
            return self._answer(request)

    def _answer(self, request: RecordedRequest) -> Reply:
        path, scenario = request.path, self.scenario
        if path == f"{V2}/spaces":
            spaces = [self._space(key, space) for key, space in scenario["spaces"].items()]
            return Reply(200, self._cursor_page(request, spaces))
        if match := re.fullmatch(rf"{V2}/spaces/([^/]+)/permissions", path):
            keyed = {space["id"]: space for space in scenario["spaces"].values()}
            if match[1] not in keyed:
                return Reply(404, self.error_body(404))
            read = keyed[match[1]].get("read") or {}
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
        if path == f"{V2}/pages":
            space_ids = set(request.query.get("space-id", "").split(",")) - {""}
            with_body = request.query.get("body-format") == "storage"
            pages = [self._page(page_id, page, with_body) for page_id, page in sorted(scenario["pages"].items())
                     if not space_ids or scenario["spaces"][page["space"]]["id"] in space_ids]
            return Reply(200, self._cursor_page(request, pages))
        if match := re.fullmatch(rf"{V2}/pages/([^/]+)", path):
            if match[1] not in scenario["pages"]:
                return Reply(404, self.error_body(404))
            return Reply(200, self._page(match[1], scenario["pages"][match[1]],
                                         request.query.get("body-format") == "storage"))
        if match := re.fullmatch(rf"{V1}/content/([^/]+)/restriction/byOperation/read", path):
            content_id = match[1]
            if content_id in scenario.get("forbidden", set()):
                return Reply(403, self.error_body(403))
            if content_id not in scenario["pages"]:
                return Reply(404, self.error_body(404))
            restrict = scenario["pages"][content_id].get("restrict") or {}
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
        if path == f"{V1}/group":
            groups = [{"type": "group", "name": name, "id": _group_id(name)} for name in sorted(scenario["groups"])]
            return Reply(200, self._offset_page(request, groups))
        if match := re.fullmatch(rf"{V1}/group/([^/]+)/membersByGroupId", path):
            by_id = {_group_id(name): members for name, members in scenario["groups"].items()}
            if match[1] not in by_id:
                return Reply(404, self.error_body(404))
            return Reply(200, self._offset_page(request, [self._user(u) for u in by_id[match[1]]]))
        if path == f"{V1}/user":
            account_id = request.query.get("accountId", "")
            if account_id not in scenario["users"]:
                return Reply(404, self.error_body(404))
            return Reply(200, self._user(account_id))
        return Reply(404, self.error_body(404))
