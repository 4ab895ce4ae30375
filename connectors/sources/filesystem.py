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
permissions and is visible to nobody. A rule may instead say `"status": "unknown"` or `"status": "error"`
(the permissions are not known, or failed to sync, as a real source may report): its files are indexed
but visible to nobody, and it may grant nothing besides. A source configured `{"public": true}` makes every file
public instead.

Links are followed only while they stay inside the directory (FilesystemConnector says how); a link
out of it is recorded as a `symlink_outside_root` error for that file and never read.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import json
import mimetypes
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from connectors.base import (
    PUBLIC,
    Capability,
    Checkpoint,
    IncompleteListing,
    ItemError,
    Permissions,
    SourceGroup,
    SourceItem,
    SourceUnavailable,
)
from identity.principals import normalize_principal

if TYPE_CHECKING:
    from connectors.models import Source

mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/markdown", ".markdown")
mimetypes.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")

ACL_MANIFEST = ".citewise-acl.json"
# Files between checkpoints: what a sync killed midway reads again at most.
CHECKPOINT_EVERY = 50
_SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}
# What a rule may say of its files' permissions: "ok" (the default) grants as the rule says; the others hide them.
_RULE_STATUSES = frozenset({"ok", "unknown", "error"})


class Config(BaseModel):
    """A folder's settings: `public` makes every file readable by everyone instead of the ACL manifest's rules."""

    model_config = ConfigDict(extra="forbid")
    public: bool = False


SECRETS: tuple[str, ...] = ()


def build(source: Source, config: Config, secrets: dict[str, str]) -> FilesystemConnector:
    return FilesystemConnector(source.location, public=config.public, state=source.sync_state)


class ManifestError(ValueError):
    """The ACL manifest cannot be read; every file's permissions are then in error (visible to nobody)."""


class FilesystemConnector:
    """Links are read only where they stay inside the source folder, checked when listing and again when reading.

    A link that leads out of it (to a file or to a folder, directly, relatively or through other links) is
    listed as an item that refuses to be read with `symlink_outside_root`, so the refusal is recorded per
    file. A folder link that stays inside is not walked: its files are listed under their own path already.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOAD, Capability.CHECKPOINT, Capability.LIST_IDS, Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(self, location: str | Path, *, public: bool = False, state: dict | None = None) -> None:
        self.root = Path(location).resolve()
        self.public = public
        self._single_file = self.root.is_file()
        self._folder = self.root.parent if self._single_file else self.root
        self._state = state or {}

    def sync_state(self) -> dict:
        return {"mount_point": str(_mount_point(self._folder))}

    def _check_mounted(self) -> None:
        """An unmounted share leaves its mount point behind as an empty folder, which would list as "every file
        was deleted". The folder's mount point is remembered after each complete listing; if the folder now
        sits on another one (typically the root filesystem), the share is taken to be unmounted."""
        remembered = self._state.get("mount_point")
        if not remembered or remembered == "/":
            return
        current = str(_mount_point(self._folder))
        if current != remembered:
            raise SourceUnavailable(
                f"{self.root}: at the last sync this folder was on the filesystem mounted at {remembered}, now it "
                f"is on {current}: the share looks unmounted; nothing was indexed and nothing was pruned. Mount it "
                f"again, or, if it moved for good, clear the source's sync state in the admin console"
            )

    def _files(self) -> Iterator[tuple[Path, ItemError | None]]:
        """Every file under the root, in path order, with the reason it may not be read (links leading out).

        Raises SourceUnavailable when the root itself is missing or unreadable (an unmounted share looks like
        that), and IncompleteListing after yielding the rest when a folder inside it cannot be listed: either
        way a caller must not take the files it did not see as deleted.
        """
        if self._single_file:
            yield self.root, None
            return
        self._check_mounted()
        try:
            listed, problems = self._walk()
        except OSError as exc:
            raise SourceUnavailable(
                f"{self.root}: the folder does not exist or is not mounted ({exc.strerror or exc}); "
                f"nothing was indexed and nothing was pruned"
            ) from exc
        yield from sorted(listed, key=lambda entry: entry[0])
        if problems:
            raise IncompleteListing(problems)

    def _walk(self) -> tuple[list[tuple[Path, ItemError | None]], list[tuple[str, str]]]:
        files: list[tuple[Path, ItemError | None]] = []
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
                hidden = entry.name.startswith(".") or entry.name in _SKIPPED_NAMES
                try:
                    if entry.is_symlink():
                        target = Path(os.path.realpath(path))
                        if not self._inside(target):
                            if not hidden:
                                files.append((path, self._outside(path, target)))
                        elif target.is_file() and not hidden:
                            files.append((path, None))
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(path)
                    elif entry.is_file(follow_symlinks=False) and not hidden:
                        files.append((path, None))
                except OSError as exc:
                    problems.append((self._external_id(path), f"unreadable: {exc.strerror or exc}"))
        return files, sorted(problems)

    def _inside(self, real: Path) -> bool:
        if self._single_file:  # the file itself, and its manifest beside it
            return real == self.root or real == self._folder / ACL_MANIFEST
        return real == self.root or real.is_relative_to(self.root)

    def _outside(self, path: Path, target: Path) -> ItemError:
        return ItemError("symlink_outside_root", f"{self._external_id(path)} links to {target}, outside the source "
                         f"folder {self.root}; it is not read", withdraw=True)

    def _read(self, path: Path) -> bytes:
        """The file's bytes, if it still leads to a file inside the root.

        The path is resolved and checked, then opened one component at a time from the root without following
        any link, so a link swapped in after the check makes the open fail instead of leading elsewhere.
        """
        real = Path(os.path.realpath(path))
        if not self._inside(real):
            raise self._outside(path, real)
        *folders, name = real.relative_to(self._folder).parts
        descriptor = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in folders:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
                os.close(descriptor)
                descriptor = child
            # O_NONBLOCK: a FIFO put in the file's place must not block the worker on open.
            opened = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=descriptor)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ItemError("symlink_outside_root", f"{self._external_id(path)} changed into a link while it "
                                f"was being read; it is not read") from exc
            raise
        finally:
            os.close(descriptor)
        with os.fdopen(opened, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise ItemError("not_a_file", f"{self._external_id(path)} is no longer a regular file")
            return file.read()

    def _external_id(self, path: Path) -> str:
        return path.name if self._single_file else path.relative_to(self.root).as_posix()

    def _item(self, path: Path, refusal: ItemError | None) -> SourceItem | None:
        try:
            # A refused link is described by the link itself: nothing outside the root is looked at.
            status = path.lstat() if refusal else path.stat()
        except FileNotFoundError:
            return None  # gone since it was listed: pruned like any deleted file
        except OSError as exc:
            refusal = ItemError("unreadable", f"the file could not be read: {exc.strerror or exc}")
            status = None
        mime_type, _ = mimetypes.guess_type(path.name)
        return SourceItem(
            external_id=self._external_id(path),
            title=path.stem.replace("-", " ").replace("_", " "),
            mime_type=mime_type or "application/octet-stream",
            size_bytes=status.st_size if status and not refusal else 0,
            read=functools.partial(_refuse, refusal) if refusal else functools.partial(self._read, path),
            url=path.as_uri(),
            modified_at=datetime.fromtimestamp(status.st_mtime, tz=UTC) if status else None,
            title_from_name=True,
        )

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[SourceItem | Checkpoint]:
        """Files in path order, with a Checkpoint after every CHECKPOINT_EVERY of them; resumed from a checkpoint,
        the files up to the one it names are passed over (the folder is walked again: a walk is cheap, reading and
        indexing are not)."""
        after = self._folder / checkpoint["after"] if checkpoint and not self._single_file else None
        listed = 0
        for path, refusal in self._files():
            if after is not None and path <= after:
                continue
            item = self._item(path, refusal)
            if item is None:
                continue
            yield item
            listed += 1
            if listed % CHECKPOINT_EVERY == 0 and not self._single_file:
                yield Checkpoint({"after": item.external_id})

    def list_ids(self) -> Iterator[str]:
        for path, _ in self._files():
            yield self._external_id(path)

    # -- permissions ---------------------------------------------------------------------------
    @cached_property
    def _manifest(self) -> dict[str, Any] | None:
        """The ACL manifest (None if there is none); SourceUnavailable when the folder itself is gone or unmounted,
        so that a permission or group sync changes nothing rather than taking every file's rules to be missing."""
        self._check_mounted()
        if not self._folder.is_dir():
            raise SourceUnavailable(f"{self._folder}: the folder does not exist or is not mounted; no permission "
                                    f"or group was changed")
        path = self._folder / ACL_MANIFEST
        if not os.path.lexists(path):
            return None
        try:
            manifest = json.loads(self._read(path).decode("utf-8"))
        except (ItemError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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
        except ManifestError as exc:
            return Permissions(status="error", reason=f"the ACL manifest cannot be used: {exc}")
        if manifest is None:
            return Permissions(status="unknown", reason=f"the folder has no {ACL_MANIFEST}")
        decisive = manifest.get("default")
        for rule in manifest.get("rules", []):
            if any(fnmatch.fnmatchcase(external_id, pattern) for pattern in rule["paths"]):
                decisive = rule
        if not decisive:
            return Permissions(status="unknown", reason=f"no rule of {ACL_MANIFEST} covers it, and it has no default")
        problem = _grant_problem(decisive, "rule")
        if problem:
            return Permissions(status="error", reason=problem)  # a malformed grant decides nothing but "hidden"
        if decisive.get("status", "ok") != "ok":
            return Permissions(status=decisive["status"], reason=f"its rule in {ACL_MANIFEST} says the permissions "
                                                                 f"are {decisive['status']}")
        return Permissions(principals=frozenset(normalize_principal(p) for p in decisive.get("principals", [])),
                           public=decisive.get("public") is True, status="ok")

    def list_groups(self) -> Iterator[SourceGroup]:
        """Raises ManifestError for an unreadable manifest, so the last good memberships are kept."""
        manifest = self._manifest or {}
        for principal, members in (manifest.get("groups") or {}).items():
            yield SourceGroup(principal=normalize_principal(principal), name=principal.rsplit(":", 1)[-1],
                              members=tuple(normalize_principal(m) for m in members))


def _mount_point(path: Path) -> Path:
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _refuse(refusal: ItemError) -> bytes:
    raise refusal


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _grant_problem(grant: dict[str, Any], where: str) -> str:
    if "principals" in grant and not _is_strings(grant["principals"]):
        return f"{where}: principals must be a list of strings"
    if "public" in grant and not isinstance(grant["public"], bool):
        return f"{where}: public must be true or false"
    status = grant.get("status", "ok")
    if not isinstance(status, str) or status not in _RULE_STATUSES:
        return f"{where}: status must be one of {', '.join(sorted(_RULE_STATUSES))}"
    if status != "ok" and (grant.get("principals") or grant.get("public")):
        return f"{where}: a rule with status {status} grants nothing; it cannot name principals or be public"
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


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = FilesystemConnector
