"""A stand-in for Google Workspace as the Google Drive connector reads it: Google's OAuth token endpoint (the JWT
bearer grant of a service account with domain-wide delegation), the Drive API v3 (files, export, download,
permissions, shared drives, changes) and the Admin SDK Directory API (users, groups, members), serving a scenario
a test writes and may change between syncs.

    scenario = {
        "domain": "corp.example", "customer": "C01corp",
        "service_account": "citewise@project.iam.gserviceaccount.com",
        "authorized_scopes": {DRIVE_SCOPE, GROUP_SCOPE, USER_SCOPE},  # the Admin console's delegation entry
        "admins": {"admin@corp.example"},
        "users": {"alice@corp.example": {}, "sam@corp.example": {"suspended": True}},
        "groups": {"eng@corp.example": {"name": "Engineering",
                                        "members": ["alice@corp.example", "platform@corp.example", "customer"]}},
        "drives": {"0Aeng": {"name": "Engineering", "members": [GRANT, …]}},  # shared drive members
        "files": {"f-1": {"name": "Plan", "mime": "application/vnd.google-apps.document", "body": "…",
                          "owner": "alice@corp.example", "drive": None, "parent": None,  # parent: a folder's id
                          "trashed": False, "grants": [GRANT, …]}},  # a folder's grants reach everything under it
        "forbidden": {"f-7"},  # files whose permission lookup gets 403
    }

A GRANT is {"type": "user" | "group", "email": …} or {"type": "domain", "domain": …} or {"type": "anyone"}, with
"role" (default "reader"), "discoverable" (allowFileDiscovery, default False) and optionally "deleted".
A file in a shared drive has "drive" and no "owner"; a My Drive file has an "owner" and no "drive".

Wire format as documented (https://developers.google.com/workspace/drive/api/reference/rest/v3,
https://developers.google.com/workspace/admin/directory/reference/rest/v1): collections page through
`pageToken`/`nextPageToken` (at most `page_size` entries a page); `files.list` understands `corpora` user (what
the caller owns, `q` "'me' in owners and trashed = false") and drive (`driveId`, members only); a My Drive file's
`permissions` are listed with it (its owner may see them), a shared drive file's only by `permissions.list`, where
the drive's members appear with `permissionDetails` {permissionType member, inherited}; folder grants are
inherited by what is under the folder, and trashing a folder trashes what is under it. `changes.getStartPageToken`
snapshots a corpus (the caller's My Drive and what is shared with them, or a drive); `changes.list` from a token
returns every file whose name, place, content, trash state, owner or permissions changed since, and `removed`
for what the caller can no longer see, then `newStartPageToken`. `expire_change_tokens()` makes every token given
so far invalid (400 invalid pageToken).

Auth: a token only for a JWT signed by the scenario's service account key (`public_key`), for this endpoint, a
known user as `sub`, scopes the scenario authorised; a call with an unknown or expired (`expire_tokens()`) token
gets 401, one whose token lacks the scope 403. `throttle_every = n` answers every n-th call (token requests aside)
with the next of `throttle_statuses` (429, or 403 userRateLimitExceeded) and the next of `retry_after_values`,
recorded in `throttled`. `hang_pages[token] = seconds` makes the files.list page of that pageToken answer only
after `seconds`, once. Routes are request paths, for `fail`/`script` as with every stand-in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from typing import Any
from urllib.parse import unquote

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.standins.base import RecordedRequest, Reply, StandInServer

DRIVE = "/drive/v3"
DIRECTORY = "/admin/directory/v1"
TOKEN_PATH = "/token"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
GROUP_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FOLDER = "application/vnd.google-apps.folder"
DOCUMENT = "application/vnd.google-apps.document"
SPREADSHEET = "application/vnd.google-apps.spreadsheet"
PRESENTATION = "application/vnd.google-apps.presentation"
EXPORTABLE = {DOCUMENT: {"text/html", "text/plain"}, SPREADSHEET: {"text/csv"}, PRESENTATION: {"text/plain"}}
ROLE_RANK = ["reader", "commenter", "writer", "fileOrganizer", "organizer", "owner"]


def error(code: int, reason: str, message: str = "", status: str = "") -> Reply:
    statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    message = message or f"stand-in error {code}"
    return Reply(code, {"error": {"code": code, "message": message, "errors": [
        {"domain": "global", "reason": reason, "message": message}], "status": status or statuses.get(code, "")}})


class GoogleDriveStandIn(StandInServer):
    def __init__(self, scenario: dict[str, Any], *, public_key: rsa.RSAPublicKey, page_size: int = 2,
                 token_lifetime_s: int = 3599, export_limit: int = 10 * 1024 * 1024) -> None:
        super().__init__()
        self.scenario = scenario
        self.public_key = public_key
        self.page_size = page_size
        self.token_lifetime_s = token_lifetime_s
        self.export_limit = export_limit
        self.scenario_lock = threading.RLock()
        self.tokens: dict[str, tuple[str, frozenset[str]]] = {}  # access token -> (subject, scopes)
        self.expired: set[str] = set()
        # change token -> (corpus key, {file id: fingerprint}) as the corpus stood when the token was given
        self._change_tokens: dict[str, tuple[str, dict[str, str]]] = {}
        self._stale_change_tokens: set[str] = set()
        # a changes run (the pages of one answer) -> (corpus key, entries, the snapshot at its start)
        self._runs: dict[str, tuple[str, list[dict[str, Any]], dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self.throttle_every: int | None = None
        self.throttle_statuses: list[int] = [429]
        self.retry_after_values: list[float] = [1.0]
        self.throttled: list[float] = []
        self.hang_pages: dict[str, float] = {}
        self._calls = 0
        self._statuses: list[int] = []

    # Controls ---------------------------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        with self.scenario_lock:
            self.expired |= set(self.tokens)

    def expire_change_tokens(self) -> None:
        with self.scenario_lock:
            self._stale_change_tokens |= set(self._change_tokens)

    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == TOKEN_PATH]

    def subjects(self) -> list[str]:
        """Whom each token request asked to act as, in order."""
        return [jwt.decode(r.form["assertion"], options={"verify_signature": False})["sub"]
                for r in self.token_requests()]

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        with self._lock:
            self._statuses.append(reply.status)

    def statuses(self) -> list[int]:
        with self._lock:
            return list(self._statuses)

    def error_body(self, code: int) -> Any:
        reasons = {403: "forbidden", 404: "notFound", 429: "rateLimitExceeded", 500: "backendError",
                   502: "badGateway", 503: "backendError"}
        return error(code, reasons.get(code, "backendError")).body

    def _respond(self, request: RecordedRequest) -> Reply:
        if self.throttle_every and request.path != TOKEN_PATH:
            with self.scenario_lock:
                self._calls += 1
                throttle = self._calls % self.throttle_every == 0
                if throttle:
                    wait = self.retry_after_values[len(self.throttled) % len(self.retry_after_values)]
                    code = self.throttle_statuses[len(self.throttled) % len(self.throttle_statuses)]
                    self.throttled.append(wait)
            if throttle:
                with self._lock:
                    self.requests.append(request)
                reply = error(code, "rateLimitExceeded" if code == 429 else "userRateLimitExceeded")
                return Reply(reply.status, reply.body, {"Retry-After": f"{wait:g}"})
        reply = super()._respond(request)
        page = request.query.get("pageToken")
        if request.path == f"{DRIVE}/files" and page in self.hang_pages:
            with self.scenario_lock:
                seconds = self.hang_pages.pop(page, None)
            if seconds:
                return Reply(reply.status, reply.body, reply.headers, delay_s=seconds)
        return reply

    # The scenario ----------------------------------------------------------------------------------------------

    def _file(self, file_id: str) -> dict[str, Any]:
        return self.scenario["files"][file_id]

    def _ancestors(self, file_id: str) -> list[str]:
        """The file's folders, nearest first."""
        found, current = [], self._file(file_id).get("parent")
        while current is not None and current in self.scenario["files"]:
            found.append(current)
            current = self._file(current).get("parent")
        return found

    def trashed(self, file_id: str) -> bool:
        return any(self._file(f).get("trashed") for f in [file_id, *self._ancestors(file_id)])

    def group_members(self, group: str) -> set[str]:
        """Every user of a group, through nesting ("customer": every user of the scenario)."""
        seen: set[str] = set()
        users: set[str] = set()
        pending = [group]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for member in self.scenario["groups"].get(current, {}).get("members", []):
                if member == "customer":
                    users |= set(self.scenario["users"]) | set(self.scenario.get("admins", ()))
                elif member in self.scenario["groups"]:
                    pending.append(member)
                else:
                    users.add(member)
        return users

    def drive_member(self, subject: str, drive_id: str) -> bool:
        for grant in self.scenario["drives"][drive_id].get("members", []):
            if grant["type"] == "user" and grant["email"] == subject:
                return True
            if grant["type"] == "group" and subject in self.group_members(grant["email"]):
                return True
        return False

    def _may_read(self, subject: str, file_id: str) -> bool:
        item = self._file(file_id)
        if item.get("drive"):
            return self.drive_member(subject, item["drive"])
        return item.get("owner") == subject or any(
            g["type"] == "user" and g.get("email") == subject for g in self._grants(file_id))

    def _grants(self, file_id: str) -> list[dict[str, Any]]:
        return list(self._file(file_id).get("grants") or [])

    def permissions(self, file_id: str) -> list[dict[str, Any]]:
        """The file's effective permissions, as permissions.list returns them."""
        item = self._file(file_id)
        merged: dict[str, dict[str, Any]] = {}
        drive = item.get("drive")

        def add(grant: dict[str, Any], role: str, detail: dict[str, Any] | None) -> None:
            kind = grant["type"]
            key = f"{kind}:{grant.get('email') or grant.get('domain') or ''}".lower()
            permission = merged.get(key)
            if permission is None:
                digest = hashlib.sha256(key.encode()).hexdigest()[:10]
                permission = {"kind": "drive#permission", "type": kind, "role": role,
                              "id": "anyoneWithLink" if kind == "anyone" else f"perm-{digest}"}
                if kind in ("user", "group"):
                    permission["emailAddress"] = grant["email"]
                if kind == "domain":
                    permission["domain"] = grant["domain"]
                if kind in ("domain", "anyone"):
                    permission["allowFileDiscovery"] = bool(grant.get("discoverable"))
                if grant.get("deleted"):
                    permission["deleted"] = True
                if drive:
                    permission["permissionDetails"] = []
                merged[key] = permission
            elif ROLE_RANK.index(role) > ROLE_RANK.index(permission["role"]):
                permission["role"] = role
            if drive and detail is not None:
                permission["permissionDetails"].append(detail)

        if drive:
            for member in self.scenario["drives"][drive].get("members", []):
                role = member.get("role", "reader")
                add(member, role, {"permissionType": "member", "role": role, "inherited": True,
                                   "inheritedFrom": drive})
        else:
            add({"type": "user", "email": item["owner"]}, "owner", None)
        for source in [file_id, *self._ancestors(file_id)]:
            for grant in self._grants(source):
                role = grant.get("role", "reader")
                detail = {"permissionType": "file", "role": role, "inherited": source != file_id}
                if source != file_id:
                    detail["inheritedFrom"] = source
                add(grant, role, detail)
        return list(merged.values())

    def web_link(self, file_id: str) -> str:
        mime = self._file(file_id).get("mime", "text/plain")
        kinds = {DOCUMENT: "document", SPREADSHEET: "spreadsheets", PRESENTATION: "presentation"}
        if mime in kinds:
            return f"https://docs.google.com/{kinds[mime]}/d/{file_id}/edit?usp=drivesdk"
        if mime == FOLDER:
            return f"https://drive.google.com/drive/folders/{file_id}"
        return f"https://drive.google.com/file/d/{file_id}/view?usp=drivesdk"

    def resource(self, file_id: str, subject: str) -> dict[str, Any]:
        item = self._file(file_id)
        mime = item.get("mime", "text/plain")
        found: dict[str, Any] = {
            "kind": "drive#file", "id": file_id, "name": item["name"], "mimeType": mime,
            "trashed": self.trashed(file_id), "modifiedTime": item.get("modified", "2025-03-01T10:00:00.000Z"),
            "webViewLink": self.web_link(file_id), "ownedByMe": item.get("owner") == subject,
            "parents": [item.get("parent") or (item.get("drive") or f"root-{item.get('owner')}")],
        }
        if item.get("drive"):
            found["driveId"] = item["drive"]
        elif item.get("owner") == subject:
            found["permissions"] = self.permissions(file_id)
        if not mime.startswith("application/vnd.google-apps."):
            found["size"] = str(len(self._body(file_id)))
        return found

    def _body(self, file_id: str) -> bytes:
        body = self._file(file_id).get("body", "")
        return body if isinstance(body, bytes) else body.encode("utf-8")

    def _fingerprint(self, file_id: str, subject: str) -> str:
        item = self._file(file_id)
        return hashlib.sha256(json.dumps([
            item.get("name"), item.get("mime"), item.get("parent"), item.get("body"), self.trashed(file_id),
            item.get("owner"), item.get("drive"), item.get("owner") == subject, self.permissions(file_id)],
            sort_keys=True, default=str).encode()).hexdigest()

    def _snapshot(self, corpus: str) -> dict[str, str]:
        kind, _, ident = corpus.partition(":")
        files = self.scenario["files"]
        if kind == "drive":
            return {f: self._fingerprint(f, "") for f, item in files.items() if item.get("drive") == ident}
        return {f: self._fingerprint(f, ident) for f, item in files.items()
                if not item.get("drive") and self._may_read(ident, f)}

    # Routes -----------------------------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        with self.scenario_lock:
            if request.path == TOKEN_PATH:
                return self._token(request)
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens or token in self.expired:
                return error(401, "authError", "Request had invalid authentication credentials.")
            subject, scopes = self.tokens[token]
            if request.path.startswith(DIRECTORY):
                return self._directory(request, subject, scopes)
            if not request.path.startswith(DRIVE):
                return error(404, "notFound")
            if DRIVE_SCOPE not in scopes:
                return error(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
            return self._drive(request, subject)

    def _token(self, request: RecordedRequest) -> Reply:
        form = request.form
        if form.get("grant_type") != JWT_BEARER:
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        try:
            claims = jwt.decode(form.get("assertion", ""), self.public_key, algorithms=["RS256"],
                                audience=f"{self.url}{TOKEN_PATH}", options={"require": ["iss", "aud", "exp", "iat"]})
        except jwt.PyJWTError:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        if claims.get("iss") != self.scenario["service_account"]:
            return Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= set(self.scenario["authorized_scopes"]):
            return Reply(401, {"error": "unauthorized_client", "error_description": "Client is unauthorized to "
                               "retrieve access tokens using this method, or client not authorized for any of the "
                               "scopes requested."})
        subject = claims.get("sub")
        user = self.scenario["users"].get(subject)
        if subject not in self.scenario.get("admins", ()) and (user is None or user.get("suspended")):
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"})
        token = f"ya29.stand-in-{next(self._ids)}"
        self.tokens[token] = (str(subject), scopes)
        return Reply(200, {"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"})

    def _page(self, request: RecordedRequest, entries: list[Any], field: str, render: Any = None,
              **extra: Any) -> Reply:
        """One page of `entries` (each passed through `render`, if given, once it is on the page)."""
        token = request.query.get("pageToken") or "p0"
        if not token.startswith("p") or not token[1:].isdigit():
            return error(400, "invalid", "Invalid Value")
        offset = int(token[1:])
        size = min(self.page_size, int(request.query.get("pageSize") or request.query.get("maxResults") or 1000))
        page = entries[offset:offset + size]
        body: dict[str, Any] = {field: [render(e) for e in page] if render else page, **extra}
        if offset + size < len(entries):
            body["nextPageToken"] = f"p{offset + size}"
        return Reply(200, body)

    def _drive(self, request: RecordedRequest, subject: str) -> Reply:
        path, query, files = unquote(request.path.removeprefix(DRIVE)), request.query, self.scenario["files"]
        if path == "/files":
            return self._list_files(request, subject)
        if path == "/drives":
            drives = [{"kind": "drive#drive", "id": d, "name": drive.get("name", d)}
                      for d, drive in self.scenario["drives"].items() if self.drive_member(subject, d)]
            return self._page(request, drives, "drives", kind="drive#driveList")
        if path == "/changes/startPageToken":
            corpus = self._corpus(request, subject)
            if isinstance(corpus, Reply):
                return corpus
            token = f"s{next(self._ids)}"
            self._change_tokens[token] = (corpus, self._snapshot(corpus))
            return Reply(200, {"kind": "drive#startPageToken", "startPageToken": token})
        if path == "/changes":
            return self._changes(request, subject)
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "files" or parts[1] not in files:
            return error(404, "notFound", f"File not found: {parts[1] if len(parts) > 1 else ''}.")
        file_id = parts[1]
        if not self._may_read(subject, file_id):
            return error(404, "notFound", f"File not found: {file_id}.")
        item = files[file_id]
        mime = item.get("mime", "text/plain")
        if len(parts) == 2:
            if query.get("alt") != "media":
                return Reply(200, self.resource(file_id, subject))
            if mime.startswith("application/vnd.google-apps."):
                return error(403, "fileNotDownloadable", "Only files with binary content can be downloaded. Use "
                                                         "Export with Docs Editors files.")
            return Reply(200, self._body(file_id))
        if parts[2] == "export" and len(parts) == 3:
            wanted = query.get("mimeType", "")
            if wanted not in EXPORTABLE.get(mime, set()):
                return error(400, "badRequest", "The requested conversion is not supported.")
            content = self._exported(file_id, wanted)
            if len(content) > self.export_limit:
                return error(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
            return Reply(200, content)
        if parts[2] == "permissions" and len(parts) == 3:
            if file_id in self.scenario.get("forbidden", set()):
                return error(403, "insufficientFilePermissions", "The user does not have sufficient permissions "
                                                                 "for this file.")
            if item.get("drive") and query.get("supportsAllDrives") != "true":
                return error(404, "notFound", f"File not found: {file_id}.")
            return self._page(request, self.permissions(file_id), "permissions", kind="drive#permissionList")
        return error(404, "notFound")

    def _exported(self, file_id: str, mime: str) -> bytes:
        item = self._file(file_id)
        body = self._body(file_id).decode("utf-8")
        if mime == "text/html":
            paragraphs = "".join(f"<p>{line}</p>" for line in body.splitlines() if line.strip())
            return (f"<html><head><title>{item['name']}</title></head><body><h1>{item['name']}</h1>{paragraphs}"
                    f"</body></html>").encode()
        return body.encode("utf-8")

    def _list_files(self, request: RecordedRequest, subject: str) -> Reply:
        query, files = request.query, self.scenario["files"]
        terms = {term.strip() for term in query.get("q", "").split(" and ") if term.strip()}
        if not terms <= {"'me' in owners", "trashed = false"}:
            return error(400, "invalid", "Invalid Value")
        if query.get("corpora") == "drive":
            drive_id = query.get("driveId", "")
            if query.get("includeItemsFromAllDrives") != "true" or query.get("supportsAllDrives") != "true":
                return error(403, "teamDrivesParameterRequired", "includeItemsFromAllDrives and supportsAllDrives "
                                                                 "must be set with a driveId.")
            if drive_id not in self.scenario["drives"] or not self.drive_member(subject, drive_id):
                return error(404, "notFound", f"Shared drive not found: {drive_id}")
            chosen = [f for f, item in files.items() if item.get("drive") == drive_id]
        elif query.get("corpora", "user") == "user":
            chosen = [f for f, item in files.items() if not item.get("drive") and self._may_read(subject, f)]
        else:
            return error(400, "invalid", "Invalid Value")
        if "'me' in owners" in terms:
            chosen = [f for f in chosen if files[f].get("owner") == subject]
        if "trashed = false" in terms:
            chosen = [f for f in chosen if not self.trashed(f)]
        return self._page(request, sorted(chosen), "files", lambda f: self.resource(f, subject),
                          kind="drive#fileList", incompleteSearch=False)

    def _corpus(self, request: RecordedRequest, subject: str) -> str | Reply:
        drive_id = request.query.get("driveId")
        if drive_id is None:
            return f"user:{subject}"
        if request.query.get("supportsAllDrives") != "true" or drive_id not in self.scenario["drives"] \
                or not self.drive_member(subject, drive_id):
            return error(404, "notFound", f"Shared drive not found: {drive_id}")
        return f"drive:{drive_id}"

    def _changes(self, request: RecordedRequest, subject: str) -> Reply:
        corpus = self._corpus(request, subject)
        if isinstance(corpus, Reply):
            return corpus
        token = request.query.get("pageToken", "")
        invalid = error(400, "invalid", "Invalid Value")
        if token.startswith("c"):
            run, _, offset_text = token[1:].partition(".")
            if run not in self._runs or self._runs[run][0] != corpus or not offset_text.isdigit():
                return invalid
            _, entries, snapshot = self._runs[run]
            offset = int(offset_text)
        else:
            if token in self._stale_change_tokens or token not in self._change_tokens \
                    or self._change_tokens[token][0] != corpus:
                return invalid
            previous = self._change_tokens[token][1]
            snapshot = self._snapshot(corpus)
            entries = []
            viewer = corpus.partition(":")[2] if corpus.startswith("user:") else ""
            for file_id in sorted(set(previous) | set(snapshot)):
                if previous.get(file_id) == snapshot.get(file_id):
                    continue
                change: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "fileId": file_id,
                                          "time": "2025-03-02T10:00:00.000Z"}
                if file_id in snapshot:
                    change |= {"removed": False, "file": self.resource(file_id, viewer)}
                else:
                    change["removed"] = True
                entries.append(change)
            run = str(next(self._ids))
            self._runs[run] = (corpus, entries, snapshot)
            offset = 0
        size = min(self.page_size, int(request.query.get("pageSize") or 1000))
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": entries[offset:offset + size]}
        if offset + size < len(entries):
            body["nextPageToken"] = f"c{run}.{offset + size}"
        else:
            new = f"s{next(self._ids)}"
            self._change_tokens[new] = (corpus, snapshot)
            body["newStartPageToken"] = new
        return Reply(200, body)

    def _directory(self, request: RecordedRequest, subject: str, scopes: frozenset[str]) -> Reply:
        path = unquote(request.path.removeprefix(DIRECTORY))
        if subject not in self.scenario.get("admins", ()):
            return error(403, "forbidden", "Not Authorized to access this resource/api")
        if request.query.get("customer", "my_customer") != "my_customer":
            return error(400, "invalid", "Invalid Input")
        if path == "/users":
            if USER_SCOPE not in scopes:
                return error(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
            people = sorted(set(self.scenario["users"]) | set(self.scenario.get("admins", ())))
            users = [{"kind": "admin#directory#user", "primaryEmail": u,
                      "suspended": bool(self.scenario["users"].get(u, {}).get("suspended")), "archived": False}
                     for u in people]
            return self._page(request, users, "users", kind="admin#directory#users")
        if GROUP_SCOPE not in scopes:
            return error(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
        groups = self.scenario["groups"]
        if path == "/groups":
            listed = [{"kind": "admin#directory#group", "id": f"gid-{g}", "email": g, "name": group["name"],
                       "directMembersCount": str(len(group["members"]))} for g, group in sorted(groups.items())]
            return self._page(request, listed, "groups", kind="admin#directory#groups")
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "groups" and parts[2] == "members":
            if parts[1] not in groups:
                return error(404, "notFound", "Resource Not Found: groupKey")
            members = []
            for member in groups[parts[1]]["members"]:
                if member == "customer":
                    members.append({"kind": "admin#directory#member", "id": self.scenario.get("customer", "C0"),
                                    "type": "CUSTOMER", "role": "MEMBER"})
                    continue
                kind = "GROUP" if member in groups else "USER"
                suspended = self.scenario["users"].get(member, {}).get("suspended")
                members.append({"kind": "admin#directory#member", "id": f"id-{member}", "email": member,
                                "type": kind, "role": "MEMBER",
                                **({} if kind == "GROUP" else {"status": "SUSPENDED" if suspended else "ACTIVE"})})
            return self._page(request, members, "members", kind="admin#directory#members")
        return error(404, "notFound")


def service_account_key(private_pem: str, client_email: str) -> str:
    """A service account's JSON key, as the Cloud console downloads it."""
    return json.dumps({"type": "service_account", "project_id": "citewise-test", "private_key_id": "k1",
                       "private_key": private_pem, "client_email": client_email, "client_id": "1234567890",
                       "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                       "token_uri": "https://oauth2.googleapis.com/token"})

