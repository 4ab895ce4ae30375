"""A stand-in for Microsoft 365 as the SharePoint connector reads it: Entra's token endpoint, Microsoft Graph (sites,
drives, driveItem delta, content, permissions, users, groups and transitive members) and SharePoint's REST call
for a site group's members, serving a scenario a test writes and may change between syncs.

    scenario = {
        "tenant": "0000-tenant",
        "users": {"u-alice": {"name": "Alice", "mail": "Alice@corp.example", "upn": "alice@corp.example"}},
        "groups": {"g-eng": {"name": "Engineering", "members": ["u-alice", "g-platform"]}},  # users or groups
        "sites": {"eng": {"path": "/sites/eng", "name": "Engineering",
                          "site_groups": {"3": {"name": "Eng Members", "members": ["u-bob", "g-eng", "everyone"]}}}},
        "drives": {"d-eng": {"site": "eng", "name": "Documents", "grants": [GRANT, …]}},  # the library root's
        "onedrives": {"u-alice": "d-alice"},  # a user's OneDrive (its "site" is personal/<user>)
        "items": {"i-1": {"drive": "d-eng", "parent": None, "name": "Plan.txt", "body": "…",  # parent: a folder id
                          "folder": False, "grants": None}},  # grants None: inherited from the parent
        "forbidden": {"i-7"},  # items whose permission lookup gets 403
    }

A GRANT is one of {"user": id}, {"group": id}, {"site_group": "3"}, {"everyone": True} ("Everyone except
external users"), {"claim": "c:0(.s|true"} (another SharePoint claim), or {"link": "anonymous" | "organization" |
"users" | "existingAccess", "users": [ids]}, each with "roles" (default ["read"]) and optionally "id".

Wire format as documented (https://learn.microsoft.com/graph/api/driveitem-delta, resources/permission,
sharinglink, sharepointidentityset, group-list-transitivemembers): collections are `{"value": […]}` with
`@odata.nextLink`; a drive's delta ends with `@odata.deltaLink`, and asked again with it returns what changed
since: items whose name, folder, content or permissions changed, and `deleted` entries for items gone. Every
listing returns at most `page_size` entries so small scenarios paginate. An item's permissions are its own
grants when its inheritance is broken (`grants` set), else its parent's, marked `inheritedFrom`.

Auth: tokens only for the configured client id and secret (or a client assertion signed by `certificate`), with
the Graph scope or the stand-in's own origin as SharePoint resource; a call with another token gets 401, and
`expire_tokens()` makes every token issued so far answer 401 (expired) too. `rest_refuses_secret_tokens` makes
the SharePoint REST call refuse tokens got with the secret, as SharePoint does. `expire_delta_links()` makes
earlier delta links answer 410 (resyncRequired). `throttle_every = n` answers every n-th call (token requests
aside) with 429 and the next `retry_after_values`, recorded in `throttled`. Routes are request paths, for
`fail`/`script` as with every stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from typing import Any
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.standins.base import RecordedRequest, Reply, StandInServer

GRAPH = "/v1.0"
HOST = "corp.sharepoint.test"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TEXT_TYPES = {".txt": "text/plain", ".md": "text/markdown", ".html": "text/html"}


class GraphStandIn(StandInServer):
    def __init__(self, scenario: dict[str, Any], *, client_id: str = "app-id", client_secret: str = "app-secret",
                 certificate: tuple[rsa.RSAPublicKey, str] | None = None, page_size: int = 2,
                 token_lifetime_s: int = 3599) -> None:
        super().__init__()
        self.scenario = scenario
        self.page_size = page_size
        self.token_lifetime_s = token_lifetime_s
        self.client_id = client_id
        self.client_secret = client_secret
        self.certificate = certificate  # the app's certificate: its public key and hex SHA-1 thumbprint
        self.certificate_tokens: set[str] = set()
        self.scenario_lock = threading.Lock()
        # access token -> audience ("graph" or "sharepoint"); expired ones answer 401.
        self.tokens: dict[str, str] = {}
        self.expired: set[str] = set()
        # delta token -> (drive id, {item id: fingerprint}) as the drive stood when the token was issued.
        self._delta_tokens: dict[str, tuple[str, dict[str, str]]] = {}
        self._stale_delta_tokens: set[str] = set()
        # a delta run (the pages of one enumeration) -> (drive id, entries, the snapshot at its start)
        self._runs: dict[str, tuple[str, list[dict[str, Any]], dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self.rest_refuses_secret_tokens = False
        self.throttle_every: int | None = None
        self.retry_after_values: list[float] = [1.0]
        self.throttled: list[float] = []
        self._calls = 0
        self._statuses: list[int] = []

    # Controls ---------------------------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        with self.scenario_lock:
            self.expired |= set(self.tokens)

    def expire_delta_links(self) -> None:
        with self.scenario_lock:
            self._stale_delta_tokens |= set(self._delta_tokens)

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        with self._lock:
            self._statuses.append(reply.status)

    def statuses(self) -> list[int]:
        """The status of every reply so far (throttled ones aside), in order."""
        with self._lock:
            return list(self._statuses)

    def token_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/oauth2/v2.0/token")]

    def error_body(self, code: int) -> Any:
        names = {403: "accessDenied", 404: "itemNotFound", 410: "resyncRequired", 429: "TooManyRequests",
                 500: "generalException", 502: "badGateway", 503: "serviceNotAvailable"}
        return {"error": {"code": names.get(code, "generalException"), "message": f"stand-in error {code}"}}

    def _respond(self, request: RecordedRequest) -> Reply:
        if self.throttle_every and not request.path.endswith("/oauth2/v2.0/token"):
            with self.scenario_lock:
                self._calls += 1
                throttle = self._calls % self.throttle_every == 0
                if throttle:
                    wait = self.retry_after_values[len(self.throttled) % len(self.retry_after_values)]
                    self.throttled.append(wait)
            if throttle:
                with self._lock:
                    self.requests.append(request)
                return Reply(429, self.error_body(429), {"Retry-After": f"{wait:g}"})
        return super()._respond(request)

    # Objects ----------------------------------------------------------------------------------------------------

    def site_url(self, site_key: str) -> str:
        return f"{self.url}{self.scenario['sites'][site_key]['path']}"

    def _site(self, key: str) -> dict[str, Any]:
        site = self.scenario["sites"][key]
        return {"id": f"{HOST},{key},web-{key}", "name": key, "displayName": site.get("name", key),
                "webUrl": self.site_url(key), "isPersonalSite": False}

    def _drive_site_url(self, drive_id: str) -> str:
        drive = self.scenario["drives"][drive_id]
        if "site" in drive:
            return self.site_url(drive["site"])
        owner = next(u for u, d in self.scenario.get("onedrives", {}).items() if d == drive_id)
        return f"{self.url}/personal/{owner}"

    def _drive(self, drive_id: str) -> dict[str, Any]:
        drive = self.scenario["drives"][drive_id]
        site_url = self._drive_site_url(drive_id)
        return {"id": drive_id, "name": drive.get("name", "Documents"),
                "driveType": "documentLibrary" if "site" in drive else "business",
                "webUrl": f"{site_url}/{quote(drive.get('name', 'Documents'))}",
                "sharePointIds": {"siteUrl": site_url}}

    def _path(self, item_id: str) -> list[str]:
        names: list[str] = []
        current: str | None = item_id
        while current is not None:
            item = self.scenario["items"][current]
            names.append(item["name"])
            current = item.get("parent")
        return names[::-1]

    def _item(self, item_id: str) -> dict[str, Any]:
        item = self.scenario["items"][item_id]
        drive = self._drive(item["drive"])
        parent = item.get("parent") or f"root-{item['drive']}"
        found: dict[str, Any] = {
            "id": item_id, "name": item["name"],
            "webUrl": f"{drive['webUrl']}/{'/'.join(quote(n) for n in self._path(item_id))}",
            "lastModifiedDateTime": item.get("modified", "2025-03-01T10:00:00Z"),
            "parentReference": {"driveId": item["drive"], "driveType": drive["driveType"], "id": parent},
        }
        if item.get("folder"):
            found["folder"] = {"childCount": sum(1 for i in self.scenario["items"].values()
                                                 if i.get("parent") == item_id)}
        else:
            body = item["body"].encode("utf-8")
            suffix = item["name"][item["name"].rfind("."):]
            found["file"] = {"mimeType": item.get("mime", TEXT_TYPES.get(suffix, "application/octet-stream")),
                             "hashes": {"quickXorHash": hashlib.sha256(body).hexdigest()}}
            found["size"] = len(body)
        return found

    def _fingerprint(self, item_id: str) -> str:
        item = self.scenario["items"][item_id]
        return hashlib.sha256(json.dumps([item.get("name"), item.get("parent"), item.get("body"), item.get("folder"),
                                        self._grants(item_id)], sort_keys=True, default=str).encode()).hexdigest()

    def _snapshot(self, drive_id: str) -> dict[str, str]:
        return {item_id: self._fingerprint(item_id) for item_id, item in self.scenario["items"].items()
                if item["drive"] == drive_id}

    def _depth(self, item_id: str) -> int:
        return len(self._path(item_id))

    # Permissions ------------------------------------------------------------------------------------------------

    def _grants(self, item_id: str) -> tuple[list[dict[str, Any]], str | None]:
        """The grants that decide an item, and the ancestor they are inherited from (None: its own)."""
        item = self.scenario["items"][item_id]
        if item.get("grants") is not None:
            return item["grants"], None
        parent = item.get("parent")
        if parent is None:
            return self.scenario["drives"][item["drive"]].get("grants", []), f"root-{item['drive']}"
        grants, source = self._grants(parent)
        return grants, source or parent

    def _identity(self, user_id: str) -> dict[str, Any]:
        user = self.scenario["users"][user_id]
        identity: dict[str, Any] = {
            "user": {"@odata.type": "#microsoft.graph.sharePointIdentity", "id": user_id,
                     "displayName": user.get("name", user_id)},
            "siteUser": {"id": str(sorted(self.scenario["users"]).index(user_id) + 20),
                         "displayName": user.get("name", user_id),
                         "loginName": f"i:0#.f|membership|{user['upn']}"},
        }
        if user.get("show_email", True):
            identity["user"]["email"] = user["mail"]
        return identity

    def _grant_identities(self, grant: dict[str, Any]) -> dict[str, Any]:
        if "user" in grant:
            return self._identity(grant["user"])
        if "group" in grant:
            group = self.scenario["groups"][grant["group"]]
            return {"group": {"id": grant["group"], "displayName": group["name"]},
                    "siteUser": {"id": "40", "displayName": group["name"],
                                 "loginName": f"c:0t.c|tenant|{grant['group']}"}}
        if "site_group" in grant:
            site_groups = {k: v for s in self.scenario["sites"].values() for k, v in s.get("site_groups", {}).items()}
            name = site_groups.get(grant["site_group"], {}).get("name", "group")
            return {"siteGroup": {"id": grant["site_group"], "displayName": name, "loginName": name}}
        if grant.get("everyone"):
            return {"siteUser": {"id": "13", "displayName": "Everyone except external users",
                                 "loginName": f"c:0-.f|rolemanager|spo-grid-all-users/{self.scenario['tenant']}"}}
        if "claim" in grant:
            return {"siteUser": {"id": "14", "displayName": grant["claim"], "loginName": grant["claim"]}}
        raise ValueError(f"unknown grant {grant}")

    def _permissions(self, item_id: str) -> list[dict[str, Any]]:
        grants, inherited = self._grants(item_id)
        permissions = []
        for index, grant in enumerate(grants):
            permission: dict[str, Any] = {"id": grant.get("id", f"perm-{index}"), "roles": grant.get("roles", ["read"])}
            if "link" in grant:
                permission["link"] = {"scope": grant["link"], "type": "view" if "read" in permission["roles"] else
                                      "edit", "webUrl": f"{self.url}/:t:/s/x/{permission['id']}",
                                      "preventsDownload": False}
                permission["shareId"] = f"s!{permission['id']}"
                if grant["link"] == "users":
                    permission["grantedToIdentitiesV2"] = [self._identity(u) for u in grant.get("users", [])]
                permission["hasPassword"] = False
            else:
                permission["grantedToV2"] = self._grant_identities(grant)
            if inherited is not None:
                permission["inheritedFrom"] = {"driveId": self.scenario["items"][item_id]["drive"], "id": inherited}
            permissions.append(permission)
        return permissions

    # Paging -----------------------------------------------------------------------------------------------------

    def _page(self, request: RecordedRequest, entries: list[dict[str, Any]]) -> dict[str, Any]:
        offset = int(request.query.get("$skiptoken") or 0)
        body: dict[str, Any] = {"value": entries[offset:offset + self.page_size]}
        if offset + self.page_size < len(entries):
            query = "&".join(f"{k}={quote(v, safe='$,')}" for k, v in request.query.items() if k != "$skiptoken")
            body["@odata.nextLink"] = (f"{self.url}{request.path}?{query + '&' if query else ''}"
                                       f"$skiptoken={offset + self.page_size}")
        return body

    def _delta(self, request: RecordedRequest, drive_id: str) -> Reply:
        base = f"{self.url}{GRAPH}/drives/{drive_id}/root/delta"
        if "$skiptoken" in request.query:
            run, _, offset_text = request.query["$skiptoken"].partition(".")
            if run not in self._runs or self._runs[run][0] != drive_id:
                return Reply(400, {"error": {"code": "invalidRequest", "message": "unknown skiptoken"}})
            _, entries, snapshot = self._runs[run]
            offset = int(offset_text)
        else:
            token = request.query.get("token")
            previous: dict[str, str] = {}
            if token is not None:
                if token in self._stale_delta_tokens or token not in self._delta_tokens:
                    return Reply(410, {"error": {"code": "resyncRequired",
                                                 "message": "Resync required. Replace any local items with the "
                                                            "server's version (including deletes)"}},
                                 {"Location": base})
                previous = self._delta_tokens[token][1]
            snapshot = self._snapshot(drive_id)
            changed = sorted((i for i in snapshot if previous.get(i) != snapshot[i]), key=lambda i: (self._depth(i), i))
            entries = [] if token is not None else [
                {"id": f"root-{drive_id}", "name": "root", "root": {}, "folder": {"childCount": 0},
                 "parentReference": {"driveId": drive_id}}]
            entries += [self._item(i) for i in changed]
            for gone in sorted(set(previous) - set(snapshot)):
                entries.append({"id": gone, "deleted": {"state": "deleted"},
                                "parentReference": {"driveId": drive_id}})
            run = f"r{next(self._ids)}"
            self._runs[run] = (drive_id, entries, snapshot)
            offset = 0
        body: dict[str, Any] = {"value": entries[offset:offset + self.page_size]}
        if offset + self.page_size < len(entries):
            body["@odata.nextLink"] = f"{base}?$skiptoken={run}.{offset + self.page_size}"
        else:
            token = f"t{next(self._ids)}"
            self._delta_tokens[token] = (drive_id, snapshot)
            body["@odata.deltaLink"] = f"{base}?token={token}"
        return Reply(200, body)

    # Routes -----------------------------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        with self.scenario_lock:
            if request.path.endswith("/oauth2/v2.0/token"):
                return self._token(request)
            if request.path.startswith("/download/"):
                return self._download(request)
            audience = "sharepoint" if "/_api/" in request.path else "graph"
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if self.tokens.get(token) != audience:
                return Reply(401, {"error": {"code": "InvalidAuthenticationToken",
                                             "message": "Access token validation failure."}})
            if token in self.expired:
                return Reply(401, {"error": {"code": "InvalidAuthenticationToken",
                                             "message": "Lifetime validation failed, the token is expired."}})
            if audience == "sharepoint":
                return self._site_group(request)
            return self._graph(request)

    def _token(self, request: RecordedRequest) -> Reply:
        form = request.form
        tenant = request.path.split("/")[1]
        if tenant != self.scenario["tenant"]:
            return Reply(400, {"error": "invalid_request", "error_description": f"AADSTS90002: Tenant '{tenant}' "
                                                                                "not found."})
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != self.client_id:
            return Reply(400, {"error": "unauthorized_client", "error_description": "AADSTS700016: Application "
                                                                                    "not found."})
        by_certificate = "client_assertion" in form
        if by_certificate and not self._valid_assertion(form, f"{self.url}{request.path}"):
            return Reply(401, {"error": "invalid_client", "error_description": "AADSTS700027: The certificate "
                                                                               "with identifier used to sign the "
                                                                               "client assertion is not registered"})
        if not by_certificate and form.get("client_secret") != self.client_secret:
            return Reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client "
                                                                               "secret provided."})
        scope = form.get("scope")
        if scope == GRAPH_SCOPE:
            audience = "graph"
        elif scope == f"{self.url}/.default":
            audience = "sharepoint"
        else:
            return Reply(400, {"error": "invalid_scope", "error_description": f"AADSTS70011: bad scope {scope}"})
        token = f"tok-{next(self._ids)}-{audience}"
        self.tokens[token] = audience
        if by_certificate:
            self.certificate_tokens.add(token)
        return Reply(200, {"token_type": "Bearer", "expires_in": self.token_lifetime_s, "ext_expires_in":
                           self.token_lifetime_s, "access_token": token})

    def _valid_assertion(self, form: dict[str, str], token_url: str) -> bool:
        """A client assertion signed by the registered certificate, for this app and this endpoint, unexpired."""
        if self.certificate is None or form.get("client_assertion_type") != ASSERTION_TYPE:
            return False
        public_key, thumbprint = self.certificate
        try:
            header_part, claims_part, signature_part = form["client_assertion"].split(".")
            header, claims = (json.loads(_unbase64url(part)) for part in (header_part, claims_part))
            public_key.verify(_unbase64url(signature_part), f"{header_part}.{claims_part}".encode(),
                              padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return False
        return (header.get("alg") == "RS256" and _unbase64url(header.get("x5t", "")) == bytes.fromhex(thumbprint)
                and claims.get("aud") == token_url and claims.get("iss") == claims.get("sub") == self.client_id
                and claims.get("exp", 0) > time.time())

    def _download(self, request: RecordedRequest) -> Reply:
        match = re.fullmatch(r"/download/([^/]+)/([^/]+)", request.path)
        if not match or request.query.get("tempauth") != f"ok-{match[2]}" or match[2] not in self.scenario["items"]:
            return Reply(401, {"error": {"code": "unauthenticated", "message": "bad tempauth"}})
        return Reply(200, self.scenario["items"][match[2]]["body"].encode("utf-8"))

    def _site_group(self, request: RecordedRequest) -> Reply:
        match = re.fullmatch(r"(/.+)/_api/web/sitegroups/getbyid\((\d+)\)/users", request.path)
        sites = {site["path"]: site for site in self.scenario["sites"].values()}
        if not match or match[1] not in sites:
            return Reply(404, {"odata.error": {"code": "-1, System.ArgumentException", "message": {"value": "no"}}})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.rest_refuses_secret_tokens and token not in self.certificate_tokens:
            return Reply(401, {"error_description": "Unsupported app only token."})
        group = sites[match[1]].get("site_groups", {}).get(match[2])
        if group is None:
            return Reply(404, {"odata.error": {"code": "-2146232832", "message": {"value": "Group cannot be found."}}})
        users = []
        for member in group["members"]:
            if member == "everyone":
                users.append({"Id": 13, "Title": "Everyone except external users", "PrincipalType": 4,
                              "LoginName": f"c:0-.f|rolemanager|spo-grid-all-users/{self.scenario['tenant']}",
                              "Email": ""})
            elif member in self.scenario["groups"]:
                users.append({"Id": 40, "Title": self.scenario["groups"][member]["name"], "PrincipalType": 4,
                              "LoginName": f"c:0t.c|tenant|{member}", "Email": ""})
            else:
                user = self.scenario["users"][member]
                users.append({"Id": 20, "Title": user.get("name", member), "PrincipalType": 1,
                              "LoginName": f"i:0#.f|membership|{user['upn']}", "Email": user["mail"],
                              "UserPrincipalName": user["upn"]})
        offset = int(request.query.get("$skiptoken") or 0)
        body: dict[str, Any] = {"value": users[offset:offset + self.page_size]}
        if offset + self.page_size < len(users):
            body["odata.nextLink"] = f"{self.url}{request.path}?$skiptoken={offset + self.page_size}"
        return Reply(200, body)

    def _graph(self, request: RecordedRequest) -> Reply:
        path, scenario = unquote(request.path.removeprefix(GRAPH)), self.scenario
        not_found = Reply(404, self.error_body(404))
        if path == "/sites/getAllSites":
            return Reply(200, self._page(request, [self._site(key) for key in scenario["sites"]]))
        if match := re.fullmatch(r"/sites/([^/]+?)(?::(/.+))?", path):
            if match[2] is not None:  # hostname:/server-relative path
                keys = [k for k, s in scenario["sites"].items() if match[1] == HOST and s["path"] == match[2]]
            else:
                keys = [k for k in scenario["sites"] if match[1] in (k, self._site(k)["id"])]
            return Reply(200, self._site(keys[0])) if keys else not_found
        if match := re.fullmatch(r"/sites/([^/]+)/drives", path):
            keys = [k for k in scenario["sites"] if match[1] == self._site(k)["id"]]
            if not keys:
                return not_found
            drives = [self._drive(d) for d, drive in scenario["drives"].items() if drive.get("site") == keys[0]]
            return Reply(200, self._page(request, drives))
        if match := re.fullmatch(r"/drives/([^/]+)", path):
            return Reply(200, self._drive(match[1])) if match[1] in scenario["drives"] else not_found
        if match := re.fullmatch(r"/drives/([^/]+)/root/delta", path):
            return self._delta(request, match[1]) if match[1] in scenario["drives"] else not_found
        if match := re.fullmatch(r"/drives/([^/]+)/items/([^/]+)/content", path):
            item = scenario["items"].get(match[2])
            if item is None or item["drive"] != match[1] or item.get("folder"):
                return not_found
            port = self.url.rsplit(":", 1)[1]
            # Another host name for the same server: the download must not carry the bearer token.
            return Reply(302, None, {"Location": f"http://localhost:{port}/download/{match[1]}/{match[2]}"
                                                 f"?tempauth=ok-{match[2]}"})
        if match := re.fullmatch(r"/drives/([^/]+)/items/([^/]+)/permissions", path):
            item_id = match[2]
            if item_id in scenario.get("forbidden", set()):
                return Reply(403, self.error_body(403))
            if item_id not in scenario["items"] or scenario["items"][item_id]["drive"] != match[1]:
                return not_found
            return Reply(200, self._page(request, self._permissions(item_id)))
        if path == "/users":
            users = [{"id": u, "userPrincipalName": user["upn"]} for u, user in scenario["users"].items()]
            return Reply(200, self._page(request, users))
        if match := re.fullmatch(r"/users/([^/]+)", path):
            user = scenario["users"].get(match[1])
            return Reply(200, {"id": match[1], "mail": user["mail"], "userPrincipalName": user["upn"]}) if user \
                else not_found
        if match := re.fullmatch(r"/users/([^/]+)/drive", path):
            drive_id = scenario.get("onedrives", {}).get(match[1])
            return Reply(200, self._drive(drive_id)) if drive_id else not_found
        if path == "/groups":
            groups = [{"id": g, "displayName": group["name"]} for g, group in scenario["groups"].items()]
            return Reply(200, self._page(request, groups))
        if match := re.fullmatch(r"/groups/([^/]+)/transitiveMembers", path):
            if match[1] not in scenario["groups"]:
                return not_found
            return Reply(200, self._page(request, self._transitive_members(match[1])))
        return not_found

    def _transitive_members(self, group_id: str) -> list[dict[str, Any]]:
        seen: list[str] = []
        pending = list(self.scenario["groups"][group_id]["members"])
        while pending:
            member = pending.pop(0)
            if member in seen:
                continue
            seen.append(member)
            if member in self.scenario["groups"]:
                pending.extend(self.scenario["groups"][member]["members"])
        members = []
        for member in seen:
            if member in self.scenario["groups"]:
                members.append({"@odata.type": "#microsoft.graph.group", "id": member,
                                "displayName": self.scenario["groups"][member]["name"]})
            else:
                user = self.scenario["users"][member]
                members.append({"@odata.type": "#microsoft.graph.user", "id": member, "mail": user["mail"],
                                "userPrincipalName": user["upn"]})
        return members


def _unbase64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
