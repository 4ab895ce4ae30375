"""gunicorn settings for the web service: `gunicorn -c python:console.gunicorn console.wsgi:application`.

The bots' endpoints can hold a request for a while: without a Celery broker the answer is prepared inside the
request, and the Slack and Teams clients wait out a 429's Retry-After (up to 30 s each time). gunicorn's default sync
worker serves one request at a time and is killed after 30 s of silence, losing the event it was answering; threaded
workers keep answering while one thread waits, and their main loop keeps the arbiter's heartbeat going.
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
# Above the longest a request waits on a platform: capped Retry-After waits of 30 s (Slack twice, Teams three times).
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
# On restart or deploy, requests under way get this long to finish their answer.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or 90)
keepalive = 5
