"""The registry of source kinds: one module per source system under `connectors/sources/`, imported only when a
source of its kind is used.

Each module provides:

- `Config`: a pydantic model of the source's settings (Source.config), extra keys refused, so that a typo is an
  error an admin sees rather than a setting silently ignored;
- `SECRETS`: the names of the credentials it needs (Source.encrypted_secrets, never in Config);
- `build(source, config, secrets) -> Connector`: the connector for a Source row;
- `CONNECTOR`: its class, which declares its `capabilities` (connectors.base.Capability).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput

if TYPE_CHECKING:
    from connectors.base import Capability, Connector
    from connectors.models import Source

MODULES: dict[str, str] = {
    "filesystem": "connectors.sources.filesystem",
    "beir": "connectors.sources.beir",
    "confluence": "connectors.sources.confluence",
    "sharepoint": "connectors.sources.sharepoint",
    "web": "connectors.sources.web",
    "google_drive": "connectors.sources.google_drive",
    "slack": "connectors.sources.slack",
}


def source_module(kind: str) -> ModuleType:
    if kind not in MODULES:
        raise InvalidInput(f"unknown source kind {kind!r}; known kinds: {', '.join(sorted(MODULES))}")
    return importlib.import_module(MODULES[kind])


def validated_config(kind: str, config: dict[str, Any]) -> BaseModel:
    """The source's settings checked against its kind's schema; InvalidInput naming each problem otherwise."""
    schema: type[BaseModel] = source_module(kind).Config
    try:
        return schema.model_validate(config)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'config'}: {error['msg']}"
                             for error in exc.errors())
        raise InvalidInput(f"invalid {kind} source settings: {problems}") from exc


def capabilities_of(kind: str) -> frozenset[Capability]:
    """What a source of this kind can sync, read from its connector class: nothing is built or decrypted."""
    capabilities: frozenset[Capability] = source_module(kind).CONNECTOR.capabilities
    return capabilities


def required_secrets(kind: str) -> tuple[str, ...]:
    return tuple(source_module(kind).SECRETS)


def connector_for(source: Source) -> Connector:
    from connectors.selectors import source_secrets

    module = source_module(source.kind)
    connector: Connector = module.build(source, validated_config(source.kind, source.config), source_secrets(source))
    return connector
