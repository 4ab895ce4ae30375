"""Local, single-machine defaults: SQLite, embedded search, eager tasks.

DEBUG stays off unless DJANGO_DEBUG asks for it (`make demo` does): console.wsgi and console.asgi default to these
settings, and a server started with DEBUG on shows anyone every URL pattern on a 404 and tracebacks on a 500.
"""

from .base import *
from .base import VAR_DIR

VAR_DIR.mkdir(parents=True, exist_ok=True)
