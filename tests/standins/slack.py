"""A stand-in for the Slack Web API (https://api.slack.com/web): every call recorded, answered in Slack's format.

Calls are POSTs to /api/<method>, arguments form- or JSON-encoded (or in the query string); answers are JSON with
"ok", and errors {"ok": false, "error": "..."} (a 429 carries Retry-After). Cursor-paginated methods
(conversations.members, users.list) page by `limit` and `cursor`, with `response_metadata.next_cursor` ("" on the
last page). Routes are method names: `slack.fail("chat.postMessage", status=429, retry_after=40)`.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

from tests.standins.base import RecordedRequest, Reply, StandInServer

API = "/api/"
ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class SlackStandIn(StandInServer):
    def __init__(self, team_id: str = "T1", bot_user_id: str = "UBOT", enterprise_id: str = ""):
        super().__init__()
        self.team_id, self.bot_user_id = team_id, bot_user_id
        # An Enterprise Grid org the workspace belongs to ("" for a standalone workspace).
        self.enterprise_id = enterprise_id
        # Every call: {"method", "path", "body" (the arguments), "status", "at" (time.monotonic() on arrival)}.
        self.calls: list[dict[str, Any]] = []
        self.emails: dict[str, str] = {}
        # users.info fields that differ from a full member of this workspace, per user id: e.g. {"team_id": "T9"}
        # for a Slack Connect partner, {"is_restricted": True} for a guest, {"enterprise_user": {...}} in a Grid.
        self.users: dict[str, dict[str, Any]] = {}
        self.bots: set[str] = set()
        self.members: dict[str, list[str]] = {}
        self._ts = itertools.count(1001)

    @property
    def base_url(self) -> str:
        return self.url + API

    # Routes ---------------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> str:
        return request.path.removeprefix(API)

    def error_body(self, code: int) -> Any:
        return {"ok": False, "error": ERRORS.get(code, "fatal_error")}

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        with self._lock:
            self.calls.append({"method": self.route(request), "path": request.path, "body": arguments(request),
                               "status": reply.status, "at": request.at})

    def default(self, request: RecordedRequest) -> Reply:
        method, body = self.route(request), arguments(request)
        if method == "auth.test":
            answer = {"ok": True, "url": "https://t1.slack.test/", "team": "Test", "user": "citewise",
                      "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": "BBOT",
                      "is_enterprise_install": False}
            if self.enterprise_id:
                answer["enterprise_id"] = self.enterprise_id
            return Reply(200, answer)
        if method in ("chat.postMessage", "chat.update"):
            return Reply(200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts") or self._next_ts(),
                               "message": {"text": body.get("text", "")}})
        if method == "chat.postEphemeral":
            return Reply(200, {"ok": True, "message_ts": self._next_ts()})
        if method == "users.info":
            return Reply(200, {"ok": True, "user": self.user_object(body.get("user"))})
        if method == "conversations.members":
            return Reply(200, page(self.members.get(body.get("channel"), []), body))
        if method == "users.list":
            listed = page(self.workspace_users(), body)
            listed["members"] = [self.user_object(user) for user in listed["members"]]
            return Reply(200, {**listed, "cache_ts": int(time.time())})
        if method == "views.open":
            return Reply(200, {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}})
        if method in ("reactions.add", "reactions.remove"):
            return Reply(200, {"ok": True})
        return Reply(200, {"ok": False, "error": "unknown_method"})

    # The workspace --------------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{next(self._ts)}.000100"

    def workspace_users(self) -> list[str]:
        """Every user of the workspace (users.list): those the stand-in knows of, but for other organisations'."""
        known = {*self.emails, *self.users, *self.bots, self.bot_user_id,
                 *(user for members in self.members.values() for user in members)}
        return sorted(user for user in known if self.users.get(user, {}).get("team_id", self.team_id) == self.team_id)

    def user_object(self, user: str) -> dict[str, Any]:
        """A users.info `user` as Slack documents it; guest and partner fields come from `users`."""
        extra = dict(self.users.get(user, {}))
        team = extra.get("team_id", self.team_id)
        found: dict[str, Any] = {
            "id": user, "team_id": team, "name": user.lower(), "deleted": False,
            "is_bot": user in self.bots or user == self.bot_user_id, "is_app_user": False, "is_admin": False,
            "is_owner": False, "is_restricted": False, "is_ultra_restricted": False,
            "profile": {"email": self.emails.get(user, ""), "team": team}}
        if self.enterprise_id and team == self.team_id:
            found["enterprise_user"] = {"id": user, "enterprise_id": self.enterprise_id, "enterprise_name": "Org",
                                        "is_admin": False, "is_owner": False, "teams": [team]}
        found.update(extra)
        return found

    # Reading back ---------------------------------------------------------------------------------------------

    def of(self, *methods: str, ok_only: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["method"] in methods and (c["status"] == 200 or not ok_only)]

    def posts(self) -> list[dict[str, Any]]:
        return self.of("chat.postMessage", "chat.postEphemeral")


def arguments(request: RecordedRequest) -> dict[str, Any]:
    """A call's arguments, however they were sent; JSON-valued ones (blocks, view) decoded."""
    if "json" in request.headers.get("content-type", ""):
        found = request.json if request.body else {}
    else:
        found = {**request.query, **request.form}
    for key in ("blocks", "view"):
        if isinstance(found.get(key), str):
            found[key] = json.loads(found[key])
    return found


def page(items: list[Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """One page of a cursor-paginated method: `limit` items from `cursor` on, and the next page's cursor."""
    cursor = arguments.get("cursor")
    start = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
    end = start + int(arguments.get("limit") or 100)
    following = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return {"ok": True, "members": items[start:end], "response_metadata": {"next_cursor": following}}
