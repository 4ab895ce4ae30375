"""Google Drive of a Google Workspace organisation: users' My Drives and shared drives, read over the Drive API v3
by a service account with domain-wide delegation (it acts as each user in turn), and the organisation's groups
over the Admin SDK Directory API.

What is read, and from where (https://developers.google.com/workspace/drive/api/reference/rest/v3):

- corpora: each user's My Drive — the configured `users`, or every active user the Directory API lists
  (`GET admin/directory/v1/users?customer=my_customer`) — read as that user; and shared drives — the configured
  ids, or every shared drive `admin_email` is a member of (`GET drives`) — read as `admin_email`.
- items: `GET files` page by page (`pageToken`/`nextPageToken`): a My Drive with `corpora=user` and
  `q='me' in owners and trashed = false` (only what the user owns: a file shared with several users is indexed
  once, under its owner), a shared drive with `corpora=drive&driveId=…&includeItemsFromAllDrives=true&
  supportsAllDrives=true`. Folders and shortcuts give structure only; Google Docs are exported as HTML (their
  headings become sections), Sheets as CSV (the first sheet: Drive exports no other as CSV), turned into a
  Markdown table, Slides as plain text (`GET files/{id}/export`, which Drive refuses above 10 MB:
  `exportSizeLimitExceeded`, recorded as too large); uploaded files a parser reads (connectors.parsing) are
  downloaded (`GET files/{id}?alt=media`) only when the sync reads them, after it has checked their listed size,
  and never past it. An item's external id is `user:<owner email>:<file id>` or `drive:<drive id>:<file id>`:
  the corpus says whom to act as when reading it again, and a file moved to another owner or drive becomes
  another document (the old one is deleted by the same run's change feed).
- changes: a full listing takes each corpus's `GET changes/startPageToken` before listing it; the Cursor holds one
  token per corpus. `changes()` follows `GET changes` from there (`includeRemoved=true`, a My Drive with
  `restrictToMyDrive=true`, a shared drive with `driveId`, `includeItemsFromAllDrives` and `supportsAllDrives`)
  to `newStartPageToken`. A change with `removed`, a trashed file (trashed itself or in a trashed folder), a file
  the user no longer owns or that left the drive is Deleted; other files are read again. A corpus the cursor
  does not know (a new user or drive) is listed whole; a corpus the cursor knows that is no longer listed, or a
  token Drive refuses (`400 invalid pageToken`, 404, 410), is CursorExpired: a full sync prunes instead.
- who may read an item: its permissions (the `permissions` field of the listing for My Drive files, which their
  owner may see; `GET files/{id}/permissions?supportsAllDrives=true` otherwise). They are the item's effective
  permissions: a folder's sharing and a shared drive's members (`permissionDetails` with `inherited`) included.
  Every role (owner, organizer, fileOrganizer, writer, commenter, reader) reads. `user` → `email:<address>`;
  `group` → `google:<domain>:group:<address>` (its members come from the group sync); `domain` that can be found
  by search (`allowFileDiscovery`) → `domain:<domain>` (identity.principals.domain_principal: employees whose
  address is at that domain); `domain` by link only and `anyone` (with or without the link) → principals of their
  own, `google:<domain>:domain-link:<file id>` and `google:<domain>:anyone:<file id>`, that nobody holds, unless
  the source's `link_sharing_is_org_wide` says that, in this organisation, a link shared inside the company is
  meant for the company: then a domain link is `domain:<domain>` and an anyone link "everyone except external
  users". Nothing is ever public: an anyone link is not "every Citewise user", guests included. Permissions of
  deleted accounts are ignored; a permission of a `view` of metadata only reads nothing.
- groups: Directory API `GET groups?customer=my_customer` and `GET groups/{key}/members`: each group's direct
  members, users and external people by email, nested groups as their group principals (identity expands nesting
  at query time), the whole customer (`type: CUSTOMER`) as "everyone except external users"; suspended members
  are left out.

Fails closed: a permission lookup that is refused, fails after its retries, or comes back malformed, a grantee
this connector cannot name (a user or group without an address, an unknown type or role) makes the item's
permissions unknown (visible to nobody) with the reason recorded.

Auth: OAuth 2.0 for service accounts (https://developers.google.com/identity/protocols/oauth2/service-account):
a JWT (RS256, signed with the key of the service account's JSON key, the source's `service_account_key` secret)
with `sub` = the user to act as, exchanged at the token endpoint (`grant_type=urn:ietf:params:oauth:grant-type:
jwt-bearer`) for an access token per user and scope set, cached, renewed a minute before it expires and once more
when a call answers 401. Scopes: drive.readonly for Drive, admin.directory.group.readonly for groups, and
admin.directory.user.readonly only when `users` is empty (to list them). The JWT is made with PyJWT; google-auth
would add a dependency for the same few lines and cannot be pointed at a stand-in token endpoint per call.

Good citizen: every call has a timeout; 429, 403 `rateLimitExceeded`/`userRateLimitExceeded` and 5xx are retried
after their Retry-After or a bounded exponential backoff, a bounded number of times; `sleep` and `clock` are
injectable so tests never wait. Listings are streamed a page at a time; Checkpoints follow every listing page
(the corpora done with their change tokens, the corpus being read and its next page token). Permissions seen in
the listing are kept for the item's permission lookup, at most `PERMISSION_CACHE_ITEMS` of them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import mimetypes
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
from connectors.parsing import SUPPORTED_MIME_TYPES, pipe_table
from connectors.sources.wire import Unresolvable, iso_timestamp, retry_after
from core.outbound import MeteredClient
from identity.principals import EVERYONE_EXCEPT_EXTERNAL, domain_principal, normalize_principal

if TYPE_CHECKING:
    from connectors.models import Source

logger = logging.getLogger("citewise.connectors.google_drive")

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive.readonly"
GROUP_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
USER_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - an endpoint, not a password

FOLDER = "application/vnd.google-apps.folder"
GOOGLE_APPS = "application/vnd.google-apps."
# A Google editors file -> what Drive exports it as, and what the parsers are handed.
EXPORTS = {
    "application/vnd.google-apps.document": ("text/html", "text/html"),
    "application/vnd.google-apps.spreadsheet": ("text/csv", "text/markdown"),
    "application/vnd.google-apps.presentation": ("text/plain", "text/plain"),
}
# Drive exports no more than this (files.export: exportSizeLimitExceeded).
EXPORT_LIMIT_BYTES = 10 * 1024 * 1024
READING_ROLES = frozenset({"owner", "organizer", "fileOrganizer", "writer", "commenter", "reader"})
# Attempts of one call that is throttled or fails on the server side, and the longest Retry-After honoured.
MAX_ATTEMPTS = 6
MAX_RETRY_WAIT_S = 120.0
MAX_BACKOFF_S = 32.0
THROTTLE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
TOKEN_MARGIN_S = 60.0
TOKEN_LIFETIME_S = 3600
PERMISSION_CACHE_ITEMS = 20_000
PAGE_SIZE = 500  # files and changes a page (Drive allows 1000; permissions.list caps its own at 100)
PERMISSION_FIELDS = "id,type,role,emailAddress,domain,allowFileDiscovery,deleted,view,pendingOwner,permissionDetails"
FILE_FIELDS = (f"id,name,mimeType,size,modifiedTime,webViewLink,trashed,driveId,ownedByMe,parents,"
               f"permissions({PERMISSION_FIELDS})")


class DriveError(Exception):
    """A call that gave no usable answer; `status` is the HTTP status (0: no reply), `reason` Google's reason."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Config(BaseModel):
    """A Google Workspace organisation read by a service account with domain-wide delegation; its JSON key is the
    source's `service_account_key` secret.

    `domain`: the organisation's primary domain (names its groups' principals). `admin_email`: a Workspace
    administrator (or an account with the Groups Reader and Users Reader admin roles) the service account acts as
    for the Directory API and to read shared drives. `users`: whose My Drives to read; empty reads every active
    user's. `shared_drives`: shared drive ids; empty reads every shared drive `admin_email` is a member of.
    `link_sharing_is_org_wide`: whether files shared by link (to the domain, or to anyone with the link) count as
    shared with every employee (off: nobody reads them through the link alone). `drive_url`, `directory_url` and
    `token_url` point elsewhere only for tests.
    """

    model_config = ConfigDict(extra="forbid")
    domain: str = Field(description="the Workspace primary domain, e.g. corp.example")
    admin_email: str
    users: list[str] = []
    include_my_drives: bool = True
    shared_drives: list[str] = []
    include_shared_drives: bool = True
    link_sharing_is_org_wide: bool = False
    drive_url: str = "https://www.googleapis.com/drive/v3"
    directory_url: str = "https://admin.googleapis.com/admin/directory/v1"
    token_url: str = GOOGLE_TOKEN_URL

    @field_validator("domain")
    @classmethod
    def _a_domain(cls, value: str) -> str:
        value = value.strip().lower()
        if not value or "@" in value or "/" in value or "." not in value:
            raise ValueError("the domain is the organisation's primary domain name (corp.example), not an address "
                             "or a URL")
        return value

    @field_validator("admin_email")
    @classmethod
    def _an_address(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value:
            raise ValueError("admin_email is the address of the Workspace administrator to act as")
        return value

    @field_validator("users")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        cleaned = [value.strip().lower() for value in values]
        if not all("@" in value for value in cleaned):
            raise ValueError("users are the addresses of the users whose My Drives to read")
        return cleaned


SECRETS: tuple[str, ...] = ("service_account_key",)


def build(source: Source, config: Config, secrets: dict[str, str]) -> GoogleDriveConnector:
    return GoogleDriveConnector(
        domain=config.domain, admin_email=config.admin_email,
        service_account_key=secrets.get("service_account_key", ""), users=config.users,
        include_my_drives=config.include_my_drives, shared_drives=config.shared_drives,
        include_shared_drives=config.include_shared_drives,
        link_sharing_is_org_wide=config.link_sharing_is_org_wide, drive_url=config.drive_url,
        directory_url=config.directory_url, token_url=config.token_url)


@dataclass(frozen=True)
class _Corpus:
    """A My Drive (`kind` "user", `id` its owner's address) or a shared drive ("drive", its id)."""

    kind: str
    id: str
    reader: str  # whom the service account acts as to read it

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def external_id(self, file_id: str) -> str:
        return f"{self.key}:{file_id}"


class GoogleDriveConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.LOAD, Capability.CHECKPOINT, Capability.INCREMENTAL, Capability.LIST_IDS,
        Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(
        self, *, domain: str, admin_email: str, service_account_key: str, users: list[str] | None = None,
        include_my_drives: bool = True, shared_drives: list[str] | None = None, include_shared_drives: bool = True,
        link_sharing_is_org_wide: bool = False, drive_url: str = "https://www.googleapis.com/drive/v3",
        directory_url: str = "https://admin.googleapis.com/admin/directory/v1",
        token_url: str = GOOGLE_TOKEN_URL, timeout_s: float = 30.0, page_size: int = PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.domain = domain.strip().lower()
        self.admin_email = admin_email.strip().lower()
        self._key_json = service_account_key
        self.users = [u.strip().lower() for u in users or []]
        self.include_my_drives = include_my_drives
        self.shared_drives = list(shared_drives or [])
        self.include_shared_drives = include_shared_drives
        self.link_sharing_is_org_wide = link_sharing_is_org_wide
        self.drive_url = drive_url.rstrip("/")
        self.directory_url = directory_url.rstrip("/")
        self.token_url = token_url
        self.page_size = page_size
        self._sleep = sleep
        self._clock = clock
        self._client = MeteredClient("connector.google_drive", timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                     transport=transport,
                                     headers={"Accept": "application/json"})
        self._tokens: dict[tuple[str, tuple[str, ...]], tuple[str, float]] = {}
        self._listed_permissions: OrderedDict[str, list[Any]] = OrderedDict()

    def __repr__(self) -> str:  # never the key
        return f"GoogleDriveConnector(domain={self.domain!r}, admin={self.admin_email!r})"

    def group_principal(self, address: str) -> str:
        return f"google:{self.domain}:group:{address.strip().lower()}"

    def link_principal(self, scope: str, file_id: str) -> str:
        """A sharing link's own principal: nobody holds it unless an admin grants it (identity's groups)."""
        return f"google:{self.domain}:{scope}:{file_id}"

    # -- auth ------------------------------------------------------------------------------------------------

    def _service_account(self) -> dict[str, Any]:
        try:
            key = json.loads(self._key_json)
        except ValueError:
            key = None
        if not isinstance(key, dict) or not all(isinstance(key.get(k), str) and key.get(k)
                                                for k in ("client_email", "private_key")):
            raise DriveError(0, "the service_account_key secret is not a service account's JSON key (it needs "
                                "client_email and private_key)")
        return key

    def _token(self, subject: str, scopes: tuple[str, ...]) -> str:
        cached = self._tokens.get((subject, scopes))
        if cached and self._clock() < cached[1] - TOKEN_MARGIN_S:
            return cached[0]
        key = self._service_account()
        now = int(time.time())
        claims = {"iss": key["client_email"], "sub": subject, "scope": " ".join(scopes), "aud": self.token_url,
                  "iat": now, "exp": now + TOKEN_LIFETIME_S}
        headers = {"kid": key["private_key_id"]} if isinstance(key.get("private_key_id"), str) else None
        try:
            assertion = jwt.encode(claims, key["private_key"], algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise DriveError(0, "the private key of the service account's JSON key cannot sign (not an RSA PEM "
                                "key)") from exc
        response = self._send("POST", self.token_url, subject=None, data={"grant_type": JWT_BEARER,
                                                                          "assertion": assertion})
        body = _json_object(response)
        if response.status_code != 200 or body is None or not isinstance(body.get("access_token"), str):
            error = str((body or {}).get("error") or "")
            detail = str((body or {}).get("error_description") or "").splitlines()[:1]
            hint = (" (is the service account's client id authorised for these scopes in the Admin console's "
                    "domain-wide delegation?)") if error == "unauthorized_client" else ""
            raise DriveError(response.status_code, f"token for {subject}: HTTP {response.status_code} {error} "
                                                   f"{detail[0] if detail else ''}".strip() + hint, error)
        try:
            lifetime = float(body.get("expires_in", TOKEN_LIFETIME_S))
        except (TypeError, ValueError):
            lifetime = 0.0
        self._tokens[(subject, scopes)] = (body["access_token"], self._clock() + lifetime)
        return body["access_token"]

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, subject: str | None, scopes: tuple[str, ...] = (DRIVE_SCOPE,),
              params: dict[str, str] | None = None, data: dict[str, str] | None = None,
              max_bytes: int | None = None) -> httpx.Response:
        """One call, retried: 429, 403 rate limits and 5xx after Retry-After or a bounded exponential backoff,
        transport failures after a backoff, a 401 once with a fresh token. The last reply is returned whatever its
        status; a 200 body longer than `max_bytes` is a DriveError, read no further."""
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {}
            if subject is not None:
                headers["Authorization"] = f"Bearer {self._token(subject, scopes)}"
            try:
                response = self._request(method, url, headers, params, data, max_bytes)
            except httpx.HTTPError as exc:
                if attempt >= MAX_ATTEMPTS:
                    raise DriveError(0, f"{method} {url}: {exc.__class__.__name__}") from exc
                self._sleep(min(MAX_BACKOFF_S, 2.0 ** (attempt - 1)))
                continue
            status = response.status_code
            if status == 401 and subject is not None and not renewed:
                self._tokens.pop((subject, scopes), None)
                renewed = True
                attempt -= 1
                continue
            throttled = status == 429 or (status == 403 and _reason(response) in THROTTLE_REASONS)
            if (throttled or status >= 500) and attempt < MAX_ATTEMPTS:
                wait = retry_after(response.headers.get("Retry-After"),
                                   default=min(MAX_BACKOFF_S, 2.0 ** (attempt - 1)))
                if wait > MAX_RETRY_WAIT_S:
                    return response
                self._sleep(wait)
                continue
            return response

    def _request(self, method: str, url: str, headers: dict[str, str], params: dict[str, str] | None,
                 data: dict[str, str] | None, max_bytes: int | None) -> httpx.Response:
        if max_bytes is None:
            return self._client.request(method, url, headers=headers, params=params, data=data)
        with self._client.stream(method, url, headers=headers, params=params, data=data) as streamed:
            body = bytearray()
            limit = max_bytes if streamed.status_code == 200 else 65536  # an error body: enough to read its reason
            for chunk in streamed.iter_bytes():
                body += chunk
                if len(body) > limit:
                    if streamed.status_code != 200:
                        break
                    raise DriveError(streamed.status_code, f"{method} {url}: more than the {max_bytes:,} bytes "
                                                           f"expected")
            return httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body),
                                  request=streamed.request)

    def _get(self, url: str, subject: str, params: dict[str, str], scopes: tuple[str, ...] = (DRIVE_SCOPE,),
             ) -> dict[str, Any]:
        response = self._send("GET", url, subject=subject, scopes=scopes, params=params)
        return _checked(response, f"GET {url} as {subject}")

    def _paged(self, url: str, subject: str, params: dict[str, str], field: str,
               scopes: tuple[str, ...] = (DRIVE_SCOPE,)) -> Iterator[dict[str, Any]]:
        """Every entry of a Google collection (`field` of each page), following nextPageToken."""
        token: str | None = None
        while True:
            body = self._get(url, subject, {**params, **({"pageToken": token} if token else {})}, scopes)
            entries = body.get(field, [])
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise DriveError(200, f"GET {url}: '{field}' is malformed")
            yield from entries
            next_token = body.get("nextPageToken")
            if not isinstance(next_token, str) or not next_token:
                return
            token = next_token

    # -- corpora ---------------------------------------------------------------------------------------------

    def _directory_scopes(self) -> tuple[str, ...]:
        return (GROUP_SCOPE, USER_SCOPE) if not self.users and self.include_my_drives else (GROUP_SCOPE,)

    def _corpora(self) -> list[_Corpus]:
        """The My Drives and shared drives to read, in a stable order; SourceUnavailable if they cannot be listed."""
        corpora: list[_Corpus] = []
        try:
            if self.include_my_drives:
                users = self.users or sorted(
                    str(user["primaryEmail"]).lower() for user in self._paged(
                        f"{self.directory_url}/users", self.admin_email,
                        {"customer": "my_customer", "maxResults": "500", "projection": "basic",
                         "fields": "nextPageToken,users(primaryEmail,suspended,archived)"},
                        "users", self._directory_scopes())
                    if isinstance(user.get("primaryEmail"), str) and not user.get("suspended")
                    and not user.get("archived"))
                corpora += [_Corpus("user", user, user) for user in users]
            if self.include_shared_drives:
                drives = self.shared_drives or sorted(
                    str(drive["id"]) for drive in self._paged(
                        f"{self.drive_url}/drives", self.admin_email,
                        {"pageSize": "100", "fields": "nextPageToken,drives(id,name)"}, "drives")
                    if isinstance(drive.get("id"), str))
                corpora += [_Corpus("drive", drive, self.admin_email) for drive in drives]
        except DriveError as exc:
            raise SourceUnavailable(f"Google Workspace {self.domain}: the users or shared drives could not be "
                                    f"listed ({exc}); nothing was indexed and nothing was pruned") from exc
        return corpora

    def _corpus_of(self, external_id: str) -> tuple[_Corpus, str]:
        kind, _, rest = external_id.partition(":")
        corpus_id, _, file_id = rest.rpartition(":")
        if kind not in ("user", "drive") or not corpus_id or not file_id:
            raise Unresolvable(f"{external_id} is not a Google Drive item id")
        return _Corpus(kind, corpus_id, corpus_id if kind == "user" else self.admin_email), file_id

    def _start_token(self, corpus: _Corpus) -> str:
        params = {"supportsAllDrives": "true"} | ({"driveId": corpus.id} if corpus.kind == "drive" else {})
        body = self._get(f"{self.drive_url}/changes/startPageToken", corpus.reader, params)
        token = body.get("startPageToken")
        if not isinstance(token, str) or not token:
            raise DriveError(200, f"no start page token for {corpus.key}")
        return token

    def _files_page(self, corpus: _Corpus, page: str | None) -> tuple[list[dict[str, Any]], str | None]:
        if corpus.kind == "user":
            params = {"corpora": "user", "q": "'me' in owners and trashed = false", "spaces": "drive"}
        else:
            params = {"corpora": "drive", "driveId": corpus.id, "includeItemsFromAllDrives": "true",
                      "supportsAllDrives": "true", "q": "trashed = false"}
        params |= {"pageSize": str(self.page_size), "fields": f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"}
        if page:
            params["pageToken"] = page
        body = self._get(f"{self.drive_url}/files", corpus.reader, params)
        files, next_page = body.get("files"), body.get("nextPageToken")
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise DriveError(200, f"files of {corpus.key}: a malformed page")
        if body.get("incompleteSearch"):
            raise DriveError(200, f"files of {corpus.key}: Drive says the listing is incomplete")
        return files, next_page if isinstance(next_page, str) and next_page else None

    def _changes_page(self, corpus: _Corpus, page: str) -> tuple[list[dict[str, Any]], str | None, str | None]:
        params = {"pageToken": page, "includeRemoved": "true", "pageSize": str(self.page_size), "spaces": "drive",
                  "fields": f"nextPageToken,newStartPageToken,changes(changeType,removed,fileId,file({FILE_FIELDS}))"}
        if corpus.kind == "drive":
            params |= {"driveId": corpus.id, "includeItemsFromAllDrives": "true", "supportsAllDrives": "true"}
        else:
            params |= {"restrictToMyDrive": "true"}
        response = self._send("GET", f"{self.drive_url}/changes", subject=corpus.reader, params=params)
        if response.status_code in (400, 404, 410):
            reason = _reason(response)
            raise CursorExpired(f"{corpus.key}: Drive no longer honours the change token (HTTP "
                                f"{response.status_code}{' ' + reason if reason else ''})")
        body = _checked(response, f"changes of {corpus.key}")
        changes, next_page, new_start = body.get("changes"), body.get("nextPageToken"), body.get("newStartPageToken")
        if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes) or not (
                isinstance(next_page, str) or isinstance(new_start, str)):
            raise DriveError(200, f"changes of {corpus.key}: a malformed page")
        return changes, next_page if isinstance(next_page, str) else None, \
            None if isinstance(next_page, str) else str(new_start)

    # -- walking the corpora -----------------------------------------------------------------------------------

    def _walk(self, cursor: dict[str, str] | None, checkpoint: dict[str, Any] | None,
              ) -> Iterator[tuple[_Corpus, dict[str, Any]] | Checkpoint | Cursor]:
        """Every corpus listed whole (`cursor` None, or a corpus the cursor does not know: its change token taken
        first) or its changes since the cursor's token, entry by entry: files (a listing) or changes, a Checkpoint
        after each page and the next Cursor at the end. A corpus that fails is a listing problem (IncompleteListing
        after the Cursor, which keeps its old token, or none)."""
        corpora = self._corpora()
        state = checkpoint or {}
        problems: list[tuple[str, str]] = [(str(p[0]), str(p[1])) for p in state.get("problems") or []]
        done: dict[str, str] = dict(state.get("done") or {})
        known = {corpus.key for corpus in corpora}
        if cursor is not None:
            unlisted = sorted(set(cursor) - known)
            if unlisted:
                raise CursorExpired(f"{', '.join(unlisted)} no longer listed; a full sync prunes their items")

        def mark(current: str | None = None, mode: str = "", token: str = "", page: str | None = None) -> Checkpoint:
            return Checkpoint({"done": dict(done), "current": current, "mode": mode, "token": token, "page": page,
                               "problems": [list(p) for p in problems]})

        for corpus in corpora:
            if corpus.key in done:
                continue
            resuming = state.get("current") == corpus.key and isinstance(state.get("page"), str)
            mode = "changes" if cursor is not None and corpus.key in cursor else "list"
            try:
                if mode == "changes":
                    page: str | None = state["page"] if resuming else cursor[corpus.key]  # type: ignore[index]
                    while page is not None:
                        changes, next_page, new_start = self._changes_page(corpus, page)
                        for change in changes:
                            yield corpus, change
                        if next_page:
                            page = next_page
                            yield mark(corpus.key, mode, "", page)
                        else:
                            done[corpus.key] = str(new_start)
                            page = None
                            yield mark()
                else:
                    token = state["token"] if resuming else self._start_token(corpus)
                    page = state["page"] if resuming else None
                    while True:
                        files, page = self._files_page(corpus, page)
                        for found in files:
                            yield corpus, {"file": found, "listed": True}
                        if page:
                            yield mark(corpus.key, mode, token, page)
                        else:
                            done[corpus.key] = token
                            yield mark()
                            break
            except DriveError as exc:
                problems.append((corpus.key, f"unlistable_corpus: {exc}"))
                if cursor is not None and corpus.key in cursor:
                    done[corpus.key] = cursor[corpus.key]  # read from the same token next time
                yield mark()
        yield Cursor({"tokens": dict(done)})
        if problems:
            raise IncompleteListing(problems)

    def _readable(self, corpus: _Corpus, found: dict[str, Any]) -> bool:
        """Whether a listed or changed file is one this corpus indexes."""
        mime = found.get("mimeType")
        if not isinstance(found.get("id"), str) or not isinstance(mime, str) or found.get("trashed"):
            return False
        if corpus.kind == "user" and (found.get("ownedByMe") is False or found.get("driveId")):
            return False
        if corpus.kind == "drive" and found.get("driveId") not in (None, corpus.id):
            return False
        if mime.startswith(GOOGLE_APPS):
            return mime in EXPORTS
        return _parsed_type(mime, str(found.get("name") or "")) in SUPPORTED_MIME_TYPES

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        for entry in self._walk(None, checkpoint):
            if isinstance(entry, Checkpoint | Cursor):
                yield entry
                continue
            corpus, listed = entry
            if self._readable(corpus, listed["file"]):
                yield self._source_item(corpus, listed["file"])

    def list_ids(self) -> Iterator[str]:
        for entry in self._walk(None, None):
            if isinstance(entry, tuple):
                corpus, listed = entry
                if self._readable(corpus, listed["file"]):
                    self._remember_permissions(corpus, listed["file"])
                    yield corpus.external_id(listed["file"]["id"])

    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        tokens = cursor.get("tokens")
        if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
            raise CursorExpired("the cursor holds no change tokens")
        for entry in self._walk(tokens, checkpoint):
            if isinstance(entry, Checkpoint | Cursor):
                yield entry
                continue
            corpus, change = entry
            if change.get("listed"):  # a corpus new since the cursor, listed whole
                if self._readable(corpus, change["file"]):
                    yield self._source_item(corpus, change["file"])
                continue
            if change.get("changeType", "file") != "file":
                continue  # a shared drive's own settings
            file_id = change.get("fileId") or (change.get("file") or {}).get("id")
            if not isinstance(file_id, str) or not file_id:
                continue
            found = change.get("file")
            if change.get("removed") or not isinstance(found, dict) or not self._readable(corpus, found):
                if not (isinstance(found, dict) and found.get("mimeType") == FOLDER):
                    # Gone, trashed, no longer this corpus's, or of a type not read: nothing, unless it was indexed.
                    yield Deleted(corpus.external_id(file_id))
                continue
            yield self._source_item(corpus, found)

    # -- content ---------------------------------------------------------------------------------------------

    def _remember_permissions(self, corpus: _Corpus, found: dict[str, Any]) -> None:
        permissions = found.get("permissions")
        if corpus.kind == "user" and isinstance(permissions, list):
            external_id = corpus.external_id(found["id"])
            self._listed_permissions[external_id] = permissions
            self._listed_permissions.move_to_end(external_id)
            while len(self._listed_permissions) > PERMISSION_CACHE_ITEMS:
                self._listed_permissions.popitem(last=False)

    def _source_item(self, corpus: _Corpus, found: dict[str, Any]) -> SourceItem:
        self._remember_permissions(corpus, found)
        name, mime = str(found.get("name") or ""), str(found["mimeType"])
        file_id = found["id"]
        if mime in EXPORTS:
            export_type, parsed_type = EXPORTS[mime]
            read = partial(self._export, corpus, file_id, export_type, name)
            size = 0  # Drive lists no size for editors files; an export is bounded by Drive's own limit
        else:
            parsed_type = _parsed_type(mime, name)
            try:
                size = int(found.get("size") or 0)
            except (TypeError, ValueError):
                size = 0
            read = partial(self._download, corpus, file_id, size)
        return SourceItem(
            external_id=corpus.external_id(file_id), title=name, mime_type=parsed_type, size_bytes=size, read=read,
            url=str(found.get("webViewLink") or f"https://drive.google.com/open?id={quote(file_id)}"),
            modified_at=iso_timestamp(found.get("modifiedTime")), title_from_name=True)

    def _download(self, corpus: _Corpus, file_id: str, size: int) -> bytes:
        """An uploaded file's bytes, no more than the size Drive listed (a file that grew is read next sync)."""
        url = f"{self.drive_url}/files/{quote(file_id, safe='')}"
        try:
            response = self._send("GET", url, subject=corpus.reader, params={"alt": "media",
                                                                             "supportsAllDrives": "true"},
                                  max_bytes=size)
            if response.status_code != 200:
                raise DriveError(response.status_code, f"download of {file_id}: HTTP {response.status_code} "
                                                       f"{_reason(response)}".rstrip())
        except DriveError as exc:
            raise OSError(str(exc)) from exc
        return response.content

    def _export(self, corpus: _Corpus, file_id: str, export_type: str, name: str) -> bytes:
        url = f"{self.drive_url}/files/{quote(file_id, safe='')}/export"
        try:
            response = self._send("GET", url, subject=corpus.reader, params={"mimeType": export_type},
                                  max_bytes=EXPORT_LIMIT_BYTES)
        except DriveError as exc:
            if exc.status == 200:  # longer than Drive's own limit
                raise ItemError("too_large", f"the export is over Drive's {EXPORT_LIMIT_BYTES:,} byte limit") from exc
            raise OSError(str(exc)) from exc
        if response.status_code == 403 and _reason(response) == "exportSizeLimitExceeded":
            raise ItemError("too_large", "Drive refuses to export files this large (its export limit is 10 MB)")
        if response.status_code != 200:
            raise OSError(f"export of {file_id}: HTTP {response.status_code} {_reason(response)}".rstrip())
        if export_type == "text/csv":
            return _csv_as_markdown(name, response.content)
        return response.content

    # -- permissions -----------------------------------------------------------------------------------------

    def fetch_permissions(self, external_id: str) -> Permissions:
        try:
            corpus, file_id = self._corpus_of(external_id)
            permissions = self._listed_permissions.pop(external_id, None)
            if permissions is None:
                permissions = self._read_permissions(corpus, file_id)
            principals: set[str] = set()
            for permission in permissions:
                principals |= self._granted(file_id, permission)
        except Unresolvable as exc:
            return Permissions(status="unknown", reason=str(exc))
        return Permissions(principals=frozenset(principals), status="ok")

    def _read_permissions(self, corpus: _Corpus, file_id: str) -> list[Any]:
        try:
            return list(self._paged(f"{self.drive_url}/files/{quote(file_id, safe='')}/permissions", corpus.reader,
                                    {"supportsAllDrives": "true", "pageSize": "100",
                                     "fields": f"nextPageToken,permissions({PERMISSION_FIELDS})"}, "permissions"))
        except DriveError as exc:
            raise Unresolvable(f"{corpus.external_id(file_id)}: the permissions could not be read ({exc})") from exc

    def _granted(self, file_id: str, permission: Any) -> set[str]:
        """Who one permission lets read the file."""
        if not isinstance(permission, dict):
            raise Unresolvable(f"{file_id}: a malformed permission")
        if permission.get("deleted"):
            return set()  # a deleted account reads nothing
        if permission.get("view") == "metadata":
            return set()
        kind, role, permission_id = permission.get("type"), permission.get("role"), permission.get("id")
        if role not in READING_ROLES:
            raise Unresolvable(f"{file_id}: permission {permission_id} has the role {role!r}, which this connector "
                                f"does not resolve")
        if kind in ("user", "group"):
            address = permission.get("emailAddress")
            if not isinstance(address, str) or "@" not in address:
                raise Unresolvable(f"{file_id}: a {kind} permission ({permission_id}) without an address")
            if kind == "group":
                return {self.group_principal(address)}
            return {normalize_principal(f"email:{address}")}
        if kind == "domain":
            domain = permission.get("domain")
            if not isinstance(domain, str) or not domain:
                raise Unresolvable(f"{file_id}: a domain permission ({permission_id}) without its domain")
            if permission.get("allowFileDiscovery") is True or self.link_sharing_is_org_wide:
                return {domain_principal(domain)}
            return {self.link_principal("domain-link", file_id)}
        if kind == "anyone":
            if self.link_sharing_is_org_wide:
                return {EVERYONE_EXCEPT_EXTERNAL}
            return {self.link_principal("anyone", file_id)}
        raise Unresolvable(f"{file_id}: a permission of type {kind!r}, which this connector does not resolve")

    # -- groups ----------------------------------------------------------------------------------------------

    def list_groups(self) -> Iterator[SourceGroup]:
        """Every group of the customer with its direct members. Raises ValueError when the groups cannot be read,
        so the last good memberships are kept."""
        scopes = self._directory_scopes()
        try:
            groups = [(str(g["email"]).lower(), str(g.get("name") or g["email"])) for g in self._paged(
                f"{self.directory_url}/groups", self.admin_email,
                {"customer": "my_customer", "maxResults": "200", "fields": "nextPageToken,groups(id,email,name)"},
                "groups", scopes) if isinstance(g.get("email"), str)]
        except DriveError as exc:
            raise ValueError(f"the Google groups could not be listed: {exc}") from exc
        for address, name in groups:
            members: set[str] = set()
            try:
                for member in self._paged(f"{self.directory_url}/groups/{quote(address, safe='@')}/members",
                                          self.admin_email, {"maxResults": "200",
                                                             "fields": "nextPageToken,members(id,email,type,status)"},
                                          "members", scopes):
                    members |= self._member_principals(name, member)
            except DriveError as exc:
                raise ValueError(f"the members of Google group {name} could not be listed: {exc}") from exc
            yield SourceGroup(principal=self.group_principal(address), name=name, members=tuple(sorted(members)))

    def _member_principals(self, group: str, member: dict[str, Any]) -> set[str]:
        kind, address = member.get("type"), member.get("email")
        if member.get("status") == "SUSPENDED":
            return set()
        if kind == "CUSTOMER":
            return {EVERYONE_EXCEPT_EXTERNAL}
        if not isinstance(address, str) or "@" not in address:
            logger.warning("google group %s: member %s has no address; left out", group, member.get("id"))
            return set()
        if kind == "GROUP":
            return {self.group_principal(address)}
        if kind in ("USER", "EXTERNAL"):
            return {normalize_principal(f"email:{address}")}
        logger.warning("google group %s: member %s of type %r left out", group, member.get("id"), kind)
        return set()


def _parsed_type(mime: str, name: str) -> str:
    if not mime or mime == "application/octet-stream":
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    return mime


def _csv_as_markdown(name: str, content: bytes) -> bytes:
    """A sheet's CSV as a Markdown table under the sheet's name, which the Markdown parser keeps as a table."""
    text = content.decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    return f"# {name}\n\n{pipe_table(rows)}\n".encode()


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        reason = _reason(response)
        raise DriveError(response.status_code, f"{what}: HTTP {response.status_code}{' ' + reason if reason else ''}",
                         reason)
    body = _json_object(response)
    if body is None:
        raise DriveError(response.status_code, f"{what}: the reply is not a JSON object")
    return body


def _reason(response: httpx.Response) -> str:
    """Google's error reason (`error.errors[0].reason`, or `error.status`), or ""."""
    error = (_json_object(response) or {}).get("error")
    if not isinstance(error, dict):
        return str(error or "")
    errors = error.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("reason"):
        return str(errors[0]["reason"])
    return str(error.get("status") or "")


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = GoogleDriveConnector
