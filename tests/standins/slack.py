"""A stand-in for the Slack Web API (https://api.slack.com/web): every call recorded, answered in Slack's format.

Calls are POSTs to /api/<method>, arguments form- or JSON-encoded (or in the query string); answers are JSON with
"ok", and errors {"ok": false, "error": "..."} (a 429 carries Retry-After). Cursor-paginated methods
(conversations.members, users.list) page by `limit` and `cursor`, with `response_metadata.next_cursor` ("" on the
last page). Routes are method names: `slack.fail("chat.postMessage", status=429, retry_after=40)`.

Channels as a source reads them (connectors/sources/slack.py) come from `channels` (id -> name, is_private,
is_archived, is_member: whether the app was added, is_ext_shared), `members` (as for the bot) and `history`
(channel -> messages as stored: ts, user, text, and optionally thread_ts (a reply), subtype, edited, files (file
ids of `files`), deleted (a thread's parent deleted while replies remain: shown as Slack's tombstone)).
conversations.list, .history (newest first; `oldest`/`latest`/`inclusive`; a parent carries reply_count and
latest_reply; replies are left out unless broadcast), .replies (parent first, then replies) and file downloads
(`/files/<id>/<name>`) answer from them as Slack does, with Slack's errors (channel_not_found, not_in_channel,
thread_not_found, user_not_found for `unknown_users`). With `token` set, a call without `Bearer <token>` gets
invalid_auth and a download Slack's sign-in page. `max_page` caps every page (Slack may return fewer than
`limit`); `throttle_every = n` answers every n-th call with 429 and the next `retry_after_values`, recorded in
`throttled`. Tests change the scenario under `scenario_lock`.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from decimal import Decimal
from typing import Any

from tests.standins.base import RecordedRequest, Reply, StandInServer

API = "/api/"
ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class SlackStandIn(StandInServer):
    def __init__(self, team_id: str = "T1", bot_user_id: str = "UBOT", enterprise_id: str = ""):
        super().__init__()
        self.team_id, self.bot_user_id = team_id, bot_user_id
        self.socket_mode_url = ""  # what apps.connections.open hands out
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
        # Channels as a source reads them (see the module's doc).
        self.channels: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}
        self.unknown_users: set[str] = set()
        self.token: str | None = None
        self.max_page: int | None = None
        self.throttle_every: int | None = None
        self.retry_after_values: list[float] = [1.0]
        self.throttled: list[float] = []
        self._arrivals = 0
        self.scenario_lock = threading.RLock()

    @property
    def base_url(self) -> str:
        return self.url + API

    # Routes ---------------------------------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> str:
        if request.path.startswith("/files/"):
            return "files:" + request.path.split("/")[2]
        return request.path.removeprefix(API)

    def _respond(self, request: RecordedRequest) -> Reply:
        if self.throttle_every:
            with self.scenario_lock:
                self._arrivals += 1
                throttle = self._arrivals % self.throttle_every == 0
                if throttle:
                    wait = self.retry_after_values[len(self.throttled) % len(self.retry_after_values)]
                    self.throttled.append(wait)
            if throttle:
                reply = Reply(429, self.error_body(429), {"Retry-After": f"{wait:g}"})
                with self._lock:
                    self.requests.append(request)
                self.recorded(request, reply)
                return reply
        return super()._respond(request)

    def error_body(self, code: int) -> Any:
        return {"ok": False, "error": ERRORS.get(code, "fatal_error")}

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        with self._lock:
            self.calls.append({"method": self.route(request), "path": request.path, "body": arguments(request),
                               "status": reply.status, "at": request.at})

    def default(self, request: RecordedRequest) -> Reply:
        method, body = self.route(request), arguments(request)
        if self.token is not None and request.headers.get("authorization") != f"Bearer {self.token}":
            if method.startswith("files:"):
                return Reply(200, b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>",
                             {"Content-Type": "text/html; charset=utf-8"})
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        with self.scenario_lock:
            source_reply = self.source_method(method, body)
        if source_reply is not None:
            return source_reply
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
        if method == "apps.connections.open":  # Socket Mode: the WebSocket URL (tests/standins/slack_socket_mode.py)
            if not self.socket_mode_url:
                return Reply(200, {"ok": False, "error": "not_allowed_token_type"})
            return Reply(200, {"ok": True, "url": self.socket_mode_url})
        if method == "chat.postEphemeral":
            return Reply(200, {"ok": True, "message_ts": self._next_ts()})
        if method == "users.info":
            if body.get("user") in self.unknown_users:
                return Reply(200, {"ok": False, "error": "user_not_found"})
            return Reply(200, {"ok": True, "user": self.user_object(body.get("user"))})
        if method == "conversations.members":
            channel = self.channels.get(body.get("channel"))
            if channel is not None and not channel.get("is_member"):
                return Reply(200, {"ok": False, "error": "channel_not_found" if channel.get("is_private")
                                   else "not_in_channel"})
            return Reply(200, page(self.members.get(body.get("channel"), []), self.capped(body)))
        if method == "users.list":
            listed = page(self.workspace_users(), self.capped(body))
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
        return sorted(user for user in known - self.unknown_users
                      if self.users.get(user, {}).get("team_id", self.team_id) == self.team_id)

    def user_object(self, user: str) -> dict[str, Any]:
        """A users.info `user` as Slack documents it; guest and partner fields come from `users`."""
        extra = dict(self.users.get(user, {}))
        team = extra.get("team_id", self.team_id)
        found: dict[str, Any] = {
            "id": user, "team_id": team, "name": user.lower(), "deleted": False,
            "is_bot": user in self.bots or user == self.bot_user_id, "is_app_user": False, "is_admin": False,
            "is_owner": False, "is_restricted": False, "is_ultra_restricted": False,
            "real_name": self.names.get(user, user.title()),
            "profile": {"email": self.emails.get(user, ""), "team": team, "real_name": self.names.get(user, ""),
                        "display_name": self.names.get(user, "")}}
        if self.enterprise_id and team == self.team_id:
            found["enterprise_user"] = {"id": user, "enterprise_id": self.enterprise_id, "enterprise_name": "Org",
                                        "is_admin": False, "is_owner": False, "teams": [team]}
        found.update(extra)
        return found

    # Channels as a source reads them -----------------------------------------------------------------------------

    def capped(self, arguments: dict[str, Any]) -> dict[str, Any]:
        limit = int(arguments.get("limit") or 100)
        return {**arguments, "limit": min(limit, self.max_page) if self.max_page else limit}

    def source_method(self, method: str, body: dict[str, Any]) -> Reply | None:
        """conversations.list, .history, .replies and file downloads; None for the bot's methods."""
        if method == "conversations.list":
            types = set(str(body.get("types") or "public_channel").split(","))
            listed = [self.channel_object(channel_id) for channel_id, channel in sorted(self.channels.items())
                      if ("private_channel" if channel.get("is_private") else "public_channel") in types
                      and not (channel.get("is_private") and not channel.get("is_member"))
                      and not (body.get("exclude_archived") in ("true", "1", True) and channel.get("is_archived"))]
            answer = page(listed, self.capped(body))
            answer["channels"] = answer.pop("members")
            return Reply(200, answer)
        if method in ("conversations.history", "conversations.replies"):
            channel = self.channels.get(body.get("channel"))
            if channel is None or (channel.get("is_private") and not channel.get("is_member")):
                return Reply(200, {"ok": False, "error": "channel_not_found"})
            if not channel.get("is_member"):
                return Reply(200, {"ok": False, "error": "not_in_channel"})
            if method == "conversations.history":
                return Reply(200, self.history_page(body))
            return Reply(200, self.replies_page(body))
        if method.startswith("files:"):
            found = self.files.get(method.removeprefix("files:"))
            if found is None:
                return Reply(404, b"not found", {"Content-Type": "text/plain"})
            return Reply(200, found["content"], {"Content-Type": found.get("mimetype", "application/octet-stream")})
        return None

    def channel_object(self, channel_id: str) -> dict[str, Any]:
        channel = self.channels[channel_id]
        return {"id": channel_id, "name": channel["name"], "is_channel": True, "is_group": False, "is_im": False,
                "is_private": bool(channel.get("is_private")), "is_archived": bool(channel.get("is_archived")),
                "is_member": bool(channel.get("is_member")), "is_ext_shared": bool(channel.get("is_ext_shared")),
                "is_shared": bool(channel.get("is_ext_shared")), "is_org_shared": False, "created": 1600000000,
                "context_team_id": self.team_id, "num_members": len(self.members.get(channel_id, []))}

    def file_object(self, file_id: str) -> dict[str, Any]:
        found = self.files[file_id]
        return {"id": file_id, "name": found["name"], "title": found.get("title", found["name"]),
                "mimetype": found.get("mimetype", "text/plain"), "filetype": found.get("filetype", "text"),
                "size": len(found["content"]), "mode": "hosted", "is_external": False,
                "url_private": f"{self.url}/files/{file_id}/{found['name']}",
                "url_private_download": f"{self.url}/files/{file_id}/download/{found['name']}",
                "permalink": f"https://t1.slack.test/files/{found.get('user', 'U0')}/{file_id}/{found['name']}"}

    def message_object(self, message: dict[str, Any]) -> dict[str, Any]:
        shown = {"type": "message", "ts": message["ts"], "user": message.get("user", ""), "text": message.get("text", ""),
                 "team": self.team_id}
        for key in ("thread_ts", "subtype", "edited", "bot_id", "username"):
            if key in message:
                shown[key] = message[key]
        if message.get("files"):
            shown["files"] = [self.file_object(file_id) for file_id in message["files"]]
        return shown

    def replies_of(self, channel: str, ts: str) -> list[dict[str, Any]]:
        return sorted((m for m in self.history.get(channel, []) if m.get("thread_ts") == ts and m["ts"] != ts),
                      key=lambda m: Decimal(m["ts"]))

    def parent_object(self, channel: str, message: dict[str, Any]) -> dict[str, Any] | None:
        """A top-level message as history and replies show it: with its thread's counts, a tombstone if deleted
        while replies remain, or None when it is gone altogether."""
        replies = self.replies_of(channel, message["ts"])
        if message.get("deleted"):
            if not replies:
                return None
            shown = {"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                     "user": "USLACKBOT", "hidden": True, "ts": message["ts"]}
        else:
            shown = self.message_object(message)
        if replies:
            shown.update(thread_ts=message["ts"], reply_count=len(replies), latest_reply=replies[-1]["ts"],
                         reply_users=sorted({r.get("user", "") for r in replies}),
                         reply_users_count=len({r.get("user", "") for r in replies}))
        return shown

    def history_page(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body["channel"]
        inclusive = body.get("inclusive") in ("true", "1", True)
        oldest = Decimal(str(body.get("oldest") or "0"))
        latest = Decimal(str(body["latest"])) if body.get("latest") else None
        shown = []
        for message in self.history.get(channel, []):
            ts = Decimal(message["ts"])
            if (ts < oldest or (ts == oldest and not inclusive and body.get("oldest"))
                    or (latest is not None and (ts > latest or (ts == latest and not inclusive)))):
                continue
            if message.get("thread_ts") and message["thread_ts"] != message["ts"]:
                if message.get("subtype") == "thread_broadcast":
                    shown.append(self.message_object(message))
                continue
            parent = self.parent_object(channel, message)
            if parent is not None:
                shown.append(parent)
        shown.sort(key=lambda m: Decimal(m["ts"]), reverse=True)
        answer = page(shown, self.capped(body))
        answer["messages"] = answer.pop("members")
        answer["has_more"] = bool(answer["response_metadata"]["next_cursor"])
        return answer

    def replies_page(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body["channel"], str(body.get("ts"))
        parent = next((m for m in self.history.get(channel, []) if m["ts"] == ts and not (
            m.get("thread_ts") and m["thread_ts"] != m["ts"])), None)
        shown_parent = self.parent_object(channel, parent) if parent is not None else None
        if shown_parent is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [shown_parent, *(self.message_object(r) for r in self.replies_of(channel, ts))]
        answer = page(thread, self.capped(body))
        answer["messages"] = answer.pop("members")
        answer["has_more"] = bool(answer["response_metadata"]["next_cursor"])
        return answer

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
