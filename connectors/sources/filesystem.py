"""Files under a directory (or single files): the connector behind `manage.py ingest PATH`.

Permissions come from an ACL manifest, `.citewise-acl.json`, at the top of the directory:

    {
      "groups": {"group:engineering": ["email:alice@corp.com", "group:platform"]},
      "rules": [
        {"paths": ["handbook/*"], "public": true},
        {"paths": ["runbooks/*", "specs/*"], "principals": ["group:engineering"]}
      ],
      "default": {"principals": ["org:everyone-except-external"]}
    }

Patterns are fnmatch-style on the path relative to the directory (`*` also crosses folders). The
last rule that matches a file decides its permissions, so a later, narrower rule can restrict part
of a folder an earlier rule opened. A file no rule matches, with no default, has unknown
permissions and is visible to nobody. A source configured `{"public": true}` makes every file
public instead.
"""

from __future__ import annotations

import fnmatch
import json
import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from connectors.base import PUBLIC, UNKNOWN, Permissions, SourceGroup, SourceItem

mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/markdown", ".markdown")
mimetypes.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")

ACL_MANIFEST = ".citewise-acl.json"
_SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}


class ManifestError(ValueError):
    """The ACL manifest cannot be read; every file's permissions are then in error (visible to nobody)."""


class FilesystemConnector:
    def __init__(self, location: str | Path, *, public: bool = False) -> None:
        self.root = Path(location).resolve()
        self.public = public

    def _files(self) -> Iterator[Path]:
        if self.root.is_file():
            yield self.root
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".") and path.name not in _SKIPPED_NAMES:
                yield path

    def _external_id(self, path: Path) -> str:
        return path.name if self.root.is_file() else path.relative_to(self.root).as_posix()

    def _item(self, path: Path) -> SourceItem:
        stat = path.stat()
        mime_type, _ = mimetypes.guess_type(path.name)
        return SourceItem(
            external_id=self._external_id(path),
            title=path.stem.replace("-", " ").replace("_", " "),
            mime_type=mime_type or "application/octet-stream",
            size_bytes=stat.st_size,
            read=path.read_bytes,
            url=path.as_uri(),
            modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def load(self) -> Iterator[SourceItem]:
        for path in self._files():
            yield self._item(path)

    def poll(self, cursor: str | None) -> tuple[Iterator[SourceItem], str]:
        since = float(cursor) if cursor else 0.0
        started = datetime.now(tz=UTC).timestamp()
        changed = (self._item(p) for p in self._files() if p.stat().st_mtime > since)
        return changed, str(started)

    def list_ids(self) -> Iterator[str]:
        for path in self._files():
            yield self._external_id(path)

    # -- permissions ---------------------------------------------------------------------------
    @cached_property
    def _manifest(self) -> dict[str, Any] | None:
        path = (self.root if self.root.is_dir() else self.root.parent) / ACL_MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: {exc}") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("rules", []), list):
            raise ManifestError(f"{path}: expected an object with a list of rules")
        return manifest

    def fetch_permissions(self, external_id: str) -> Permissions:
        if self.public:
            return PUBLIC
        try:
            manifest = self._manifest
        except ManifestError:
            return Permissions(status="error")
        if manifest is None:
            return UNKNOWN
        decisive = manifest.get("default")
        for rule in manifest.get("rules", []):
            if any(fnmatch.fnmatchcase(external_id, pattern) for pattern in rule.get("paths", [])):
                decisive = rule
        if not decisive:
            return UNKNOWN
        if not isinstance(decisive.get("principals", []), list):
            return Permissions(status="error")
        return Permissions(principals=frozenset(map(str, decisive.get("principals", []))),
                           public=bool(decisive.get("public")), status="ok")

    def list_groups(self) -> Iterator[SourceGroup]:
        try:
            manifest = self._manifest or {}
        except ManifestError:
            return
        for principal, members in (manifest.get("groups") or {}).items():
            yield SourceGroup(principal=principal, name=principal.rsplit(":", 1)[-1], members=tuple(members))
