"""ACL manifest rules that say a file's permissions are unknown or failed to sync: indexed, visible to nobody."""

from __future__ import annotations

import json

import pytest

from connectors import services
from connectors.base import Permissions
from connectors.models import Document
from connectors.sources.filesystem import FilesystemConnector
from tests.connectors.conftest import found

pytestmark = pytest.mark.django_db
EVERY_PRINCIPAL = frozenset({"group:ops", "email:ana@corp.example", "org:everyone-except-external"})


def write_source(folder, rules: list[dict]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "open.md").write_text("# Open\n\nThe kestrel roster is pinned by the lift.\n")
    (folder / "pending.md").write_text("# Pending\n\nThe kestrel budget is frozen until March.\n")
    (folder / "failed.md").write_text("# Failed\n\nThe kestrel payroll cutoff is the 20th.\n")
    (folder / ".citewise-acl.json").write_text(json.dumps({"groups": {"group:ops": ["email:ana@corp.example"]},
                                                           "rules": rules}))


STATUS_RULES = [
    {"paths": ["*"], "principals": ["group:ops"]},
    {"paths": ["pending.md"], "status": "unknown"},
    {"paths": ["failed.md"], "status": "error"},
]


def test_a_rule_with_status_unknown_or_error_indexes_the_file_for_nobody(tmp_path, make_folder_source):
    folder = tmp_path / "docs"
    write_source(folder, STATUS_RULES)
    source = make_folder_source(folder)
    report = services.sync_source(source)
    assert report.indexed == 3
    statuses = dict(Document.objects.filter(source=source).values_list("external_id", "acl_status"))
    assert statuses == {"open.md": "ok", "pending.md": "unknown", "failed.md": "error"}
    ids = dict(Document.objects.filter(source=source).values_list("external_id", "id"))
    assert found(source, "kestrel", EVERY_PRINCIPAL) == [ids["open.md"]]
    assert found(source, "kestrel") == []


@pytest.mark.parametrize("rule", [
    {"paths": ["pending.md"], "status": "maybe"},
    {"paths": ["pending.md"], "status": ["unknown"]},
    {"paths": ["pending.md"], "status": "unknown", "principals": ["group:ops"]},
    {"paths": ["pending.md"], "status": "error", "public": True},
])
def test_a_malformed_or_contradictory_status_hides_the_files_it_decides(tmp_path, rule):
    folder = tmp_path / "docs"
    write_source(folder, [{"paths": ["*"], "public": True}, rule])
    connector = FilesystemConnector(folder)
    assert connector.fetch_permissions("pending.md") == Permissions(status="error")
    assert connector.fetch_permissions("open.md") == Permissions(public=True, status="ok")


def test_status_ok_grants_as_the_rule_says(tmp_path):
    folder = tmp_path / "docs"
    write_source(folder, [{"paths": ["*"], "principals": ["group:ops"], "status": "ok"}])
    assert FilesystemConnector(folder).fetch_permissions("open.md") == Permissions(
        principals=frozenset({"group:ops"}), status="ok")


def test_a_later_rule_can_still_open_a_file_an_earlier_status_rule_hid(tmp_path):
    folder = tmp_path / "docs"
    write_source(folder, [{"paths": ["*"], "status": "unknown"}, {"paths": ["open.md"], "public": True}])
    connector = FilesystemConnector(folder)
    assert connector.fetch_permissions("open.md") == Permissions(public=True, status="ok")
    assert connector.fetch_permissions("failed.md") == Permissions(status="unknown")
