"""Settings shared by every environment; each value comes from the environment with a safe local default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import structlog
from django.core.exceptions import ImproperlyConfigured

from core import config as citewise_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("CITEWISE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else default


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-local-development-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular_sidecar",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Ours, from the bottom layer up (pyproject.toml's import contract): each imports only those above it here.
    "audit",
    "identity",
    "search",
    "retrieval",
    "connectors",
    "answers",
    "bot",
    "api",
    "console",
]

MIDDLEWARE = [
    "console.middleware.RequestIds",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "console.middleware.AdminConsoleForStaffOnly",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The console's versions of Django's own templates (the admin's base_site): searched before the apps', where
        # django.contrib.admin, listed first, would win.
        "DIRS": [BASE_DIR / "console" / "overrides"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'citewise.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # One place turns every exception into the API's JSON error shape (api/errors.py).
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Citewise API",
    "DESCRIPTION": "Ask questions and get answers with verified citations; search the index; give feedback.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs UI's assets are served from the package, not a CDN: works offline and behind firewalls.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

# --- Citewise ------------------------------------------------------------------------------
# Search, ingestion, answering and rate-limit settings: one typed, frozen object parsed once from the environment
# (core/config.py lists every variable, its default and what it does). A bad value stops start-up, naming it.
try:
    CITEWISE = citewise_config.load(VAR_DIR)
except citewise_config.SettingsError as error:
    raise ImproperlyConfigured(str(error)) from None

# The LLM providers' retry clock (answers/llm/retries.py): what Retry-After and backoff wait on. Tests put one of
# their own here to assert waits without sleeping.
LLM_CLOCK = "core.clock.SYSTEM_CLOCK"

# --- Celery: eager (in-process) unless a broker is configured -------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or None
# The queue tasks go to (and, with `-Q`, the one a worker reads): separate deployments can share one Redis.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")

# Scheduled syncs (`celery -A console beat`): the dispatcher queues each source's syncs when their intervals
# (the source's own, else CITEWISE_*_INTERVAL_S) have passed, and resumes runs dead workers left. A revoked permission
# is visible at most one permission interval plus one dispatch and one sync's duration after the source changes
# (docs/acl.md: maximum staleness).
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": float(interval), "options": {"expires": float(interval)}}
    for name, task, interval in (
        ("dispatch-due-syncs", "connectors.dispatch_due_syncs", CITEWISE.sync_dispatch_interval_s),
        ("remove-orphaned-documents", "connectors.remove_orphaned_documents", CITEWISE.content_sync_interval_s),
        ("check-freshness", "connectors.check_freshness", CITEWISE.freshness_check_interval_s),
    )
    if interval > 0
}

# Mail, for freshness alerts (CITEWISE_ALERT_EMAILS): an SMTP relay; nothing is sent while no address is set.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "citewise@localhost")

# --- Cache: answers (keyed by the asker's principals and the index version) --------------------
# Local memory by default (one process); set CITEWISE_CACHE_URL=redis://host:6379/1 to share it between
# web processes and workers, so a sync anywhere invalidates cached answers everywhere at once.
CITEWISE_CACHE_URL = os.environ.get("CITEWISE_CACHE_URL", "")
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CITEWISE_CACHE_URL,
         "KEY_PREFIX": "citewise"}
        if CITEWISE_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "citewise",
              "OPTIONS": {"MAX_ENTRIES": 5000}}
    )
}

# --- /metrics ------------------------------------------------------------------------------
# Prometheus scrapers send `Authorization: Bearer <token>`; signed-in staff may read the metrics too. Empty: staff
# only. The client's address is never trusted: behind a reverse proxy on the same host everyone is 127.0.0.1.
CITEWISE_METRICS_TOKEN = os.environ.get("CITEWISE_METRICS_TOKEN", "")

# OpenTelemetry traces (core/tracing.py), off by default; the OTLP exporter reads the standard OTEL_* variables.
CITEWISE_OTEL_ENABLED = env_bool("CITEWISE_OTEL_ENABLED", False)

# --- Rate limits (answers/throttling.py) ------------------------------------------------------
# Counted in the default cache: shared by every web process and worker only when CITEWISE_CACHE_URL points at Redis.
# If the cache cannot be reached, requests are let through (a warning is logged) rather than all refused.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True

# Both bots: a worker's claim on a platform event lasts this long unless renewed; the worker renews it between
# steps, so it must outlast the longest step (an LLM answer with its retries, a Web API call with its capped
# Retry-After waits). A claim left to run out is taken to have died with its worker, and a platform retry (Slack's
# come about 1 and 5 minutes after a failed delivery) takes the event over.
BOT_EVENT_LEASE_S = env_int("BOT_EVENT_LEASE_S", 90)
# The bots' clock (bot/clock.py): the time leases and idle chats are measured by, and what Retry-After waits on.
# Tests put one of their own here to assert waits without sleeping.
BOT_CLOCK = "core.clock.SYSTEM_CLOCK"

# Slack bot (bot/slack, README "Slack"): the app's credentials, and where its Web API lives (tests point it at a
# local stand-in).
SLACK_SIGNING_SECRET = os.environ.get("SLACK_SIGNING_SECRET", "")
SLACK_BOT_TOKEN = os.environ.get("SLACK_BOT_TOKEN", "")
SLACK_APP_TOKEN = os.environ.get("SLACK_APP_TOKEN", "")  # xapp-…, Socket Mode only
SLACK_API_BASE_URL = os.environ.get("SLACK_API_BASE_URL", "https://slack.com/api/")
SLACK_API_TIMEOUT_S = env_int("SLACK_API_TIMEOUT_S", 30)
SLACK_USER_CACHE_TTL_S = env_int("SLACK_USER_CACHE_TTL_S", 3600)
# The console's public URL: when set, the bots' source links open documents through it (/documents/<id>/open),
# which checks the reader's permissions. SLACK_CONSOLE_URL is its earlier, Slack-only name.
CONSOLE_URL = os.environ.get("CITEWISE_CONSOLE_URL") or os.environ.get("SLACK_CONSOLE_URL", "")

# Microsoft Teams bot (bot/teams, README "Microsoft Teams"). An empty TEAMS_APP_ID turns Bot Framework
# authentication off, so it is accepted only with DEBUG on (local Bot Framework Emulator); production settings
# refuse to start without one unless TEAMS_ENABLED=false. The OpenID, token and issuer settings exist for
# sovereign clouds and for tests, which point them at local stand-ins.
TEAMS_ENABLED = env_bool("TEAMS_ENABLED", True)
TEAMS_APP_ID = os.environ.get("TEAMS_APP_ID", "")
TEAMS_APP_PASSWORD = os.environ.get("TEAMS_APP_PASSWORD", "")
TEAMS_APP_TENANT_ID = os.environ.get("TEAMS_APP_TENANT_ID", "")  # single-tenant bots only
TEAMS_OPENID_METADATA_URL = os.environ.get(
    "TEAMS_OPENID_METADATA_URL", "https://login.botframework.com/v1/.well-known/openidconfiguration")
TEAMS_EMULATOR_OPENID_METADATA_URL = os.environ.get(
    "TEAMS_EMULATOR_OPENID_METADATA_URL",
    "https://login.microsoftonline.com/botframework.com/v2.0/.well-known/openid-configuration")
TEAMS_TOKEN_ISSUER = os.environ.get("TEAMS_TOKEN_ISSUER", "https://api.botframework.com")
# {tenant} becomes TEAMS_APP_TENANT_ID, or "botframework.com" for multi-tenant bots.
TEAMS_TOKEN_URL = os.environ.get("TEAMS_TOKEN_URL", "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
TEAMS_OAUTH_SCOPE = os.environ.get("TEAMS_OAUTH_SCOPE", "https://api.botframework.com")
# Accept tokens from the Bot Framework Emulator's issuers (checked against TEAMS_EMULATOR_OPENID_METADATA_URL): for a
# developer testing their own bot with the Emulator only, since such tokens carry no serviceurl claim. Production
# settings refuse to start with it on.
TEAMS_ALLOW_EMULATOR = env_bool("TEAMS_ALLOW_EMULATOR", False)
# Replies go only to these serviceUrl hosts ("*.example.com" matches subdomains); https is required except on
# loopback addresses.
TEAMS_ALLOWED_SERVICE_HOSTS = env_list("TEAMS_ALLOWED_SERVICE_HOSTS", [
    "smba.trafficmanager.net", "smba.infra.gcc.teams.microsoft.com", "smba.infra.gov.teams.microsoft.us",
    "smba.infra.dod.teams.microsoft.us"])
# Tenants whose users may ask; empty means the bot's own tenant for a single-tenant bot, any tenant otherwise.
# Another tenant's admin controls its users' directory attributes (an email address is not proof there).
TEAMS_ALLOWED_TENANT_IDS = env_list("TEAMS_ALLOWED_TENANT_IDS", [])
# Tenants whose directory emails/UPNs may match a Citewise account (bot/teams/auth.py: identity_tenants). Empty
# means TEAMS_APP_TENANT_ID when set, else TEAMS_ALLOWED_TENANT_IDS, else none: a multi-tenant bot open to any
# tenant matches linked identities only. Guests and members of other tenants are never matched by email.
TEAMS_IDENTITY_TENANT_IDS = env_list("TEAMS_IDENTITY_TENANT_IDS", [])
TEAMS_HTTP_TIMEOUT_S = env_int("TEAMS_HTTP_TIMEOUT_S", 20)
TEAMS_USER_CACHE_TTL_S = env_int("TEAMS_USER_CACHE_TTL_S", 3600)
# A personal or group chat has no threads: a question after this many quiet minutes starts a new conversation.
TEAMS_CHAT_IDLE_MINUTES = env_int("TEAMS_CHAT_IDLE_MINUTES", 30)

LOG_LEVEL = os.environ.get("CITEWISE_LOG_LEVEL", "INFO")
# "plain" lines for a terminal, or "json": one JSON object per line (timestamp, level, logger, event, exception), for
# a log pipeline (Loki, Elasticsearch, CloudWatch) to index without parsing.
LOG_FORMAT = os.environ.get("CITEWISE_LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"CITEWISE_LOG_FORMAT={LOG_FORMAT!r}: use plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [
                structlog.contextvars.merge_contextvars,  # request, answer, event and task ids (core.logcontext)
                structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "citewise": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "elastic_transport": {"level": "WARNING"},
    },
}
