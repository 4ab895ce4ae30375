"""Fresh clone → README command one (`make demo`) → `manage.py search` finds the right demo document."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_COMMAND_ONE = "make demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_readme_command_one_serves_the_demo_and_search_finds_the_right_document(tmp_path):
    assert f"\n{README_COMMAND_ONE}\n" in (ROOT / "README.md").read_text(), "README's first command changed"
    clone = tmp_path / "citewise"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CITEWISE_", "DATABASE_URL"))}
    # Reuse this interpreter's virtualenv: installing torch again would only test pip.
    env.update(VENV=sys.prefix, DEMO_ADDR=f"127.0.0.1:{port}", CITEWISE_VAR_DIR=str(tmp_path / "var"))
    server = subprocess.Popen(README_COMMAND_ONE.split(), cwd=clone, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, page = time.monotonic() + 600, ""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as response:
                    page = response.read().decode()
                    break
            except OSError:
                time.sleep(2)
        assert server.poll() is None, f"`{README_COMMAND_ONE}` exited:\n{server.stdout.read()}"
        assert "Sign in" in page
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as response:
            assert response.status == 200

        result = subprocess.run(
            [sys.executable, "manage.py", "search", "How many PTO days a year after four years of service?",
             "--as", "alice", "--json", "--limit", "3"],
            cwd=clone, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr
        hits = json.loads(result.stdout)["hits"]
        assert hits[0]["url"].endswith("/connectors/demo/corpus/policies/pto.md")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
