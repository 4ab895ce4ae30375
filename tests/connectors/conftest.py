"""Folder sources on both search backends, a way to make a folder unreadable even when tests run as root, and a sync
process killed midway."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors import services
from connectors.models import Source, SyncRun
from retrieval import selectors
from retrieval.services import get_backend
from search.types import SearchMode

NOBODY = 65534


@pytest.fixture
def backend_kind(configured_backend: str) -> str:
    """Each backend in turn, configured with a fresh index (tests/conftest.py)."""
    return configured_backend


@pytest.fixture
def encryption_key(settings) -> None:
    """Connector credentials are stored encrypted (connectors/secrets.py): a key for this test."""
    from cryptography.fernet import Fernet

    settings.CITEWISE = settings.CITEWISE.replace(encryption_key=Fernet.generate_key().decode())


@pytest.fixture(params=["embedded", "elasticsearch"])
def make_folder_source(request, isolated_index) -> Iterator[Callable[..., Source]]:
    """Build a filesystem source for a folder on the parametrized backend, in an index of its own."""
    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    made: list[Source] = []

    def factory(folder: Path, **config: object) -> Source:
        source = services.ensure_source("filesystem", folder, index_name=f"test-src-{uuid.uuid4().hex[:8]}",
                                        search_backend=request.param, config=config or None)
        made.append(source)
        return source

    yield factory
    for source in made:
        get_backend(source.index_name, source.search_backend).drop()


def found(source: Source, query: str, principals: frozenset[str] = frozenset()) -> list[str]:
    """Document ids a BM25 search of the source's index returns for `principals` (public documents only by default)."""
    backend = get_backend(source.index_name, source.search_backend)
    hits = selectors.search(query, principals=principals, mode=SearchMode.BM25, backend=backend)
    return [hit.document_id for hit in hits]


def write_manifest(folder: Path, groups: dict[str, list[str]] | None = None) -> None:
    """Everything public, plus groups, so a permission sync has memberships to keep or lose."""
    (folder / ".citewise-acl.json").write_text(json.dumps({"groups": groups or {},
                                                           "rules": [{"paths": ["*"], "public": True}]}))


@pytest.fixture
def shared_tmp(tmp_path) -> Iterator[Path]:
    """A scratch folder an unprivileged user may write to (pytest's own tmp_path is private to root)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="citewise-test-"))
    os.chown(base, NOBODY, NOBODY)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run as an ordinary user: root reads any folder whatever its mode, so `chmod 000` only bites without it."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def kill_sync_midway(source: Source, env: dict[str, str], log: Path, ready: Callable[[], bool], *,
                     timeout_s: float = 300) -> SyncRun:
    """Run `manage.py sync <source> --kind full` in a process of its own (the database and index `env` names),
    SIGKILL it once `ready()` holds (a stand-in holding back a later page, a checkpoint committed), and return the
    run it leaves behind, still `running`, for a later run to resume."""
    root = Path(__file__).resolve().parents[2]
    with log.open("w") as output:
        child = subprocess.Popen([sys.executable, "manage.py", "sync", str(source.pk), "--kind", "full",
                                  "--no-progress"], cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert time.monotonic() < deadline and child.poll() is None, log.read_text()
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    run = SyncRun.objects.get(source=source)
    assert run.state == "running" and run.checkpoint.get("resume"), log.read_text()
    return run
