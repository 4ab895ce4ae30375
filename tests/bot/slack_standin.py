"""A local Slack Web API stand-in: records every call and answers in Slack's wire format."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class SlackStandIn:
    def __init__(self, team_id: str = "T1", bot_user_id: str = "UBOT", enterprise_id: str = ""):
        self.team_id, self.bot_user_id = team_id, bot_user_id
        # An Enterprise Grid org the workspace belongs to ("" for a standalone workspace).
        self.enterprise_id = enterprise_id
        self.calls: list[dict[str, Any]] = []
        self.emails: dict[str, str] = {}
        # users.info fields that differ from a full member of this workspace, per user id: e.g. {"team_id": "T9"}
        # for a Slack Connect partner, {"is_restricted": True} for a guest, {"enterprise_user": {...}} in a Grid.
        self.users: dict[str, dict[str, Any]] = {}
        self.bots: set[str] = set()
        self.members: dict[str, list[str]] = {}
        self.rate_limit_once: set[str] = set()  # methods that answer 429 (Retry-After: 1) the next time
        self.retry_after: dict[str, str] = {}  # another Retry-After for such a method's 429
        self._lock = threading.Lock()
        self._ts = 1000
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw).items()}
                for key in ("blocks", "view"):
                    if isinstance(body.get(key), str):
                        body[key] = json.loads(body[key])
                method = self.path.rsplit("/", 1)[-1]
                status, payload, headers = standin._answer(method, body)
                with standin._lock:
                    standin.calls.append({"method": method, "path": self.path, "body": body, "status": status,
                                          "at": time.perf_counter()})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def start(self) -> SlackStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"{self._ts}.000100"

    def _answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if method in self.rate_limit_once:
            self.rate_limit_once.discard(method)
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": self.retry_after.get(method, "1")}
        if method == "auth.test":
            answer = {"ok": True, "url": "https://t1.slack.test/", "team": "Test", "user": "citewise",
                      "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": "BBOT",
                      "is_enterprise_install": False}
            if self.enterprise_id:
                answer["enterprise_id"] = self.enterprise_id
            return 200, answer, {}
        if method in ("chat.postMessage", "chat.update"):
            return 200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts") or self._next_ts(),
                         "message": {"text": body.get("text", "")}}, {}
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": self._next_ts()}, {}
        if method == "users.info":
            return 200, {"ok": True, "user": self.user_object(body.get("user"))}, {}
        if method == "conversations.members":
            return 200, self._page(self.members.get(body.get("channel"), []), body), {}
        if method == "users.list":
            page = self._page(self.workspace_users(), body)
            page["members"] = [self.user_object(user) for user in page["members"]]
            return 200, {**page, "cache_ts": int(time.time())}, {}
        if method == "views.open":
            return 200, {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}}, {}
        if method in ("reactions.add", "reactions.remove"):
            return 200, {"ok": True}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any]) -> dict[str, Any]:
        """One page of a cursor-paginated method: `limit` items from `cursor` on, and the cursor of the next page
        ("" on the last)."""
        start = int(base64.b64decode(body["cursor"]).decode().removeprefix("offset:")) if body.get("cursor") else 0
        end = start + int(body.get("limit") or 100)
        following = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
        return {"ok": True, "members": items[start:end], "response_metadata": {"next_cursor": following}}

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

    def of(self, *methods: str, ok_only: bool = True) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["method"] in methods and (c["status"] == 200 or not ok_only)]

    def posts(self) -> list[dict[str, Any]]:
        return self.of("chat.postMessage", "chat.postEphemeral")
