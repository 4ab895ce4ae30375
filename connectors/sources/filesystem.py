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
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from connectors.base import (
    PUBLIC,
    UNKNOWN,
    IncompleteListing,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
    normalize_principal,
)

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
        """Every file under the root, in path order.

        Raises SourceUnavailable when the root itself is missing or unreadable (an unmounted share looks like
        that), and IncompleteListing after yielding the rest when a folder inside it cannot be listed: either
        way a caller must not take the files it did not see as deleted.
        """
        if self.root.is_file():
            yield self.root
            return
        try:
            listed, problems = self._walk()
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.root}: the folder does not exist or is not mounted ({exc.strerror or exc}); "
                f"nothing was indexed and nothing was pruned"
            ) from exc
        yield from sorted(listed)
        if problems:
            raise IncompleteListing(problems)

    def _walk(self) -> tuple[list[Path], list[tuple[str, str]]]:
        files: list[Path] = []
        problems: list[tuple[str, str]] = []
        folders = [self.root]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    listed = list(entries)
            except OSError as exc:
                if folder == self.root:
                    raise
                problems.append((self._external_id(folder), f"unreadable_folder: {exc.strerror or exc}"))
                continue
            for entry in listed:
                path = Path(entry.path)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(path)
                    elif entry.is_file() and not entry.name.startswith(".") and entry.name not in _SKIPPED_NAMES:
                        files.append(path)
                except OSError as exc:
                    problems.append((self._external_id(path), f"unreadable: {exc.strerror or exc}"))
        return files, sorted(problems)

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
        problem = _manifest_problem(manifest)
        if problem:
            raise ManifestError(f"{path}: {problem}")
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
            if any(fnmatch.fnmatchcase(external_id, pattern) for pattern in rule["paths"]):
                decisive = rule
        if not decisive:
            return UNKNOWN
        if _grant_problem(decisive, "rule"):
            return Permissions(status="error")  # a malformed grant decides nothing but "hidden"
        return Permissions(principals=frozenset(normalize_principal(p) for p in decisive.get("principals", [])),
                           public=decisive.get("public") is True, status="ok")

    def list_groups(self) -> Iterator[SourceGroup]:
        """Raises ManifestError for an unreadable manifest, so the last good memberships are kept."""
        manifest = self._manifest or {}
        for principal, members in (manifest.get("groups") or {}).items():
            yield SourceGroup(principal=normalize_principal(principal), name=principal.rsplit(":", 1)[-1],
                              members=tuple(normalize_principal(m) for m in members))


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _grant_problem(grant: dict[str, Any], where: str) -> str:
    if "principals" in grant and not _is_strings(grant["principals"]):
        return f"{where}: principals must be a list of strings"
    if "public" in grant and not isinstance(grant["public"], bool):
        return f"{where}: public must be true or false"
    return ""


def _manifest_problem(manifest: Any) -> str:
    """Why a manifest cannot be trusted as a whole, or "" if it can; then every file's status is error."""
    if not isinstance(manifest, dict):
        return "expected a JSON object"
    groups = manifest.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(k, str) and _is_strings(v) for k, v in groups.items()):
        return "groups must map each group principal to a list of member principals"
    rules = manifest.get("rules", [])
    if not isinstance(rules, list):
        return "rules must be a list"
    # Which files a rule covers must be certain; a bad grant only hides the files it decides.
    for number, rule in enumerate(rules, start=1):
        if not isinstance(rule, dict) or not _is_strings(rule.get("paths")) or not rule["paths"]:
            return f"rule {number}: expected an object with a non-empty list of path patterns"
    if manifest.get("default") is not None and not isinstance(manifest["default"], dict):
        return "default must be an object"
    return ""
