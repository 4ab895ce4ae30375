"""Bot Framework authentication, outbound credentials and the serviceUrl allowlist, all from settings.

Incoming activities are validated by botframework-connector's JWT validation (signature against the OpenID
metadata's keys, channel endorsement, issuer, audience = our app id, expiry, serviceurl claim = the activity's
serviceUrl). What is ours: the token is checked before the body is read (signature, issuer, audience, expiry),
and again with the activity once it is parsed; tokens from the Bot Framework Emulator's issuers are refused
unless TEAMS_ALLOW_EMULATOR is on; the metadata URLs come from settings, metadata is fetched with a timeout,
outbound tokens come from a configurable OAuth2 token endpoint, and no connector client is ever built for a
serviceUrl outside the allowlist.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from botbuilder.schema import Activity
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConfiguration,
    BotFrameworkAuthentication,
    BotFrameworkAuthenticationFactory,
    ClaimsIdentity,
    ConnectorFactory,
    EmulatorValidation,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
    UserTokenClient,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor, _OpenIdMetadata
from django.conf import settings
from urllib3.util.retry import Retry

from bot.clock import clock
from core.outbound import outcome_of_error, record, requests_hook

logger = logging.getLogger("citewise.bot.teams")

MAX_RETRY_AFTER_S = 30  # a longer Retry-After is not waited for: the reply fails and is logged instead


class TeamsNotConfigured(RuntimeError):
    pass


class ServiceUrlNotAllowed(PermissionError):
    pass


class AuthenticationUnavailable(RuntimeError):
    """The OpenID metadata could not be fetched, so no token can be verified right now."""


# -- serviceUrl allowlist ----------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return False  # a name can resolve anywhere; only literal loopback addresses may use plain http
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def service_url_allowed(url: str | None) -> bool:
    """True if replies may be sent to `url`: https to an allow-listed host (plain http only on loopback)."""
    try:
        parts = urlsplit(url or "")
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return False
    if not host or parts.username or parts.password:
        return False
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        return False
    for pattern in settings.TEAMS_ALLOWED_SERVICE_HOSTS:
        pattern = pattern.lower().strip()
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
            return True
        if host == pattern:
            return True
    return False


class TenantMismatch(PermissionError):
    """The activity names two different tenants (conversation.tenantId vs channelData.tenant.id)."""


def tenant_id(activity: Activity) -> str:
    """The activity's tenant: the one the request path checks and the one identity uses, so they cannot differ.

    Teams sends it twice, in channelData.tenant.id and conversation.tenantId; if both are present they must agree
    (TenantMismatch otherwise). botbuilder maps only "tenantID" onto ConversationAccount.tenant_id, so Teams'
    "tenantId" arrives among the conversation's additional properties.
    """
    conversation = activity.conversation
    in_conversation = ""
    if conversation is not None:
        extra = getattr(conversation, "additional_properties", None) or {}
        in_conversation = str(conversation.tenant_id or extra.get("tenantId") or "")
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant")
    tenant = tenant if isinstance(tenant, dict) else {}
    in_channel_data = str(tenant.get("id") or "")
    if in_conversation and in_channel_data and in_conversation.lower() != in_channel_data.lower():
        raise TenantMismatch(f"conversation.tenantId {in_conversation!r} != channelData.tenant.id "
                             f"{in_channel_data!r}")
    return in_channel_data or in_conversation


def identity_tenants() -> frozenset[str]:
    """Tenants whose directory emails and UPNs may match a Citewise account (lower case); empty: none may.

    TEAMS_IDENTITY_TENANT_IDS, else the bot's own tenant, else the allowed tenants. A multi-tenant bot open to
    every tenant trusts no directory: any tenant's admin can give a user any address.
    """
    configured = settings.TEAMS_IDENTITY_TENANT_IDS or (
        [settings.TEAMS_APP_TENANT_ID] if settings.TEAMS_APP_TENANT_ID else settings.TEAMS_ALLOWED_TENANT_IDS)
    return frozenset(t.strip().lower() for t in configured if t and t.strip())


def tenant_allowed(tenant: str | None) -> bool:
    allowed = settings.TEAMS_ALLOWED_TENANT_IDS or ([settings.TEAMS_APP_TENANT_ID] if settings.TEAMS_APP_TENANT_ID
                                                     else [])
    return not allowed or (tenant or "").lower() in {t.lower() for t in allowed}


# -- outbound credentials ----------------------------------------------------------------------------

class ClientCredentials(AppCredentials):
    """Bearer tokens for the Bot Connector from an OAuth2 client-credentials grant at TEAMS_TOKEN_URL.

    botbuilder's MicrosoftAppCredentials goes through msal, which accepts only https authorities and asks
    login.microsoftonline.com for instance discovery: a sovereign or private cloud's token endpoint (or a local
    stand-in) could not be configured. The grant itself is the documented one, so this stays small.
    """

    _tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
    _lock = threading.Lock()

    def __init__(self, app_id: str, password: str, token_url: str, oauth_scope: str):
        super().__init__(app_id=app_id, oauth_scope=oauth_scope)
        self.microsoft_app_password = password
        self.token_url = token_url

    def get_access_token(self, force_refresh: bool = False) -> str:
        scope = self.oauth_scope if self.oauth_scope.endswith("/.default") else f"{self.oauth_scope}/.default"
        key = (self.token_url, self.microsoft_app_id, scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and not force_refresh and cached[1] > time.monotonic():
                return cached[0]
        try:
            response = requests.post(self.token_url, timeout=settings.TEAMS_HTTP_TIMEOUT_S, data={
                "grant_type": "client_credentials", "client_id": self.microsoft_app_id,
                "client_secret": self.microsoft_app_password, "scope": scope},
                hooks={"response": requests_hook("teams.token")})
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            if isinstance(exc, requests.RequestException) and exc.response is None:  # no response: no hook ran
                record("teams.token", outcome_of_error(exc), 0.0)
            raise PermissionError(f"could not get a Bot Framework token from {self.token_url}: {exc}") from exc
        if response.status_code != 200 or "access_token" not in body:
            raise PermissionError(f"the token endpoint refused the app's credentials: {response.status_code} "
                                  f"{body.get('error', '')} {body.get('error_description', '')[:200]}")
        # Renew five minutes early so a token never expires in flight.
        expires_at = time.monotonic() + max(int(body.get("expires_in", 3600)) - 300, 30)
        with self._lock:
            self._tokens[key] = (body["access_token"], expires_at)
        return body["access_token"]


class ClientCredentialsFactory(ServiceClientCredentialsFactory):
    def __init__(self, app_id: str, password: str, token_url: str):
        self.app_id, self.password, self.token_url = app_id, password, token_url

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self.app_id) and app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> AppCredentials:
        if not self.app_id:
            return MicrosoftAppCredentials.empty()  # local Emulator with DEBUG on: unsigned replies
        if app_id != self.app_id:
            raise PermissionError("credentials requested for another app id")
        return ClientCredentials(self.app_id, self.password, self.token_url, oauth_scope)


# -- connector clients: allowlist, timeout, 429 ------------------------------------------------------

class _CappedRetry(Retry):
    """urllib3's Retry, honouring Retry-After up to MAX_RETRY_AFTER_S, and waiting on the bots' clock."""

    BACKOFF_MAX = 10  # msrest still reads this urllib3 1.x attribute when it logs its retry settings

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, MAX_RETRY_AFTER_S)

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            clock().sleep(retry_after)
            return True
        return False

    def _sleep_backoff(self) -> None:
        backoff = self.get_backoff_time()
        if backoff > 0:
            clock().sleep(backoff)


def _tune_retries(policy: Retry) -> None:
    """Retry 429 (after Retry-After) and gateway errors, for every method.

    msrest retries only 5xx, and under urllib3 2 never a POST; Teams throttles bots with 429 + Retry-After, and a
    throttled request was not processed, so it is safe to send again. The client's HTTP session already holds
    this Retry object (msrest builds the session with the client), so it is changed in place.
    """
    policy.__class__ = _CappedRetry
    policy.total, policy.connect, policy.read, policy.status = 3, 2, 0, 3
    policy.backoff_factor = 0.5
    policy.allowed_methods = None
    policy.status_forcelist = frozenset({429, 502, 503, 504})
    policy.respect_retry_after_header = True
    policy.raise_on_status = False


_COUNT_CONNECTOR_CALLS = requests_hook("teams")


class _GuardedConnectorFactory(ConnectorFactory):
    def __init__(self, inner: ConnectorFactory):
        self._inner = inner

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        if not service_url_allowed(service_url):
            raise ServiceUrlNotAllowed(f"serviceUrl {service_url!r} is not in TEAMS_ALLOWED_SERVICE_HOSTS")
        client = await self._inner.create(service_url, audience)
        client.config.connection.timeout = settings.TEAMS_HTTP_TIMEOUT_S
        if _COUNT_CONNECTOR_CALLS not in client.config.hooks:  # once, should the factory hand out a client again
            client.config.hooks.append(_COUNT_CONNECTOR_CALLS)
        _tune_retries(client.config.retry_policy.policy)
        return client


def _refuse_emulator_tokens(auth_header: str | None) -> None:
    """The library accepts tokens from the Emulator's issuers (Entra ID's Bot Framework tenant, checked against
    TEAMS_EMULATOR_OPENID_METADATA_URL, with no serviceurl claim) for any bot with an app id: only a developer's
    own setup may, by turning TEAMS_ALLOW_EMULATOR on."""
    if auth_header and not settings.TEAMS_ALLOW_EMULATOR and EmulatorValidation.is_token_from_emulator(auth_header):
        raise PermissionError("Bot Framework Emulator tokens are not accepted (TEAMS_ALLOW_EMULATOR is off)")


class GuardedAuthentication(BotFrameworkAuthentication):
    """The library's authentication, with Emulator tokens refused unless allowed, and every connector it hands out
    guarded by the allowlist."""

    def __init__(self, inner: BotFrameworkAuthentication):
        self._inner = inner

    async def authenticate_header(self, auth_header: str) -> None:
        """Check the token alone, before the request's body is read: signature, issuer, audience (our app id) and
        expiry. Raises PermissionError (or the library's errors) when it fails.

        The two checks that need the activity, the signing key's endorsement for its channel and the serviceurl
        claim, are made by authenticate_request once the body is parsed; the library skips them here because the
        placeholder activity names no channel and no serviceUrl.
        """
        _refuse_emulator_tokens(auth_header)
        await self._inner.authenticate_request(Activity(), auth_header)

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        _refuse_emulator_tokens(auth_header)
        result = await self._inner.authenticate_request(activity, auth_header)
        result.connector_factory = _GuardedConnectorFactory(result.connector_factory)
        return result

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str):
        raise PermissionError("streaming (Direct Line ASE) is not supported")

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _GuardedConnectorFactory(self._inner.create_connector_factory(claims_identity))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        return await self._inner.create_user_token_client(claims_identity)

    def create_bot_framework_client(self):
        raise NotImplementedError("Citewise does not call skills")

    def get_originating_audience(self) -> str:
        return self._inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        _refuse_emulator_tokens(auth_header)
        return await self._inner.authenticate_channel_request(auth_header)


# -- OpenID metadata with a timeout ------------------------------------------------------------------

class _TimedOpenIdMetadata(_OpenIdMetadata):
    """The library's metadata cache (keys refreshed daily, or hourly on an unknown key id), with timeouts:
    its own fetch has none, so a hanging metadata endpoint would hold every request thread."""

    async def _refresh(self):
        timeout = settings.TEAMS_HTTP_TIMEOUT_S
        try:
            response = requests.get(self.url, timeout=timeout)
            response.raise_for_status()
            keys = requests.get(response.json()["jwks_uri"], timeout=timeout)
            keys.raise_for_status()
            self.keys = keys.json()["keys"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise AuthenticationUnavailable(f"OpenID metadata at {self.url} could not be read: {exc}") from exc
        self.last_updated = datetime.now()  # naive, as the library compares it


def _install_metadata(url: str) -> None:
    current = JwtTokenExtractor.metadataCache.get(url)
    if not isinstance(current, _TimedOpenIdMetadata):
        JwtTokenExtractor.metadataCache[url] = _TimedOpenIdMetadata(url)


def build_authentication() -> GuardedAuthentication:
    """Authentication for the current settings. Raises TeamsNotConfigured when it must not run."""
    if not settings.TEAMS_ENABLED:
        raise TeamsNotConfigured("the Teams bot is turned off (TEAMS_ENABLED=false)")
    if not settings.TEAMS_APP_ID and not settings.DEBUG:
        raise TeamsNotConfigured("set TEAMS_APP_ID and TEAMS_APP_PASSWORD (an empty app id is accepted only with "
                                 "DJANGO_DEBUG on, for the local Bot Framework Emulator)")
    for url in (settings.TEAMS_OPENID_METADATA_URL, settings.TEAMS_EMULATOR_OPENID_METADATA_URL):
        _install_metadata(url)
    tenant = settings.TEAMS_APP_TENANT_ID or "botframework.com"
    token_url = settings.TEAMS_TOKEN_URL.replace("{tenant}", tenant)
    inner = BotFrameworkAuthenticationFactory.create(
        channel_service="",
        validate_authority=True,
        to_channel_from_bot_login_url=token_url,
        to_channel_from_bot_oauth_scope=settings.TEAMS_OAUTH_SCOPE,
        to_bot_from_channel_token_issuer=settings.TEAMS_TOKEN_ISSUER,
        oauth_url="https://api.botframework.com",
        to_bot_from_channel_open_id_metadata_url=settings.TEAMS_OPENID_METADATA_URL,
        to_bot_from_emulator_open_id_metadata_url=settings.TEAMS_EMULATOR_OPENID_METADATA_URL,
        caller_id="",
        credential_factory=ClientCredentialsFactory(settings.TEAMS_APP_ID, settings.TEAMS_APP_PASSWORD, token_url),
        auth_configuration=AuthenticationConfiguration(),
    )
    return GuardedAuthentication(inner)
