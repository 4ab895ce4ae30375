"""Local stand-ins for the Microsoft services a Teams bot talks to, so Teams tests never leave 127.0.0.1.

BotFrameworkIdentityStandIn plays three Microsoft identity endpoints:

* login.botframework.com: the OpenID metadata document (/v1/.well-known/openidconfiguration) and the JWKS it
  points at (/v1/.well-known/keys), whose keys carry Bot Framework's "endorsements" (the channel ids a key may
  sign for). `channel_token()` mints the RS256 JWT the Bot Connector puts in `Authorization: Bearer ...` when it
  POSTs an activity to the bot (claims serviceurl, nbf, exp, iss, aud) -- valid, expired, wrongly addressed,
  signed by an unpublished key, or signed by a key not endorsed for the channel.
* login.microsoftonline.com: the OAuth2 v2.0 token endpoint (/{tenant}/oauth2/v2.0/token) where the bot trades
  its app id and password for the bearer token it sends to the Connector (client-credentials grant).
* login.microsoftonline.com/botframework.com: the Entra ID OpenID metadata and keys that tokens from the Bot
  Framework Emulator are checked against (/botframework.com/v2.0/.well-known/openid-configuration). Its key is not
  Bot Framework's and carries no endorsements; `emulator_token()` mints the token the Emulator sends (Entra ID
  issuer, version 1.0 or 2.0 claims).

ConnectorStandIn plays the Teams Bot Connector at a serviceUrl (Bot Framework REST API v3, /v3/conversations...):
create a conversation, send and reply to activities, update an activity, and look members up (one, all, paged),
with the Connector's ErrorResponse bodies ({"error": {"code", "message"}}) for refusals, throttling and outages.

Both are stdlib ThreadingHTTPServers on an ephemeral port; tests point the bot's settings at them and read back
every request they received, so nothing in the bot is patched.

    with BotFrameworkIdentityStandIn(app_id=APP_ID, app_password="pw") as identity, \\
            ConnectorStandIn(tenant_id=TENANT, accepted_tokens=lambda: identity.issued_tokens) as connector:
        connector.add_member("a:personal-1", id="29:alice", aad_object_id=ALICE_AAD, name="Alice A", email=...)
        token = identity.channel_token(service_url=connector.service_url)
        ...
        assert connector.messages()[0]["_conversation"] == "a:personal-1"
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.standins.base import RecordedRequest, Reply, StandInServer

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
OPENID_METADATA_PATH = "/v1/.well-known/openidconfiguration"
JWKS_PATH = "/v1/.well-known/keys"
SIGNING_KID = "bf-key-1"
EMULATOR_OPENID_METADATA_PATH = "/botframework.com/v2.0/.well-known/openid-configuration"
EMULATOR_JWKS_PATH = "/botframework.com/discovery/v2.0/keys"
EMULATOR_KID = "entra-key-1"
# The Bot Framework Emulator's token issuers (Entra ID's Bot Framework tenant), version 1.0 and 2.0 tokens.
EMULATOR_ISSUERS = {"1.0": "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/",
                    "2.0": "https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0"}
OTHER_CHANNEL_KID = "bf-key-other-channel"
UNPUBLISHED_KID = "bf-unknown"

# The Connector's member lookups: one member, all members, a page of members.
MEMBER_ROUTES = frozenset({"member", "members", "pagedmembers"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


# login.botframework.com + login.microsoftonline.com ------------------------------------------------------------


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes
    endorsements: tuple[str, ...]

    @property
    def x5t(self) -> str:
        # Bot Framework's x5t is the base64url SHA-1 thumbprint of the key's X.509 certificate.
        return _b64url(hashlib.sha1(self.certificate_der).digest())  # noqa: S324 - a thumbprint, not security

    def jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        jwk = {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.x5t, "n": _b64url_uint(numbers.n),
               "e": _b64url_uint(numbers.e), "x5c": [base64.b64encode(self.certificate_der).decode("ascii")]}
        if self.endorsements:  # Entra ID's keys have none
            jwk["endorsements"] = list(self.endorsements)
        return jwk


def _make_signing_key(kid: str, endorsements: Iterable[str]) -> _SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "login.botframework.com")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return _SigningKey(kid, key, certificate.public_bytes(serialization.Encoding.DER),
                       tuple(dict.fromkeys(endorsements)))


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    """Microsoft Entra ID's OAuth2 error body."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return {"error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
                                 f"Timestamp: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}",
            "error_codes": [code], "timestamp": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%SZ}",
            "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}


class BotFrameworkIdentityStandIn(StandInServer):
    """The Bot Framework OpenID metadata + JWKS, and the Entra ID token endpoint, for one bot registration.

    Keys: "bf-key-1" (published, endorsed for `channel_id`), "bf-key-other-channel" (published, endorsed only for
    other channels) and "bf-unknown" (never published: sign with it to forge a token).
    """

    def __init__(self, *, app_id: str, app_password: str, channel_id: str = "msteams") -> None:
        super().__init__()
        self.app_id, self.app_password, self.channel_id = app_id, app_password, channel_id
        self.issued_tokens: list[str] = []
        others = [c for c in ("webchat", "directline", "emulator", "skype", "slack") if c != channel_id]
        self._keys: dict[str, _SigningKey] = {
            SIGNING_KID: _make_signing_key(SIGNING_KID, [channel_id, *others[:3]]),
            OTHER_CHANNEL_KID: _make_signing_key(OTHER_CHANNEL_KID, others),
            UNPUBLISHED_KID: _make_signing_key(UNPUBLISHED_KID, [channel_id]),
        }
        self._emulator_key = _make_signing_key(EMULATOR_KID, [])
        self._published = (SIGNING_KID, OTHER_CHANNEL_KID)

    # URLs ---------------------------------------------------------------------------------------------------

    @property
    def openid_metadata_url(self) -> str:
        return self.url + OPENID_METADATA_PATH

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    @property
    def emulator_openid_metadata_url(self) -> str:
        return self.url + EMULATOR_OPENID_METADATA_PATH

    def token_url(self, tenant: str = "botframework.com") -> str:
        return f"{self.url}/{quote(tenant, safe='')}/oauth2/v2.0/token"

    # Tokens -------------------------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._keys[kid].jwk() for kid in self._published]}

    def channel_token(self, *, service_url: str, audience: str | None = None,
                      issuer: str = BOT_FRAMEWORK_ISSUER, kid: str = SIGNING_KID, expires_in: int = 3600,
                      not_before_offset: int = -60, sign_with: str | None = None,
                      extra_claims: dict[str, Any] | None = None, include_service_url: bool = True) -> str:
        """The JWT the Bot Connector sends the bot with an activity; `kid` names the key in the header,
        `sign_with` the key that really signs (default: `kid`, or the unpublished key if `kid` is unknown)."""
        signer = self._keys[sign_with or (kid if kid in self._keys else UNPUBLISHED_KID)]
        now = int(time.time())
        claims: dict[str, Any] = {}
        if include_service_url:
            claims["serviceurl"] = service_url
        claims.update({"nbf": now + not_before_offset, "exp": now + expires_in, "iss": issuer,
                       "aud": self.app_id if audience is None else audience})
        claims.update(extra_claims or {})
        x5t = self._keys[kid].x5t if kid in self._keys else signer.x5t
        return jwt.encode(claims, signer.private_key, algorithm="RS256",
                          headers={"typ": "JWT", "kid": kid, "x5t": x5t})

    def emulator_token(self, *, version: str = "1.0", app_id: str | None = None, expires_in: int = 3600) -> str:
        """The JWT the Bot Framework Emulator sends: issued by Entra ID to the bot's app id (the Emulator signs in
        with the bot's credentials) for itself (`aud`, and `appid` in version 1.0 tokens, `azp` in 2.0), signed with
        the Entra ID key, and without a serviceurl claim."""
        now = int(time.time())
        app_id = self.app_id if app_id is None else app_id
        claims: dict[str, Any] = {"aud": app_id, "iss": EMULATOR_ISSUERS[version], "ver": version,
                                  "iat": now - 60, "nbf": now - 60, "exp": now + expires_in,
                                  "tid": "d6d49420-f39b-4df7-a1dc-d59a935871db"}
        claims["appid" if version == "1.0" else "azp"] = app_id
        return jwt.encode(claims, self._emulator_key.private_key, algorithm="RS256",
                          headers={"typ": "JWT", "kid": EMULATOR_KID, "x5t": self._emulator_key.x5t})

    def public_key(self, kid: str = SIGNING_KID) -> rsa.RSAPublicKey:
        return self._keys[kid].private_key.public_key()

    # Recording ----------------------------------------------------------------------------------------------

    # HTTP ---------------------------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        method, path = request.method, request.path
        if path in (EMULATOR_OPENID_METADATA_PATH, EMULATOR_JWKS_PATH):
            if method != "GET":
                return Reply(405, {"error": "method_not_allowed"})
            if path == EMULATOR_JWKS_PATH:
                return Reply(200, {"keys": [self._emulator_key.jwk()]})
            return Reply(200, {"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
                                "jwks_uri": self.url + EMULATOR_JWKS_PATH,
                                "id_token_signing_alg_values_supported": ["RS256"]})
        if path in (OPENID_METADATA_PATH, JWKS_PATH):
            if method != "GET":
                return Reply(405, {"error": "method_not_allowed"})
            if path == JWKS_PATH:
                return Reply(200, self.jwks())
            return Reply(200, {"issuer": BOT_FRAMEWORK_ISSUER,
                                "authorization_endpoint": "https://invalid.botframework.com",
                                "jwks_uri": self.jwks_url,
                                "id_token_signing_alg_values_supported": ["RS256"],
                                "token_endpoint_auth_methods_supported": ["private_key_jwt"]})
        segments = path.strip("/").split("/")
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
            if method != "POST":
                return Reply(405, _aad_error("invalid_request", 900561,
                                              "The endpoint only accepts POST requests."))
            return self._token(request.form)
        return Reply(404, {"error": "not_found", "error_description": f"no route for {method} {path}"})

    def _token(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != "client_credentials":
            return Reply(400, _aad_error("unsupported_grant_type", 70003,
                                          "The app requested an unsupported grant type."))
        if not form.get("scope"):
            return Reply(400, _aad_error("invalid_request", 900144,
                                          "The request body must contain the following parameter: 'scope'."))
        if not form["scope"].endswith("/.default"):
            return Reply(400, _aad_error("invalid_scope", 1002012,
                                          f"The provided value for scope {form['scope']} is not valid. Client "
                                          "credential flows must have a scope value with /.default suffixed."))
        if form.get("client_id") != self.app_id:
            return Reply(400, _aad_error("unauthorized_client", 700016,
                                          f"Application with identifier '{form.get('client_id')}' was not found "
                                          "in the directory 'Bot Framework'."))
        if form.get("client_secret") != self.app_password:
            return Reply(401, _aad_error("invalid_client", 7000215, "Invalid client secret provided."))
        token = secrets.token_urlsafe(48)
        with self._lock:
            self.issued_tokens.append(token)
        return Reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                            "access_token": token})


# Teams Bot Connector (serviceUrl) ------------------------------------------------------------------------------


@dataclass
class ConnectorCall:
    method: str
    path: str  # percent-decoded, without the query string
    route: str  # create, send, reply, update, delete, member, members, pagedmembers, unknown
    conversation_id: str | None
    activity_id: str | None
    member_id: str | None
    query: dict[str, str]
    body: Any  # parsed JSON, or None when there was no (valid) JSON body
    headers: dict[str, str]  # lower-cased names
    at: float  # time.monotonic() when the request had been read
    status: int = 0
    response: Any = None


def _connector_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {})


# The Connector's ErrorResponse for the faults a test scripts (ConnectorStandIn.fail).
CONNECTOR_ERRORS = {
    403: ("Forbidden", "The bot is not installed for this user or is blocked."),
    429: ("Throttled", "Too many requests; retry after the given delay."),
    500: ("ServiceError", "Unknown error while processing the request."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}


class ConnectorStandIn(StandInServer):
    """The Bot Connector a Teams serviceUrl points at; all routes live under /teams/ like a regional Teams URL.

    Routes (what `fail`, `script` and `calls_to` name): create, send, reply, update, delete, member, members,
    pagedmembers, unknown. `connector.fail("reply", status=429, retry_after=1)` throttles the next reply;
    `connector.fail(*MEMBER_ROUTES, status=500, times=None)` fails every member lookup until `clear`.
    """

    PREFIX = "/teams/"

    def __init__(self, *, tenant_id: str, accepted_tokens: Callable[[], Iterable[str]] | None = None) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.accepted_tokens = accepted_tokens
        self.calls: list[ConnectorCall] = []
        self.created_conversations: list[dict[str, Any]] = []  # {"id", "parameters"}
        self._members: dict[str, list[dict[str, Any]]] = {}
        # Teams activity ids look like millisecond timestamps; a counter keeps them unique and ordered.
        self._activity_ids = itertools.count(int(time.time() * 1000))
        self._conversation_ids = itertools.count(1)

    @property
    def service_url(self) -> str:
        return self.url + self.PREFIX

    # Members ------------------------------------------------------------------------------------------------

    def add_member(self, conversation_id: str, *, id: str, aad_object_id: str, name: str,
                   email: str = "", upn: str = "", tenant_id: str | None = None,
                   user_role: str = "user") -> dict[str, Any]:
        """Register a member (TeamsChannelAccount) of a personal chat, team or channel; returns its JSON.

        `tenant_id` is the member's home tenant (default: the connector's; another one for a member of a shared
        channel from another organisation), `user_role` "user", "guest" (B2B guest) or "anonymous"."""
        given, _, surname = name.partition(" ")
        member = {"id": id, "name": name, "aadObjectId": aad_object_id, "email": email,
                  "userPrincipalName": upn or email, "givenName": given, "surname": surname,
                  "tenantId": tenant_id or self.tenant_id, "userRole": user_role}
        with self._lock:
            members = self._members.setdefault(conversation_id, [])
            members[:] = [m for m in members if m["id"] != id] + [member]
        return dict(member)

    def members_of(self, conversation_id: str) -> list[dict[str, Any]]:
        # A channel thread id ("19:...@thread.tacv2;messageid=123") shares its channel's ("19:...@thread.tacv2").
        base = conversation_id.split(";", 1)[0]
        with self._lock:
            found = list(self._members.get(conversation_id, []))
            if base != conversation_id:
                found += [m for m in self._members.get(base, []) if m["id"] not in {f["id"] for f in found}]
        return [dict(m) for m in found]

    def _find_member(self, conversation_id: str, member_id: str) -> dict[str, Any] | None:
        # Teams resolves a member by its 29: id or by its AAD object id (a GUID, any case).
        for member in self.members_of(conversation_id):
            if member["id"] == member_id or member["aadObjectId"].lower() == member_id.lower():
                return member
        return None

    def _known_member(self, account: dict[str, Any]) -> dict[str, Any] | None:
        wanted = {str(account.get("id") or "").lower(), str(account.get("aadObjectId") or "").lower()} - {""}
        with self._lock:
            for members in self._members.values():
                for member in members:
                    if {member["id"].lower(), member["aadObjectId"].lower()} & wanted:
                        return dict(member)
        return None

    # Recording ----------------------------------------------------------------------------------------------

    def calls_to(self, *routes: str, ok_only: bool = False) -> list[ConnectorCall]:
        with self._lock:
            return [c for c in self.calls
                    if (not routes or c.route in routes) and (not ok_only or 200 <= c.status < 300)]

    def activities(self, type: str | None = None, ok_only: bool = True) -> list[dict[str, Any]]:
        """Activities the bot sent or replied with, in order; each a copy of the body plus "_conversation",
        "_reply_to" (the activity id replied to, or None) and "_id" (the id the stand-in gave it, if accepted)."""
        found = []
        for call in self.calls_to("send", "reply", ok_only=ok_only):
            if not isinstance(call.body, dict) or (type is not None and call.body.get("type") != type):
                continue
            found.append({**call.body, "_conversation": call.conversation_id, "_reply_to": call.activity_id,
                          "_id": call.response.get("id") if isinstance(call.response, dict) else None})
        return found

    def messages(self) -> list[dict[str, Any]]:
        return self.activities("message")

    def typing(self) -> list[dict[str, Any]]:
        return self.activities("typing")

    def updates(self, ok_only: bool = True) -> list[dict[str, Any]]:
        """Activity bodies the bot PUT over earlier ones, with "_conversation" and "_id" (the activity updated)."""
        return [{**call.body, "_conversation": call.conversation_id, "_id": call.activity_id}
                for call in self.calls_to("update", ok_only=ok_only) if isinstance(call.body, dict)]

    # HTTP ---------------------------------------------------------------------------------------------------

    def _segments(self, request: RecordedRequest) -> list[str]:
        # A trailing slash ("/v3/conversations/") names the same resource as without one.
        return ([unquote(s) for s in request.path[len(self.PREFIX):].rstrip("/").split("/")]
                if request.path.startswith(self.PREFIX) else [])

    def route(self, request: RecordedRequest) -> str:
        return self._route(request.method, self._segments(request))[0]

    def error_body(self, code: int) -> Any:
        error, message = CONNECTOR_ERRORS.get(code, ("ServiceError", f"Error {code}."))
        return {"error": {"code": error, "message": message}}

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        segments = self._segments(request)
        route, conversation_id, activity_id, member_id = self._route(request.method, segments)
        body, _ = _json_body(request)
        with self._lock:
            self.calls.append(ConnectorCall(
                request.method, self.PREFIX + "/".join(segments) if segments else request.path, route,
                conversation_id, activity_id, member_id, request.query, body, request.headers, request.at,
                reply.status, reply.body))

    def default(self, request: RecordedRequest) -> Reply:
        route, conversation_id, activity_id, member_id = self._route(request.method, self._segments(request))
        body, bad_json = _json_body(request)
        if route == "unknown":
            return _connector_error(404, "NotFound", f"No route for {request.method} {request.path}")
        if not self._authorized(request.headers):
            return _connector_error(401, "Unauthorized", "Authorization has been denied for this request.")
        if bad_json or (route in ("create", "send", "reply", "update") and not isinstance(body, dict)):
            return _connector_error(400, "BadSyntax", "The request body is not a JSON object.")
        if route in MEMBER_ROUTES:
            assert conversation_id is not None
            return self._members_reply(route, conversation_id, member_id, request.query)
        if route == "create":
            return self._create(body)
        if route in ("send", "reply"):
            return Reply(201, {"id": str(next(self._activity_ids))})
        if route == "update":
            return Reply(200, {"id": activity_id})
        return Reply(200, None)  # delete

    @staticmethod
    def _route(method: str, segments: list[str]) -> tuple[str, str | None, str | None, str | None]:
        if len(segments) < 2 or segments[:2] != ["v3", "conversations"]:
            return "unknown", None, None, None
        rest = segments[2:]
        if not rest and method == "POST":
            return "create", None, None, None
        if len(rest) == 2 and rest[1] == "activities" and method == "POST":
            return "send", rest[0], None, None
        if len(rest) == 3 and rest[1] == "activities":
            route = {"POST": "reply", "PUT": "update", "DELETE": "delete"}.get(method, "unknown")
            return route, rest[0], rest[2], None
        if len(rest) == 2 and rest[1] in ("members", "pagedmembers") and method == "GET":
            return rest[1], rest[0], None, None
        if len(rest) == 3 and rest[1] == "members" and method == "GET":
            return "member", rest[0], None, rest[2]
        return "unknown", rest[0] if rest else None, None, None

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.accepted_tokens is None:
            return True
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and token in set(self.accepted_tokens())

    def _create(self, parameters: dict[str, Any]) -> Reply:
        conversation_id = f"a:personal-{next(self._conversation_ids)}"
        for account in parameters.get("members") or []:
            if isinstance(account, dict) and (known := self._known_member(account)) is not None:
                self.add_member(conversation_id, id=known["id"], aad_object_id=known["aadObjectId"],
                                name=known["name"], email=known["email"], upn=known["userPrincipalName"],
                                tenant_id=known["tenantId"], user_role=known["userRole"])
        with self._lock:
            self.created_conversations.append({"id": conversation_id, "parameters": parameters})
        return Reply(201, {"id": conversation_id, "serviceUrl": self.service_url, "activityId": ""})

    def _members_reply(self, route: str, conversation_id: str, member_id: str | None,
                       query: dict[str, str]) -> Reply:
        if route == "member":
            member = self._find_member(conversation_id, member_id or "")
            if member is None:
                return _connector_error(404, "MemberNotFoundInConversation",
                                        "The specified user was not found in the conversation.")
            return Reply(200, member)
        members = self.members_of(conversation_id)
        if route == "members":
            return Reply(200, members)
        try:
            page_size = int(query.get("pageSize") or 100)
            start = int(query["continuationToken"].removeprefix("ct-")) if "continuationToken" in query else 0
        except ValueError:
            return _connector_error(400, "BadArgument", "Invalid pageSize or continuationToken.")
        if page_size < 1 or start < 0:
            return _connector_error(400, "BadArgument", "Invalid pageSize or continuationToken.")
        page: dict[str, Any] = {"members": members[start:start + page_size]}
        if start + page_size < len(members):
            page["continuationToken"] = f"ct-{start + page_size}"
        return Reply(200, page)


def _json_body(request: RecordedRequest) -> tuple[Any, bool]:
    """(the parsed JSON body or None, whether there was a body that is not JSON)."""
    if not request.body:
        return None, False
    try:
        return json.loads(request.body.decode("utf-8")), False
    except (UnicodeDecodeError, ValueError):
        return None, True
