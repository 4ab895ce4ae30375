"""A worker that dies on a file (killed, out of memory) leaves a mark: the next sync records the file and skips it."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors import services
from connectors.models import Document, Source
from retrieval import services as retrieval_services
from tests.connectors.conftest import found
from tests.workers import shared_database, worker_environment  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]


def slow_html() -> bytes:
    """A valid page our HTML parser takes a long while on (every block looks at all its ancestors), in little memory."""
    depth, blocks = 3000, 40000
    return ("<html><body>" + "<div>" * depth + "<p>x</p>" * blocks + "</div>" * depth + "</body></html>").encode()


def wait_for_mark(worker: subprocess.Popen, external_id: str, log: Path) -> Document:
    """The document once the worker has durably marked it as being parsed; fails if the worker ends first."""
    while worker.poll() is None:
        marked = Document.objects.filter(external_id=external_id).exclude(parsing_hash="").first()
        if marked is not None:
            return marked
        time.sleep(0.05)
    pytest.fail(f"the worker ended (exit {worker.returncode}) before it marked {external_id} as being parsed:\n"
                f"{log.read_text()}")


@dataclass
class SlowSync:
    """A folder source of two files, one of them slow to parse, and a real worker process syncing it."""

    source: Source
    folder: Path
    worker: subprocess.Popen
    log: Path


@pytest.fixture(params=["embedded", "elasticsearch"])
def slow_sync(request, tmp_path, settings, isolated_index, shared_database) -> Iterator[SlowSync]:
    """Starts `services.sync_source` in a `manage.py shell` process of its own, on the parametrized backend; the
    process is killed at teardown if the test left it running."""
    if request.param == "elasticsearch":
        request.getfixturevalue("elasticsearch_node")
    settings.CITEWISE = settings.CITEWISE.replace(search_backend=request.param)
    retrieval_services._backends.clear()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("The cafeteria serves ramen on Thursdays.\n")
    (folder / "slow.html").write_bytes(slow_html())
    source = services.ensure_source("filesystem", folder, config={"public": True})
    env = worker_environment(shared_database, tmp_path, index_dir=settings.CITEWISE.embedded_index_dir,
                             index_name=isolated_index)
    env["CITEWISE_SEARCH_BACKEND"] = request.param
    log = tmp_path / "worker.log"
    code = ("from connectors import services; from connectors.models import Source; "
            f"services.sync_source(Source.objects.get(pk={source.id}))")
    with log.open("w") as output:
        worker = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                                  stdout=output, stderr=subprocess.STDOUT)
    try:
        yield SlowSync(source, folder, worker, log)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=60)


@pytest.mark.slow
def test_a_file_the_worker_died_on_is_recorded_and_skipped_until_it_changes(slow_sync):
    """Reproduces issue 10 item 12: a worker killed while parsing a file left no trace, so every later sync would
    read the same file and die on it again."""
    source, folder, worker = slow_sync.source, slow_sync.folder, slow_sync.worker
    marked = wait_for_mark(worker, "slow.html", slow_sync.log)
    worker.send_signal(signal.SIGKILL)  # as the kernel's OOM killer would
    worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL
    assert marked.parsing_hash == hashlib.sha256(slow_html()).hexdigest()

    report = services.sync_source(source)
    slow = Document.objects.get(source=source, external_id="slow.html")
    assert slow.status == "error"
    assert slow.error.startswith("worker_stopped: the worker stopped while reading this file")
    assert ("slow.html", slow.error) in report.errors
    assert (report.indexed, report.failed) == (1, 1)  # the rest of the source is indexed
    assert found(source, "ramen") == [Document.objects.get(source=source, external_id="notes.txt").id]
    assert services.sync_source(source).errors == [("slow.html", slow.error)]  # still skipped, still said

    (folder / "slow.html").write_text("<h1>Zebras</h1><p>The zebra enclosure opens at nine.</p>")
    changed = services.sync_source(source)
    slow.refresh_from_db()
    assert (changed.indexed, changed.failed, slow.status, slow.parsing_hash) == (1, 0, "indexed", "")
    assert found(source, "zebra enclosure") == [slow.id]
