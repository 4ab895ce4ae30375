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
