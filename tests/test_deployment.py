"""docker-compose.yml is valid, and compose, CI and the Python client agree on Elasticsearch's version."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import elasticsearch

ROOT = Path(__file__).resolve().parent.parent


def test_docker_compose_config_accepts_the_production_stack():
    result = subprocess.run(["bash", "scripts/check-compose.sh"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "docker compose config" in result.stdout or "compose" in result.stdout


def test_compose_ci_and_client_use_the_same_elasticsearch(elasticsearch_node):
    compose = (ROOT / "docker-compose.yml").read_text()
    compose_version = re.search(r"elasticsearch/elasticsearch:(\d+\.\d+\.\d+)", compose).group(1)
    ci_version = re.search(r'ES_VERSION="\$\{ES_VERSION:-(\d+\.\d+\.\d+)\}"',
                           (ROOT / "scripts/common.sh").read_text()).group(1)
    client = elasticsearch.Elasticsearch(elasticsearch_node)
    node_versions = {node["version"] for node in client.nodes.info()["nodes"].values()}
    assert compose_version == ci_version
    assert node_versions == {ci_version}
    assert elasticsearch.__versionstr__.split(".")[0] == ci_version.split(".")[0]
    for service in ("web", "worker", "beat", "postgres", "redis", "elasticsearch"):
        assert re.search(rf"^  {service}:", compose, re.M), f"{service} missing from docker-compose.yml"


def test_the_compose_environment_satisfies_the_production_settings():
    # The app containers get exactly x-app-environment (defaults applied, required values from .env).
    import os
    import sys

    import yaml

    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app-environment"]
    required = {"DJANGO_SECRET_KEY": "s" * 50, "CITEWISE_ENCRYPTION_KEY": "k" * 44, "POSTGRES_PASSWORD": "pw"}

    def resolve(value: str) -> str:
        value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), str(value))
        return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: required[m.group(1)], value)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CITEWISE_",
                                                                     "TEAMS_"))}
    env.update({name: resolve(value) for name, value in environment.items()})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


# -- container health checks (console/healthcheck.py), as docker-compose.yml runs them --------------------------


def test_the_web_health_check_follows_readiness(live_server, settings, db):
    from console import healthcheck

    settings.CELERY_BROKER_URL = ""
    assert healthcheck.main(["web", "--url", f"{live_server.url}/readyz"]) == 0
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there: not ready
    assert healthcheck.main(["web", "--url", f"{live_server.url}/readyz", "--timeout", "10"]) == 1


def test_the_beat_health_check_needs_a_live_process_and_a_reachable_broker(tmp_path, settings):
    import os

    from console import healthcheck

    pidfile = tmp_path / "celerybeat.pid"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    assert healthcheck.main(["beat", "--pidfile", str(pidfile)]) == 1  # no pid file
    pidfile.write_text(f"{os.getpid()}\n")
    assert healthcheck.main(["beat", "--pidfile", str(pidfile)]) == 0
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    assert healthcheck.main(["beat", "--pidfile", str(pidfile), "--timeout", "1"]) == 1
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"
    exited = subprocess.Popen(["true"])
    exited.wait()  # reaped: its pid names no process
    pidfile.write_text(f"{exited.pid}\n")
    assert healthcheck.main(["beat", "--pidfile", str(pidfile)]) == 1


def test_the_socket_mode_health_check_reads_the_heartbeat(tmp_path):
    import os
    import time

    from console import healthcheck

    heartbeat = tmp_path / "heartbeat"
    assert healthcheck.main(["slack-socket-mode", "--heartbeat-file", str(heartbeat)]) == 1
    heartbeat.touch()
    assert healthcheck.main(["slack-socket-mode", "--heartbeat-file", str(heartbeat)]) == 0
    stale = time.time() - healthcheck.HEARTBEAT_STALE_S - 5
    os.utime(heartbeat, (stale, stale))
    assert healthcheck.main(["slack-socket-mode", "--heartbeat-file", str(heartbeat)]) == 1


def test_every_long_running_compose_service_has_a_health_check():
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        if name != "migrate":  # a one-shot job: compose waits for it to complete instead
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "slack_socket_mode" in services["slack-socket-mode"]["command"]
