"""Settings for the test suite: everything under a throwaway directory, tasks eager."""

import os
import tempfile
from pathlib import Path

from .base import *
from .base import CITEWISE

_TEST_VAR = Path(os.environ.get("CITEWISE_TEST_VAR_DIR") or tempfile.mkdtemp(prefix="citewise-test-"))
# Rate limits off: the cache outlives a test and user ids repeat between tests. Tests of the limits turn them on.
CITEWISE = CITEWISE.replace(embedded_index_dir=_TEST_VAR / "index", ask_rate_per_user="", ask_rate_per_channel="",
                            search_rate_per_user="")
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The PostgreSQL cluster scripts/services.sh starts, for the tests that need PostgreSQL's own semantics (row locks
# under READ COMMITTED); each creates and drops a database of its own there. Down means those tests fail.
TEST_POSTGRES_URL = os.environ.get(
    "CITEWISE_TEST_POSTGRES_URL", f"postgres://citewise@127.0.0.1:{os.environ.get('POSTGRES_PORT') or 5433}/citewise")
