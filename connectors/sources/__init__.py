"""One module per source system; `connector_for` builds the right one for a Source row."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import Connector
    from connectors.models import Source


def connector_for(source: Source) -> Connector:
    from connectors.selectors import source_secrets
    from connectors.sources.beir import BeirCorpusConnector
    from connectors.sources.confluence import ConfluenceConnector
    from connectors.sources.filesystem import FilesystemConnector

    if source.kind == "filesystem":
        return FilesystemConnector(source.location, public=bool(source.config.get("public")),
                                   state=source.sync_state)
    if source.kind == "beir":
        return BeirCorpusConnector(source.location)
    if source.kind == "confluence":
        return ConfluenceConnector(source.location, email=str(source.config.get("email", "")),
                                   api_token=source_secrets(source).get("api_token", ""),
                                   spaces=source.config.get("spaces") or None)
    raise ValueError(f"no connector for source kind {source.kind!r}")
