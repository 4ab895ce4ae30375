"""Production settings: refuse to start without real secrets and services."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *

_REQUIRED = ["DJANGO_SECRET_KEY", "DATABASE_URL", "CITEWISE_ENCRYPTION_KEY", "DJANGO_ALLOWED_HOSTS"]
_missing = [name for name in _REQUIRED if not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(f"Production settings need these environment variables: {', '.join(_missing)}")
if os.environ["DJANGO_SECRET_KEY"].startswith("insecure") or len(os.environ["DJANGO_SECRET_KEY"]) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random value of at least 32 characters")

# An empty app id switches Bot Framework authentication off: anyone could post activities as any user.
if TEAMS_ENABLED and not TEAMS_APP_ID:
    raise ImproperlyConfigured("TEAMS_APP_ID is empty: set the Azure Bot's app id (and TEAMS_APP_PASSWORD), or set"
                               " TEAMS_ENABLED=false to run without the Teams bot")
# Emulator tokens are issued to any developer's Emulator and name no serviceUrl: never accepted in production.
if TEAMS_ALLOW_EMULATOR:
    raise ImproperlyConfigured("TEAMS_ALLOW_EMULATOR is on: Bot Framework Emulator tokens are for local development "
                               "only; unset it in production")
if TEAMS_ENABLED and not TEAMS_APP_PASSWORD:
    raise ImproperlyConfigured("TEAMS_APP_PASSWORD is empty: the Teams bot cannot sign its replies without it")

DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# HTTPS only. Browsers remember it for a year, subdomains included (HSTS: DJANGO_HSTS_SECONDS=300 is a cautious first
# rollout; 0 turns it off); plain-HTTP requests are redirected, except the health, readiness and metrics endpoints,
# which load balancers, Kubernetes and Prometheus reach inside the network over plain HTTP. Behind a TLS-terminating
# proxy that sets X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER above), the redirect sees the original scheme.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
