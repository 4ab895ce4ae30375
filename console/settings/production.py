"""Production settings: refuse to start without real secrets and services."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403

_REQUIRED = ["DJANGO_SECRET_KEY", "DATABASE_URL", "CITEWISE_ENCRYPTION_KEY", "DJANGO_ALLOWED_HOSTS"]
_missing = [name for name in _REQUIRED if not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(f"Production settings need these environment variables: {', '.join(_missing)}")
if os.environ["DJANGO_SECRET_KEY"].startswith("insecure") or len(os.environ["DJANGO_SECRET_KEY"]) < 32:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random value of at least 32 characters")

# An empty app id switches Bot Framework authentication off: anyone could post activities as any user.
if TEAMS_ENABLED and not TEAMS_APP_ID:  # noqa: F405
    raise ImproperlyConfigured("TEAMS_APP_ID is empty: set the Azure Bot's app id (and TEAMS_APP_PASSWORD), or set"
                               " TEAMS_ENABLED=false to run without the Teams bot")
# Emulator tokens are issued to any developer's Emulator and name no serviceUrl: never accepted in production.
if TEAMS_ALLOW_EMULATOR:  # noqa: F405
    raise ImproperlyConfigured("TEAMS_ALLOW_EMULATOR is on: Bot Framework Emulator tokens are for local development "
                               "only; unset it in production")
if TEAMS_ENABLED and not TEAMS_APP_PASSWORD:  # noqa: F405
    raise ImproperlyConfigured("TEAMS_APP_PASSWORD is empty: the Teams bot cannot sign its replies without it")

DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
