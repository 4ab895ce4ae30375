"""SharePoint Online document libraries and (optionally) OneDrive for Business, read over Microsoft Graph as an
app registration (app-only: OAuth2 client credentials, no signed-in user).

What is read, and from where (https://learn.microsoft.com/graph/api/resources/onedrive):

- sites: the configured ones (`GET /sites/{id}` or `GET /sites/{hostname}:{path}`), or every site the app may
  read (`GET /sites/getAllSites`, personal sites left to `include_onedrive`); their document libraries:
  `GET /sites/{id}/drives`; OneDrives: `GET /users` then `GET /users/{id}/drive`.
- items: `GET /drives/{id}/root/delta`, page by page through `@odata.nextLink`; the last page's
  `@odata.deltaLink` is where the next incremental sync of that drive starts (`Cursor`, one link per drive).
  Only files are items (folders give structure); a file's content is `GET /drives/{d}/items/{i}/content`, a
  302 to a pre-authenticated download URL that is fetched without the bearer token. A file's external id is
  `<drive id>:<item id>`, which a move or rename keeps; its URL is `webUrl`.
- who may read an item: `GET /drives/{d}/items/{i}/permissions` (paginated). It lists the item's effective
  permissions, inherited ones included (`inheritedFrom`), so a file whose inheritance is broken (a restricted
  file in an open folder) gets exactly its own. Only the roles `read`, `write` and `owner` grant reading.
  A user becomes `email:<mail or UPN, lower-cased>`; an Entra group `entra:<tenant>:group:<object id>` (its
  members come from the group sync); "Everyone except external users" (the `spo-grid-all-users` claim of this
  tenant) the organisation-wide pseudo-principal; a SharePoint site group (`siteGroup`) is replaced by its
  members, read with the SharePoint REST API (`{site}/_api/web/sitegroups/getbyid(n)/users`). Sharing links:
  an `anonymous` link is a principal of its own that nobody holds (anyone with the link is not "public" to
  Citewise's users), an `organization` link counts as the whole organisation only when the source's
  `organization_links_are_org_wide` says so (otherwise it too is a principal nobody holds until an admin
  grants it), a `users` link grants the people and groups it names.
- groups: every Entra group (`GET /groups`) with its transitive members
  (`GET /groups/{id}/transitiveMembers`), users only, as email principals. Transitive rather than direct
  members because SharePoint grants follow Entra nesting: each group's listing is then complete by itself,
  whether or not the groups nested in it are listed (hidden-membership groups, groups filtered out), and the
  devices and service principals Entra nests are left out.

Fails closed: a permission lookup that is refused (403), fails after its retries, or comes back malformed, a
grantee this connector cannot name (a SharePoint group whose members cannot be read, a claim such as "Everyone",
which includes guests, an M365 group's owners, a pending invitation), or a user who cannot be looked up makes
the item's permissions unknown (visible to nobody) with the reason recorded.

Tokens: the client-credentials grant is made with httpx, not msal. msal validates its authority as an https URL
(msal.authority.canonicalize), so it cannot be pointed at a plain-http stand-in, and the grant is a single form
POST; the token is cached per resource (Graph, and each SharePoint host for the site-group REST call), renewed a
minute before it expires and once more when a call answers 401. The app proves itself with its client secret or,
when the source has a certificate key, a client assertion signed with it (RS256, `x5t` = the thumbprint).
SharePoint's own REST API refuses app-only tokens got with a client secret: with a secret only, items shared
through a SharePoint group are unknown, and the reason says to add a certificate.

Good citizen: every call has a timeout; 429 and 503 are retried after their Retry-After (a bounded wait, a
bounded number of attempts), other 5xx and transport failures with a short backoff; `sleep` and `clock` are
injectable so tests never wait. Listings are streamed a page at a time.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import (
    Capability,
    Changed,
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    Listed,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
)
from connectors.sources.wire import Unresolvable, iso_timestamp, retry_after
from core.outbound import MeteredClient
from identity.principals import EVERYONE_EXCEPT_EXTERNAL

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.sharepoint")

GRAPH_RESOURCE = "https://graph.microsoft.com"
# Attempts of one call that is throttled or fails on the server side, and the longest Retry-After honoured.
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT_S = 60.0
# A token is renewed this long before Entra says it expires.
TOKEN_MARGIN_S = 60.0
THROTTLED = frozenset({429, 503})
READING_ROLES = frozenset({"read", "write", "owner"})
# SharePoint's claim for "Everyone except external users" of a tenant (its login name ends in the tenant id).
ALL_USERS_CLAIM = "c:0-.f|rolemanager|spo-grid-all-users/"
MEMBERSHIP_CLAIM = "i:0#.f|membership|"
SECURITY_GROUP_CLAIM = "c:0t.c|tenant|"
M365_GROUP_CLAIM = "c:0o.c|federateddirectoryclaimprovider|"


class GraphError(Exception):
    """A call that gave no usable answer; `status` is the HTTP status (0: no reply), `code` Graph's error code."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Config(BaseModel):
    """A Microsoft 365 tenant read by the app registration `client_id`, with its `client_secret` secret or, for
    SharePoint group members, a certificate: the `certificate_key` secret (its PEM private key) and
    `certificate_thumbprint` (the certificate's SHA-1 thumbprint, as Entra shows it).

    `sites`: site ids (`host,collection-id,web-id`) or `hostname:/sites/path`; empty reads every site the app
    may read. `include_onedrive` adds every user's OneDrive. `organization_links_are_org_wide`: whether a
    "people in your organisation" sharing link makes a file readable by every employee (it does in SharePoint;
    an admin may prefer such files to stay with their named readers). `graph_url` and `login_url` point
    elsewhere only for national clouds and tests.
    """

    model_config = ConfigDict(extra="forbid")
    tenant_id: str = Field(description="the directory (tenant) id, a GUID: SharePoint names the tenant by it")
    client_id: str
    sites: list[str] = []
    include_onedrive: bool = False
    organization_links_are_org_wide: bool = False
    certificate_thumbprint: str = ""
    graph_url: str = "https://graph.microsoft.com/v1.0"
    login_url: str = "https://login.microsoftonline.com"

    @field_validator("tenant_id")
    @classmethod
    def _a_guid(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError as exc:
            raise ValueError("the tenant id is the directory's GUID (Entra admin center > Overview), not a "
                             "domain name") from exc


# Either suffices for Graph; SharePoint's REST API (site group members) takes certificate-based tokens only.
SECRETS: tuple[str, ...] = ("client_secret", "certificate_key")


def build(source: Source, config: Config, secrets: dict[str, str]) -> SharePointConnector:
    return SharePointConnector(
        tenant_id=config.tenant_id, client_id=config.client_id, client_secret=secrets.get("client_secret", ""),
        certificate_key=secrets.get("certificate_key", ""), certificate_thumbprint=config.certificate_thumbprint,
        sites=config.sites, include_onedrive=config.include_onedrive,
        organization_links_are_org_wide=config.organization_links_are_org_wide, graph_url=config.graph_url,
        login_url=config.login_url)


@dataclass(frozen=True)
class _Drive:
    id: str
    name: str
    site_url: str  # the SharePoint site (web) the drive lives in, for its site groups' REST call


@dataclass(frozen=True)
class _Page:
    """One page of a drive's delta: its items, and either the next page's link or the drive's delta link."""

    items: list[dict[str, Any]]
    next_link: str | None
    delta_link: str | None


class SharePointConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.LOAD, Capability.CHECKPOINT, Capability.INCREMENTAL, Capability.LIST_IDS,
        Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(
        self, *, tenant_id: str, client_id: str, client_secret: str = "", certificate_key: str = "",
        certificate_thumbprint: str = "", sites: list[str] | None = None,
        include_onedrive: bool = False, organization_links_are_org_wide: bool = False,
        graph_url: str = "https://graph.microsoft.com/v1.0", login_url: str = "https://login.microsoftonline.com",
        timeout_s: float = 30.0, sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tenant_id = tenant_id.strip().lower()
        self.client_id = client_id
        self._client_secret = client_secret
        self._certificate_key = certificate_key
        self._certificate_thumbprint = certificate_thumbprint.replace(":", "").strip()
        self.site_refs = list(sites or [])
        self.include_onedrive = include_onedrive
        self.organization_links_are_org_wide = organization_links_are_org_wide
        self.graph_url = graph_url.rstrip("/")
        self.login_url = login_url.rstrip("/")
        self._graph_origin = _origin(self.graph_url)
        self._sleep = sleep
        self._clock = clock
        self._client = MeteredClient("connector.sharepoint", timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                     transport=transport,
                                     headers={"Accept": "application/json"})
        self._tokens: dict[str, tuple[str, float]] = {}
        self._drives: dict[str, _Drive] = {}
        self._emails: dict[str, str | None] = {}
        self._site_groups: dict[tuple[str, str], frozenset[str] | Unresolvable] = {}

    def __repr__(self) -> str:  # never the secret
        return f"SharePointConnector(tenant={self.tenant_id!r}, client_id={self.client_id!r})"

    def group_principal(self, group_id: str) -> str:
        return f"entra:{self.tenant_id}:group:{group_id.lower()}"

    def link_principal(self, scope: str, external_id: str, permission_id: str) -> str:
        """A sharing link's own principal: nobody holds it unless an admin grants it (identity's groups)."""
        return f"sharepoint:{self.tenant_id}:{scope}-link:{external_id}:{permission_id}"

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _token(self, resource: str) -> str:
        cached = self._tokens.get(resource)
        if cached and self._clock() < cached[1] - TOKEN_MARGIN_S:
            return cached[0]
        url = f"{self.login_url}/{quote(self.tenant_id, safe='')}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "scope": f"{resource}/.default",
                **self._credential(url)}
        response = self._send("POST", url, resource=None, data=form)
        body = _json_object(response)
        if response.status_code != 200 or body is None or not isinstance(body.get("access_token"), str):
            code = str((body or {}).get("error") or "")
            # Entra's description names the problem (AADSTS7000215: invalid secret) and never echoes the secret.
            detail = str((body or {}).get("error_description") or "").splitlines()[0:1]
            raise GraphError(response.status_code, f"token for {resource}: HTTP {response.status_code} {code} "
                             f"{detail[0] if detail else ''}".strip(), code)
        try:
            lifetime = float(body.get("expires_in", 3599))
        except (TypeError, ValueError):
            lifetime = 0.0
        self._tokens[resource] = (body["access_token"], self._clock() + lifetime)
        return body["access_token"]

    def _credential(self, token_url: str) -> dict[str, str]:
        """The client's proof: a client assertion signed with the certificate's key when there is one, else the
        secret (https://learn.microsoft.com/entra/identity-platform/certificate-credentials)."""
        if not self._certificate_key:
            return {"client_secret": self._client_secret}
        try:
            key = serialization.load_pem_private_key(self._certificate_key.encode(), password=None)
            thumbprint = bytes.fromhex(self._certificate_thumbprint)
        except ValueError as exc:
            raise GraphError(0, "the certificate key is not a PEM private key without a password, or "
                                "certificate_thumbprint is not the certificate's hex SHA-1 thumbprint") from exc
        if not isinstance(key, rsa.RSAPrivateKey) or len(thumbprint) != 20:
            raise GraphError(0, "Entra takes an RSA certificate and its 20-byte SHA-1 thumbprint")
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5t": _base64url(thumbprint)}
        claims = {"aud": token_url, "iss": self.client_id, "sub": self.client_id, "jti": str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + 600}
        signing_input = ".".join(_base64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, claims))
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": f"{signing_input}.{_base64url(signature)}"}

    def _send(self, method: str, url: str, *, resource: str | None, data: dict[str, str] | None = None,
              accept: str | None = None, max_bytes: int | None = None) -> httpx.Response:
        """One call, retried: 429/503 after Retry-After, other 5xx and transport failures after a short backoff,
        a 401 once with a fresh token. The last reply is returned whatever its status; a body longer than
        `max_bytes` is a GraphError, read no further."""
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": accept} if accept else {}
            if resource is not None:
                headers["Authorization"] = f"Bearer {self._token(resource)}"
            try:
                response = self._request(method, url, headers, data, max_bytes)
            except httpx.HTTPError as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise GraphError(0, f"{method} {_shown(url)}: {exc.__class__.__name__}") from exc
                self._sleep(2.0 ** (attempt - 1))
                continue
            status = response.status_code
            if status == 401 and resource is not None and not renewed:
                self._tokens.pop(resource, None)
                renewed = True
                attempt -= 1
                continue
            if (status in THROTTLED or status >= 500) and attempt < MAX_ATTEMPTS:
                wait = retry_after(response.headers.get("Retry-After"), default=2.0 ** (attempt - 1))
                if wait > MAX_RETRY_WAIT_S:
                    return response
                self._sleep(wait)
                continue
            return response

    def _request(self, method: str, url: str, headers: dict[str, str], data: dict[str, str] | None,
                 max_bytes: int | None) -> httpx.Response:
        if max_bytes is None:
            return self._client.request(method, url, headers=headers, data=data)
        with self._client.stream(method, url, headers=headers, data=data) as streamed:
            body = bytearray()
            for chunk in streamed.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise GraphError(streamed.status_code, f"{method} {_shown(url)}: more than the {max_bytes:,} "
                                                           f"bytes Graph said the file holds")
            return httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body),
                                  request=streamed.request)

    def _graph(self, url: str) -> dict[str, Any]:
        """GET a Graph URL (absolute, or a path under graph_url), a JSON object back; GraphError otherwise."""
        if not url.startswith(("http://", "https://")):
            url = f"{self.graph_url}{url}"
        elif _origin(url) != self._graph_origin:
            # A next or delta link elsewhere is not followed: the bearer token goes to Graph only.
            raise GraphError(0, f"GET {_shown(url)}: a link outside {self._graph_origin}")
        response = self._send("GET", url, resource=GRAPH_RESOURCE)
        return _checked(response, f"GET {_shown(url)}")

    def _paged(self, url: str) -> Iterator[dict[str, Any]]:
        """Every entry of a Graph collection, following @odata.nextLink."""
        next_url: str | None = url
        while next_url:
            body = self._graph(next_url)
            values = body.get("value")
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise GraphError(200, f"GET {_shown(next_url)}: 'value' missing or malformed")
            yield from values
            link = body.get("@odata.nextLink")
            next_url = link if isinstance(link, str) and link else None

    # -- sites and drives ------------------------------------------------------------------------------------

    def _sites(self) -> list[dict[str, Any]]:
        if not self.site_refs:
            return [s for s in self._paged("/sites/getAllSites") if not s.get("isPersonalSite")]
        return [self._graph(f"/sites/{quote(ref, safe=':/,')}") for ref in self.site_refs]

    def _listed_drives(self) -> tuple[list[_Drive], list[tuple[str, str]]]:
        """Every drive to read, and where drives could not be listed; SourceUnavailable if the sites cannot be."""
        try:
            sites = self._sites()
        except GraphError as exc:
            raise SourceUnavailable(f"Microsoft 365 tenant {self.tenant_id}: the sites could not be read ({exc}); "
                                    f"nothing was indexed and nothing was pruned") from exc
        drives: list[_Drive] = []
        problems: list[tuple[str, str]] = []
        for site in sites:
            site_id, site_url = site.get("id"), site.get("webUrl")
            if not isinstance(site_id, str) or not isinstance(site_url, str):
                problems.append(("sites", "malformed_site: a site without an id or webUrl"))
                continue
            try:
                for drive in self._paged(f"/sites/{quote(site_id, safe=',')}/drives"):
                    if isinstance(drive.get("id"), str):
                        drives.append(_Drive(drive["id"], str(drive.get("name") or ""), site_url))
            except GraphError as exc:
                problems.append((f"site {site_url}", f"unlistable_site: {exc}"))
        if self.include_onedrive:
            try:
                for user in self._paged("/users?$select=id,userPrincipalName"):
                    try:
                        onedrive = self._graph(f"/users/{quote(str(user.get('id')), safe='')}/drive")
                    except GraphError as exc:
                        if exc.status == 404:  # no OneDrive (unlicensed, never signed in)
                            continue
                        problems.append((f"onedrive of {user.get('userPrincipalName')}", f"unlistable_drive: {exc}"))
                        continue
                    if isinstance(onedrive.get("id"), str):
                        drives.append(_Drive(onedrive["id"], str(onedrive.get("name") or ""),
                                             _site_of(onedrive.get("webUrl"))))
            except GraphError as exc:
                problems.append(("users", f"unlistable_users: {exc}"))
        self._drives.update((found.id, found) for found in drives)
        return drives, problems

    def _delta_page(self, url: str) -> _Page:
        body = self._graph(url)
        items = body.get("value")
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or not (
                isinstance(next_link, str) or isinstance(delta_link, str)):
            raise GraphError(200, f"GET {_shown(url)}: a malformed delta page")
        return _Page(items, next_link if isinstance(next_link, str) else None,
                     None if isinstance(next_link, str) else delta_link)

    def _walk(self, cursor: dict[str, str] | None, checkpoint: dict[str, Any] | None,
              ) -> Iterator[tuple[_Drive, dict[str, Any]] | Checkpoint | Cursor]:
        """Every drive's delta since `cursor` (each drive's delta link; from scratch when None or for a drive it
        does not name), item by item, a Checkpoint after each page and the next Cursor at the end.

        A drive whose delta fails is a listing problem (IncompleteListing after the Cursor, which keeps the
        drive's old link, or none, so the next run reads it again); a 410 on a delta link is CursorExpired."""
        drives, problems = self._listed_drives()
        state = checkpoint or {}
        done: dict[str, str] = dict(state.get("delta") or {})
        unlisted = sorted(set(cursor or {}) - {drive.id for drive in drives})
        if unlisted and not problems:
            raise CursorExpired(f"drives {', '.join(unlisted)} are no longer listed; a full sync prunes their items")
        for drive_id in unlisted:  # perhaps only unlisted because a site failed: read from the same link next time
            done.setdefault(drive_id, (cursor or {})[drive_id])
        resume_drive, resume_link = state.get("drive_id"), state.get("next")
        for index, drive in enumerate(drives):
            if drive.id in done:
                continue
            if drive.id == resume_drive and isinstance(resume_link, str):
                url = resume_link
            elif cursor is not None and drive.id in cursor:
                url = cursor[drive.id]
            else:
                url = f"/drives/{quote(drive.id, safe='')}/root/delta"
            while True:
                try:
                    page = self._delta_page(url)
                except GraphError as exc:
                    if exc.status == 410 and cursor is not None:
                        raise CursorExpired(f"drive {drive.id}: the delta link is no longer honoured "
                                            f"({exc.code or 'HTTP 410'})") from exc
                    problems.append((f"drive {drive.name or drive.id}", f"unlistable_drive: {exc}"))
                    if cursor is not None and drive.id in cursor:
                        done[drive.id] = cursor[drive.id]
                    break
                for item in page.items:
                    yield drive, item
                if page.next_link:
                    url = page.next_link
                    yield Checkpoint({"delta": dict(done), "drive": index, "drive_id": drive.id, "next": url})
                    continue
                done[drive.id] = str(page.delta_link)
                yield Checkpoint({"delta": dict(done), "drive": index + 1, "drive_id": None, "next": None})
                break
        yield Cursor({"delta": done})
        if problems:
            raise IncompleteListing(problems)

    # -- content ---------------------------------------------------------------------------------------------

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        for entry in self._walk(None, checkpoint):
            if isinstance(entry, Checkpoint | Cursor):
                yield entry
                continue
            drive, item = entry
            if "file" in item and "deleted" not in item and isinstance(item.get("id"), str):
                yield self._source_item(drive, item)

    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        links = cursor.get("delta")
        if not isinstance(links, dict) or not all(isinstance(v, str) for v in links.values()):
            raise CursorExpired("the cursor holds no delta links")
        for entry in self._walk(links, checkpoint):
            if isinstance(entry, Checkpoint | Cursor):
                yield entry
                continue
            drive, item = entry
            if not isinstance(item.get("id"), str):
                continue
            if "deleted" in item:
                if "folder" not in item:
                    yield Deleted(f"{drive.id}:{item['id']}")
            elif "file" in item:
                yield self._source_item(drive, item)

    def list_ids(self) -> Iterator[str]:
        for entry in self._walk(None, None):
            if isinstance(entry, tuple):
                drive, item = entry
                if "file" in item and "deleted" not in item and isinstance(item.get("id"), str):
                    yield f"{drive.id}:{item['id']}"

    def _source_item(self, drive: _Drive, item: dict[str, Any]) -> SourceItem:
        name = str(item.get("name") or "")
        mime_type = str((item.get("file") or {}).get("mimeType") or "")
        if not mime_type or mime_type == "application/octet-stream":
            mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        size = item.get("size") if isinstance(item.get("size"), int) else None
        return SourceItem(
            external_id=f"{drive.id}:{item['id']}", title=name, mime_type=mime_type, size_bytes=size or 0,
            read=partial(self._download, drive.id, item["id"], size),
            url=str(item.get("webUrl") or ""), modified_at=iso_timestamp(item.get("lastModifiedDateTime")),
            title_from_name=True)

    def _download(self, drive_id: str, item_id: str, size: int | None) -> bytes:
        """The file's bytes: Graph answers with a redirect to a pre-authenticated URL, fetched without the token.
        No more than the size Graph listed is read (a file that grew since is read at the next sync)."""
        url = f"{self.graph_url}/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}/content"
        try:
            response = self._send("GET", url, resource=GRAPH_RESOURCE, accept="*/*")
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("Location") or ""
                if not location.startswith(("https://", "http://")):
                    raise GraphError(response.status_code, f"GET {_shown(url)}: a redirect without a location")
                response = self._send("GET", location, resource=None, accept="*/*", max_bytes=size)
            if response.status_code != 200:
                raise GraphError(response.status_code, f"download of {item_id}: HTTP {response.status_code}")
        except GraphError as exc:
            raise OSError(str(exc)) from exc
        return response.content

    # -- permissions -----------------------------------------------------------------------------------------

    def fetch_permissions(self, external_id: str) -> Permissions:
        try:
            principals = self._readers(external_id)
        except Unresolvable as exc:
            return Permissions(status="unknown", reason=str(exc))
        return Permissions(principals=frozenset(principals), status="ok")

    def _readers(self, external_id: str) -> set[str]:
        drive_id, _, item_id = external_id.partition(":")
        if not drive_id or not item_id:
            raise Unresolvable(f"{external_id} is not a drive item id")
        url = f"/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}/permissions"
        readers: set[str] = set()
        try:
            for permission in self._paged(url):
                readers |= self._granted(external_id, permission)
        except GraphError as exc:
            raise Unresolvable(f"{external_id}: the permissions could not be read ({exc})") from exc
        return readers

    def _granted(self, external_id: str, permission: dict[str, Any]) -> set[str]:
        """Who one permission lets read the item."""
        roles, permission_id = permission.get("roles"), str(permission.get("id") or "")
        if not isinstance(roles, list):
            raise Unresolvable(f"{external_id}: permission {permission_id} has no roles")
        if not READING_ROLES & set(roles):
            return set()  # "limited access" and the like: no reading of this item
        link = permission.get("link")
        if link is not None:
            if not isinstance(link, dict):
                raise Unresolvable(f"{external_id}: permission {permission_id} has a malformed link")
            scope = link.get("scope")
            if scope == "anonymous":
                return {self.link_principal("anonymous", external_id, permission_id)}
            if scope == "organization":
                if self.organization_links_are_org_wide:
                    return {EVERYONE_EXCEPT_EXTERNAL}
                return {self.link_principal("organization", external_id, permission_id)}
            if scope == "existingAccess":
                return set()
            if scope != "users":
                raise Unresolvable(f"{external_id}: a sharing link of scope {scope!r}, which this connector "
                                    f"does not resolve")
        identity_sets = self._identity_sets(permission)
        if identity_sets is None:
            if link is not None:
                return set()  # a people link nobody has been added to yet
            raise Unresolvable(f"{external_id}: permission {permission_id} names no grantee (a pending "
                                f"invitation?)")
        readers: set[str] = set()
        for identity_set in identity_sets:
            readers |= self._identity_principals(external_id, identity_set)
        return readers

    @staticmethod
    def _identity_sets(permission: dict[str, Any]) -> list[dict[str, Any]] | None:
        found: list[Any] = []
        for single, many in (("grantedToV2", "grantedToIdentitiesV2"), ("grantedTo", "grantedToIdentities")):
            if permission.get(single) is not None:
                found.append(permission[single])
            if permission.get(many) is not None:
                found.extend(permission[many] if isinstance(permission[many], list) else [permission[many]])
            if found:
                break  # the V2 sets say everything the deprecated ones do, and more
        if not found:
            return None
        if not all(isinstance(entry, dict) for entry in found):
            return [{"malformed": True}]
        return found

    def _identity_principals(self, external_id: str, identities: dict[str, Any]) -> set[str]:
        """The principals one sharePointIdentitySet names."""
        login_names = [str(entry.get("loginName") or "") for entry in identities.values() if isinstance(entry, dict)]
        for login in login_names:
            if login.lower().startswith(ALL_USERS_CLAIM):
                if login.lower().removeprefix(ALL_USERS_CLAIM) != self.tenant_id:
                    raise Unresolvable(f"{external_id}: 'Everyone except external users' of another tenant")
                return {EVERYONE_EXCEPT_EXTERNAL}
        site_group, group, user, site_user = (identities.get(k) for k in ("siteGroup", "group", "user", "siteUser"))
        if isinstance(site_group, dict):
            return set(self._site_group_members(external_id, site_group))
        if isinstance(group, dict):
            group_id = group.get("id")
            if not isinstance(group_id, str) or not group_id:
                raise Unresolvable(f"{external_id}: a group grantee without an id ({group.get('displayName')!r})")
            return {self.group_principal(group_id)}
        if isinstance(user, dict):
            return {self._user_principal(external_id, user)}
        if isinstance(site_user, dict):
            return self._claim_principals(external_id, str(site_user.get("loginName") or ""))
        if identities and set(identities) <= {"application", "device", "@odata.type"}:
            return set()  # an app or device: nobody who asks questions
        raise Unresolvable(f"{external_id}: a grantee of kind {', '.join(sorted(identities)) or 'none'}, which "
                            f"this connector does not resolve")

    def _user_principal(self, external_id: str, user: dict[str, Any]) -> str:
        email = user.get("email")
        if isinstance(email, str) and "@" in email:
            return f"email:{email.strip().lower()}"
        user_id = user.get("id")
        if not isinstance(user_id, str) or not user_id:
            raise Unresolvable(f"{external_id}: a user grantee without an email or id")
        if user_id not in self._emails:
            try:
                found = self._graph(f"/users/{quote(user_id, safe='')}?$select=id,mail,userPrincipalName")
            except GraphError as exc:
                raise Unresolvable(f"{external_id}: user {user_id} could not be looked up ({exc})") from exc
            address = found.get("mail") or found.get("userPrincipalName")
            self._emails[user_id] = address.strip().lower() if isinstance(address, str) and address.strip() else None
        if self._emails[user_id] is None:
            raise Unresolvable(f"{external_id}: user {user_id} has neither mail nor user principal name")
        return f"email:{self._emails[user_id]}"

    def _claim_principals(self, where: str, login: str) -> set[str]:
        """A SharePoint login name (a claim) as principals."""
        lowered = login.lower()
        if lowered.startswith(MEMBERSHIP_CLAIM) and "@" in lowered:
            return {f"email:{lowered.removeprefix(MEMBERSHIP_CLAIM)}"}
        if lowered.startswith(ALL_USERS_CLAIM) and lowered.removeprefix(ALL_USERS_CLAIM) == self.tenant_id:
            return {EVERYONE_EXCEPT_EXTERNAL}
        for claim in (SECURITY_GROUP_CLAIM, M365_GROUP_CLAIM):
            if lowered.startswith(claim):
                group_id = lowered.removeprefix(claim)
                if group_id.endswith("_o"):
                    break  # an M365 group's owners: not a group Entra lists
                return {self.group_principal(group_id)}
        raise Unresolvable(f"{where}: a grantee with the claim {login!r}, which this connector does not resolve "
                            f"(e.g. 'Everyone', which includes guests)")

    def _site_group_members(self, external_id: str, site_group: dict[str, Any]) -> frozenset[str]:
        group_id = site_group.get("id")
        drive = self._drive(external_id)
        if not isinstance(group_id, str | int) or not str(group_id).isdigit():
            raise Unresolvable(f"{external_id}: a SharePoint group without a numeric id")
        key = (drive.site_url, str(group_id))
        if key not in self._site_groups:
            try:
                self._site_groups[key] = self._read_site_group(drive.site_url, str(group_id))
            except Unresolvable as exc:
                self._site_groups[key] = exc
        found = self._site_groups[key]
        if isinstance(found, Unresolvable):
            raise Unresolvable(f"{external_id}: {found}")
        return found

    def _read_site_group(self, site_url: str, group_id: str) -> frozenset[str]:
        name = f"SharePoint group {group_id} of {site_url}"
        members: set[str] = set()
        url: str | None = f"{site_url}/_api/web/sitegroups/getbyid({group_id})/users"
        while url:
            if _origin(url) != _origin(site_url):
                raise Unresolvable(f"{name}: a next link outside the site")
            try:
                response = self._send("GET", url, resource=_origin(site_url), accept="application/json;odata=nometadata")
                body = _checked(response, f"GET {_shown(url)}")
            except GraphError as exc:
                hint = (" (SharePoint refuses app-only tokens got with a client secret: give the source a "
                        "certificate)") if exc.status == 401 and not self._certificate_key else ""
                raise Unresolvable(f"{name}: its members could not be read ({exc}){hint}") from exc
            users = body.get("value")
            if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
                raise Unresolvable(f"{name}: a malformed member list")
            for user in users:
                members |= self._site_user_principals(name, user)
            link = body.get("odata.nextLink") or body.get("@odata.nextLink")
            url = link if isinstance(link, str) and link else None
        return frozenset(members)

    def _site_user_principals(self, where: str, user: dict[str, Any]) -> set[str]:
        """A SharePoint site user (REST): a person by email, or a claim (an Entra group, everyone)."""
        login = str(user.get("LoginName") or "")
        if user.get("PrincipalType") == 1:
            address = user.get("Email") or user.get("UserPrincipalName")
            if isinstance(address, str) and "@" in address:
                return {f"email:{address.strip().lower()}"}
        return self._claim_principals(where, login)

    def _drive(self, external_id: str) -> _Drive:
        """The drive an item lives in (listed this sync, or looked up)."""
        drive_id = external_id.partition(":")[0]
        if drive_id not in self._drives:
            try:
                found = self._graph(f"/drives/{quote(drive_id, safe='')}?$select=id,name,webUrl,sharePointIds")
            except GraphError as exc:
                raise Unresolvable(f"{external_id}: its drive could not be read ({exc})") from exc
            ids = found.get("sharePointIds") or found.get("sharepointIds") or {}
            site_url = ids.get("siteUrl") if isinstance(ids, dict) else None
            self._drives[drive_id] = _Drive(drive_id, str(found.get("name") or ""),
                                            site_url if isinstance(site_url, str) else _site_of(found.get("webUrl")))
        drive = self._drives[drive_id]
        if not drive.site_url:
            raise Unresolvable(f"{external_id}: the site of drive {drive_id} is not known")
        return drive

    # -- groups ----------------------------------------------------------------------------------------------

    def list_groups(self) -> Iterator[SourceGroup]:
        """Every Entra group with its transitive user members. Raises ValueError when the groups cannot be read,
        so the last good memberships are kept."""
        try:
            groups = [(str(g["id"]), str(g.get("displayName") or g["id"]))
                      for g in self._paged("/groups?$select=id,displayName") if isinstance(g.get("id"), str)]
        except GraphError as exc:
            raise ValueError(f"the Entra groups could not be listed: {exc}") from exc
        for group_id, name in groups:
            members: set[str] = set()
            try:
                for member in self._paged(f"/groups/{quote(group_id, safe='')}/transitiveMembers"
                                          f"?$select=id,mail,userPrincipalName"):
                    if member.get("@odata.type") != "#microsoft.graph.user":
                        continue  # nested groups' users are listed too; devices and apps ask nothing
                    address = member.get("mail") or member.get("userPrincipalName")
                    if isinstance(address, str) and "@" in address:
                        members.add(f"email:{address.strip().lower()}")
                    else:
                        # Without User.Read(Basic).All Graph hides members' addresses: they are left out.
                        logger.warning("entra group %s: member %s has no visible address; left out", name,
                                       member.get("id"))
            except GraphError as exc:
                raise ValueError(f"the members of Entra group {name} could not be listed: {exc}") from exc
            yield SourceGroup(principal=self.group_principal(group_id), name=name, members=tuple(sorted(members)))


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        error = (_json_object(response) or {}).get("error")
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        raise GraphError(response.status_code, f"{what}: HTTP {response.status_code}{' ' + code if code else ''}",
                         code)
    body = _json_object(response)
    if body is None:
        raise GraphError(response.status_code, f"{what}: the reply is not a JSON object")
    return body


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _shown(url: str) -> str:
    """A URL for messages: without its query (delta tokens, download signatures)."""
    return url.split("?", 1)[0]


def _site_of(web_url: Any) -> str:
    """The site of a OneDrive's web URL (https://corp-my.sharepoint.com/personal/alice_corp_com/Documents)."""
    if not isinstance(web_url, str) or not web_url:
        return ""
    return web_url.rstrip("/").rsplit("/", 1)[0]


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = SharePointConnector
