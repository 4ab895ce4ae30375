"""Container health checks: `python -m console.healthcheck web|worker|beat|slack-socket-mode`.

Exit 0 when the service is healthy, 1 (with the reason on stderr) when it is not. docker-compose.yml runs one per
service; the same command works under any orchestrator that runs a probe inside the container.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# A Socket Mode client refreshes its heartbeat every HEARTBEAT_INTERVAL_S while connected; three missed beats
# mean the connection is gone (Slack's own reconnects take a few seconds).
HEARTBEAT_INTERVAL_S = 20
HEARTBEAT_STALE_S = 3 * HEARTBEAT_INTERVAL_S


class Unhealthy(Exception):
    pass


def _served_host() -> str:
    """A host name the site accepts (DJANGO_ALLOWED_HOSTS), so the probe is not refused as a bad Host."""
    for name in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(","):
        name = name.strip().lstrip(".")
        if name and name != "*":
            return name
    return "localhost"


def check_web(url: str, timeout: float) -> str:
    """The web service's own readiness endpoint answers 200 (database migrated, index searchable, broker up)."""
    request = urllib.request.Request(url, headers={"Host": _served_host(), "X-Forwarded-Proto": "https"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a local URL
            return f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"{url}: {exc.code} {exc.read(2000).decode(errors='replace')}") from exc
    except OSError as exc:
        raise Unhealthy(f"{url}: {exc}") from exc


def _django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.production")
    django.setup()


def check_worker(node: str, timeout: float) -> str:
    """This container's worker answers a ping over the broker: connected, and its pool is not wedged."""
    _django()
    from console.celery import app

    replies = app.control.ping(destination=[node], timeout=timeout)
    if not any(node in reply for reply in replies):
        raise Unhealthy(f"worker {node} did not answer a ping within {timeout:g} s")
    return f"worker {node}: pong"


def check_beat(pidfile: Path, timeout: float) -> str:
    """beat is running (its pid file names a live process) and its broker accepts connections."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError) as exc:
        raise Unhealthy(f"beat is not running ({pidfile}: {exc})") from exc
    _django()
    from django.conf import settings

    from console.selectors import broker_status

    try:
        broker_status(settings.CELERY_BROKER_URL, timeout)
    except Exception as exc:  # kombu raises the transport's own errors
        raise Unhealthy(f"beat (pid {pid}) cannot reach its broker: {exc}") from exc
    return f"beat pid {pid}: broker ok"


def check_heartbeat(path: Path, stale_after: float = HEARTBEAT_STALE_S) -> str:
    """The Socket Mode client touched its heartbeat file recently (it does so only while connected)."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError as exc:
        raise Unhealthy(f"no heartbeat ({path}: {exc})") from exc
    if age > stale_after:
        raise Unhealthy(f"last heartbeat {age:.0f} s ago (stale after {stale_after:g} s): not connected to Slack")
    return f"heartbeat {age:.0f} s ago"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.healthcheck", description=__doc__)
    parser.add_argument("service", choices=["web", "worker", "beat", "slack-socket-mode"])
    parser.add_argument("--url", default="", help="web: the readiness URL (default http://127.0.0.1:<port>/readyz)")
    parser.add_argument("--node", default="", help="worker: its node name (default celery@<hostname>)")
    parser.add_argument("--pidfile", type=Path, default=Path("celerybeat.pid"))
    parser.add_argument("--heartbeat-file", type=Path, default=Path("slack-socket-mode.heartbeat"))
    parser.add_argument("--timeout", type=float, default=5.0)
    options = parser.parse_args(argv)
    try:
        if options.service == "web":
            port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rpartition(":")[2]
            message = check_web(options.url or f"http://127.0.0.1:{port}/readyz", options.timeout)
        elif options.service == "worker":
            message = check_worker(options.node or f"celery@{socket.gethostname()}", options.timeout)
        elif options.service == "beat":
            message = check_beat(options.pidfile, options.timeout)
        else:
            message = check_heartbeat(options.heartbeat_file)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(f"healthy: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
