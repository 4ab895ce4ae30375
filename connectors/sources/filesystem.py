"""Files under a directory (or single files): the connector behind `manage.py ingest PATH`."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import PUBLIC, Permissions, SourceItem

mimetypes.add_type("text/markdown", ".md")
mimetypes.add_type("text/markdown", ".markdown")
mimetypes.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")

_SKIPPED_NAMES = {".DS_Store", "Thumbs.db"}


class FilesystemConnector:
    def __init__(self, location: str | Path) -> None:
        self.root = Path(location).resolve()

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

    def fetch_permissions(self, external_id: str) -> Permissions:
        # Until issue 4 brings ACL manifests, files an admin points Citewise at are public.
        return PUBLIC
