"""A BEIR-format corpus.jsonl (_id, title, text per line), ingested like any other source for evaluation."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from connectors.base import PUBLIC, Capability, Permissions, SourceGroup, SourceItem, SourceUnavailable

if TYPE_CHECKING:
    from connectors.models import Source


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


SECRETS: tuple[str, ...] = ()


def build(source: Source, config: Config, secrets: dict[str, str]) -> BeirCorpusConnector:
    return BeirCorpusConnector(source.location)


class BeirCorpusConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOAD, Capability.LIST_IDS, Capability.PERMISSIONS, Capability.GROUPS})

    def __init__(self, location: str | Path) -> None:
        path = Path(location)
        self.corpus_path = path / "corpus.jsonl" if path.is_dir() else path

    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[SourceItem]:
        try:
            corpus = self.corpus_path.open(encoding="utf-8")
        except OSError as exc:
            raise SourceUnavailable(f"{self.corpus_path}: the corpus cannot be read ({exc.strerror or exc}); "
                                    f"nothing was indexed and nothing was pruned") from exc
        with corpus:
            for line in corpus:
                if not line.strip():
                    continue
                record = json.loads(line)
                body = record.get("text", "").encode("utf-8")
                yield SourceItem(
                    external_id=str(record["_id"]),
                    title=record.get("title", ""),
                    mime_type="text/plain",
                    size_bytes=len(body),
                    read=functools.partial(bytes, body),
                )

    def list_ids(self) -> Iterator[str]:
        for item in self.load():
            yield item.external_id

    def fetch_permissions(self, external_id: str) -> Permissions:
        # Benchmark corpora are public by construction.
        return PUBLIC

    def list_groups(self) -> Iterator[SourceGroup]:
        return iter(())

    def sync_state(self) -> dict:
        return {}


# What the registry reads to schedule a source's syncs without building its connector (no credentials needed).
CONNECTOR = BeirCorpusConnector
