import logging
import os

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("citewise.startup")

DEBUG_WARNING = (
    "DEBUG is on (DJANGO_DEBUG=1): every 404 lists the site's URL patterns and every error shows a traceback with "
    "settings and local variables. Fine for `make demo` on your own machine; never on a server anyone else can "
    "reach. Unset DJANGO_DEBUG (or set DJANGO_DEBUG=0) to turn it off."
)


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Citewise console"

    def ready(self) -> None:
        # Logged from every process that loads the app (runserver, gunicorn workers, Celery, manage.py), since
        # runserver is not the only way people start it. runserver's autoreloader child (RUN_MAIN) would repeat
        # what its parent already said.
        if settings.DEBUG and os.environ.get("RUN_MAIN") != "true":
            logger.warning(DEBUG_WARNING)
        if settings.CITEWISE_OTEL_ENABLED:
            from core import tracing

            tracing.configure()
