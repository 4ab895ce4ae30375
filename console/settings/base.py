"""Settings shared by every environment; each value comes from the environment with a safe local default."""

from __future__ import annotations

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("CITEWISE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    return default if raw in (None, "") else [item.strip() for item in raw.split(",") if item.strip()]


_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


def env_rate(name: str, default: str) -> str:
    """A rate such as "20/m" (per s, m, h or d; "5/10m" is per ten minutes); 0 or empty turns the limit off ("")."""
    raw = os.environ.get(name)
    value = default if raw is None else raw.strip()
    if value in ("", "0"):
        return ""
    match = _RATE.fullmatch(value)
    if match is None:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate: use e.g. 20/m (per s, m, h or d), or 0 for none")
    return "" if int(match.group(1)) == 0 else value


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
    "connectors",
    "search",
    "bot",
    "console",
]

MIDDLEWARE = [
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
        "DIRS": [],
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

# --- Celery: eager (in-process) unless a broker is configured -------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "") or None

# Scheduled syncs (`celery -A console beat`). Permission-only syncs are cheap and run often; a content sync
# re-reads every item. A revoked permission is visible at most one interval plus one sync's duration after
# the source changes (docs/acl.md: maximum staleness). 0 turns a schedule off.
PERMISSION_SYNC_INTERVAL_S = env_int("CITEWISE_PERMISSION_SYNC_INTERVAL_S", 300)
CONTENT_SYNC_INTERVAL_S = env_int("CITEWISE_CONTENT_SYNC_INTERVAL_S", 3600)
CELERY_BEAT_SCHEDULE = {
    name: {"task": task, "schedule": float(interval), "options": {"expires": float(interval)}}
    for name, task, interval in (
        ("sync-all-permissions", "connectors.sync_all_permissions", PERMISSION_SYNC_INTERVAL_S),
        ("sync-all-sources", "connectors.sync_all_sources", CONTENT_SYNC_INTERVAL_S),
    )
    if interval > 0
}

# --- Cache: answers (keyed by the asker's principals and the index version) --------------------
# Local memory by default (one process); set CITEWISE_CACHE_URL=redis://host:6379/1 to share it between
# web processes and workers, so a sync anywhere invalidates cached answers everywhere at once.
CITEWISE_CACHE_URL = os.environ.get("CITEWISE_CACHE_URL", "")
CACHES = {
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

# --- Rate limits (search/throttling.py) ------------------------------------------------------
# Counted in the default cache: shared by every web process and worker only when CITEWISE_CACHE_URL points at Redis.
# If the cache cannot be reached, requests are let through (a warning is logged) rather than all refused.
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True

# --- Citewise ------------------------------------------------------------------------------
CITEWISE = {
    # "embedded" (SQLite FTS5 + in-process vectors) or "elasticsearch".
    "SEARCH_BACKEND": os.environ.get("CITEWISE_SEARCH_BACKEND", "embedded"),
    "INDEX_NAME": os.environ.get("CITEWISE_INDEX_NAME", "citewise-chunks"),
    "EMBEDDED_INDEX_DIR": Path(os.environ.get("CITEWISE_EMBEDDED_INDEX_DIR", VAR_DIR / "index")),
    "ELASTICSEARCH_URL": os.environ.get("ELASTICSEARCH_URL", "http://127.0.0.1:9200"),
    "ELASTICSEARCH_API_KEY": os.environ.get("ELASTICSEARCH_API_KEY", ""),
    "ELASTICSEARCH_TIMEOUT_S": env_float("ELASTICSEARCH_TIMEOUT_S", 30.0),
    "ELASTICSEARCH_SHARDS": env_int("ELASTICSEARCH_SHARDS", 1),
    "ELASTICSEARCH_REPLICAS": env_int("ELASTICSEARCH_REPLICAS", 0),
    # Any sentence-transformers model name or path; the default ships inside a pip package.
    "EMBEDDING_MODEL": os.environ.get("CITEWISE_EMBEDDING_MODEL", "all-MiniLM-L6-v2"),
    "EMBEDDING_BATCH_SIZE": env_int("CITEWISE_EMBEDDING_BATCH_SIZE", 32),
    "EMBEDDING_DEVICE": os.environ.get("CITEWISE_EMBEDDING_DEVICE", "cpu"),
    "CHUNK_MAX_TOKENS": env_int("CITEWISE_CHUNK_MAX_TOKENS", 200),
    "CHUNK_OVERLAP_TOKENS": env_int("CITEWISE_CHUNK_OVERLAP_TOKENS", 40),
    "MAX_FILE_BYTES": env_int("CITEWISE_MAX_FILE_BYTES", 25 * 1024 * 1024),
    # What one file may turn into, whatever its size on disk (decompression bombs): text extracted, chunks made,
    # and for zip-based formats (DOCX) the parts' declared size and each large part's compression ratio.
    "MAX_EXTRACTED_CHARS": env_int("CITEWISE_MAX_EXTRACTED_CHARS", 2_000_000),
    "MAX_CHUNKS_PER_DOCUMENT": env_int("CITEWISE_MAX_CHUNKS_PER_DOCUMENT", 5_000),
    "MAX_UNCOMPRESSED_BYTES": env_int("CITEWISE_MAX_UNCOMPRESSED_BYTES", 64 * 1024 * 1024),
    "MAX_COMPRESSION_RATIO": env_float("CITEWISE_MAX_COMPRESSION_RATIO", 100.0),
    # Hybrid retrieval: weighted reciprocal rank fusion of the BM25 and kNN legs.
    "FUSION": os.environ.get("CITEWISE_FUSION", "rrf"),  # rrf | linear
    "RRF_K": env_int("CITEWISE_RRF_K", 60),
    "BM25_WEIGHT": env_float("CITEWISE_BM25_WEIGHT", 1.0),
    "DENSE_WEIGHT": env_float("CITEWISE_DENSE_WEIGHT", 1.0),
    "CANDIDATES_PER_LEG": env_int("CITEWISE_CANDIDATES_PER_LEG", 100),
    "KNN_NUM_CANDIDATES": env_int("CITEWISE_KNN_NUM_CANDIDATES", 200),
    "INGEST_BATCH_DOCUMENTS": env_int("CITEWISE_INGEST_BATCH_DOCUMENTS", 64),
    # One content sync per source at a time: its lease lasts this long unless renewed (it is, as the sync goes),
    # so a sync whose worker vanished on another machine blocks the source at most this long.
    "SYNC_LEASE_S": env_int("CITEWISE_SYNC_LEASE_S", 900),
    # Answering: rerank the fused candidates, give the best passages to a composer, check citations.
    "RERANKER": os.environ.get("CITEWISE_RERANKER", "none"),  # none | cross-encoder | cohere
    "RERANK_MODEL": os.environ.get("CITEWISE_RERANK_MODEL", "cross-encoder/ms-marco-MiniLM-L6-v2"),
    "RERANK_CANDIDATES": env_int("CITEWISE_RERANK_CANDIDATES", 50),
    "ANSWER_PASSAGES": env_int("CITEWISE_ANSWER_PASSAGES", 5),
    # Refuse unless the best passage sentence scores at least this (docs/answering.md: calibration).
    "ANSWER_THRESHOLD": env_float("CITEWISE_ANSWER_THRESHOLD", 0.65),
    "COMPOSER": os.environ.get("CITEWISE_COMPOSER", "extractive"),  # extractive | cohere | openai
    "LLM_TIMEOUT_S": env_float("CITEWISE_LLM_TIMEOUT_S", 20.0),
    "LLM_MAX_RETRIES": env_int("CITEWISE_LLM_MAX_RETRIES", 2),
    "LLM_MAX_INPUT_TOKENS": env_int("CITEWISE_LLM_MAX_INPUT_TOKENS", 6000),
    "LLM_MAX_OUTPUT_TOKENS": env_int("CITEWISE_LLM_MAX_OUTPUT_TOKENS", 600),
    "LLM_USD_PER_1K_INPUT_TOKENS": env_float("CITEWISE_LLM_USD_PER_1K_INPUT_TOKENS", 0.0),
    "LLM_USD_PER_1K_OUTPUT_TOKENS": env_float("CITEWISE_LLM_USD_PER_1K_OUTPUT_TOKENS", 0.0),
    "COHERE_API_KEY": os.environ.get("COHERE_API_KEY", ""),
    "COHERE_BASE_URL": os.environ.get("COHERE_BASE_URL", "https://api.cohere.com"),
    "COHERE_CHAT_MODEL": os.environ.get("COHERE_CHAT_MODEL", "command-a-03-2025"),
    "COHERE_RERANK_MODEL": os.environ.get("COHERE_RERANK_MODEL", "rerank-v3.5"),
    "OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
    "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", ""),
    "OPENAI_MODEL": os.environ.get("OPENAI_MODEL", "llama3.1:8b"),
    # Identical questions (same rewritten query, settings, principals and index version) within this many
    # seconds are answered from the cache, still recorded and audited; 0 turns the answer cache off.
    "ANSWER_CACHE_TTL_S": env_int("CITEWISE_ANSWER_CACHE_TTL_S", 300),
    # Questions per asker (a Citewise user, or an unlinked Slack/Teams user) across every surface, and per Slack or
    # Teams channel; searches per user (API and search page). "N/s|m|h|d"; 0 or empty turns a limit off.
    "ASK_RATE_PER_USER": env_rate("CITEWISE_ASK_RATE_PER_USER", "20/m"),
    "ASK_RATE_PER_CHANNEL": env_rate("CITEWISE_ASK_RATE_PER_CHANNEL", "60/m"),
    "SEARCH_RATE_PER_USER": env_rate("CITEWISE_SEARCH_RATE_PER_USER", "60/m"),
    "PERMISSION_SYNC_INTERVAL_S": PERMISSION_SYNC_INTERVAL_S,
    "CONTENT_SYNC_INTERVAL_S": CONTENT_SYNC_INTERVAL_S,
}

# Both bots: a worker's claim on a platform event lasts this long unless renewed; the worker renews it between
# steps, so it must outlast the longest step (an LLM answer with its retries, a Web API call with its capped
# Retry-After waits). A claim left to run out is taken to have died with its worker, and a platform retry (Slack's
# come about 1 and 5 minutes after a failed delivery) takes the event over.
BOT_EVENT_LEASE_S = env_int("BOT_EVENT_LEASE_S", 90)
# The bots' clock (bot/clock.py): the time leases and idle chats are measured by, and what Retry-After waits on.
# Tests put one of their own here to assert waits without sleeping.
BOT_CLOCK = "bot.clock.SYSTEM_CLOCK"

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
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "citewise": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "elastic_transport": {"level": "WARNING"},
    },
}
