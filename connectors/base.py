"""What a connector is: its capabilities, one protocol for each, and the items and markers it yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, cast, runtime_checkable


@dataclass(frozen=True)
class Permissions:
    """Who may read an item at its source. Unknown permissions make an item visible to nobody."""

    principals: frozenset[str] = frozenset()
    public: bool = False
    status: str = "unknown"  # ok | unknown | error
    # Why the permissions are not known, for admins (not part of the ACL: acl_hash leaves it out).
    reason: str = field(default="", compare=False)


PUBLIC = Permissions(public=True, status="ok")
UNKNOWN = Permissions()


class ItemError(Exception):
    """An item that cannot be indexed; `code` is stable, the message is for admins.

    `withdraw` says whatever the index holds for the item must go as well, because it was never the
    source's to show (a file that now links outside the source folder), instead of staying as the last
    good version.
    """

    def __init__(self, code: str, message: str, *, withdraw: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.withdraw = withdraw

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


class SourceUnavailable(Exception):
    """The source cannot be listed at all (a missing or unmounted folder): the sync fails and nothing is pruned."""


class IncompleteListing(Exception):
    """Raised by `load` or `list_ids` after yielding every item it could, when part of the source could not be
    listed. `problems` are (where, "code: message") pairs; items that may live where listing failed must not be
    pruned, so a sync that meets this prunes nothing."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class SourceGroup:
    principal: str
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class SourceItem:
    external_id: str
    title: str
    mime_type: str
    size_bytes: int
    read: Callable[[], bytes] = field(repr=False, compare=False)
    url: str = ""
    modified_at: datetime | None = None
    # The title is made from the file name, a last resort: a title read from the document's text wins over it.
    title_from_name: bool = False
    # What the connector asks the sync to keep with the document for its next visit (a web page's HTTP validators
    # and links), read back with connectors.selectors.document_memos; None leaves what is kept as it is.
    memo: dict[str, Any] | None = field(default=None, compare=False)
    # The source says the item has not changed since the version the memo describes (an HTTP 304): an item indexed
    # with the current pipeline is then counted unchanged without being read; any other is read as usual.
    not_modified: bool = False


class Capability(StrEnum):
    """What a connector can do; the sync framework runs only the kinds of sync its capabilities allow."""

    LOAD = "load"  # every item the source holds (a full sync)
    CHECKPOINT = "checkpoint"  # `load`/`changes` yield Checkpoints and resume from one after a crash
    INCREMENTAL = "incremental"  # `changes(cursor)`: what changed or went since the last sync
    LIST_IDS = "list_ids"  # a slim listing of the ids that still exist, for pruning
    PERMISSIONS = "permissions"  # `fetch_permissions` of one item
    GROUPS = "groups"  # `list_groups`: the source's groups and their members


@dataclass(frozen=True)
class Checkpoint:
    """Yielded between items by `load` or `changes`: once every item yielded before it is processed, a run that
    stops (a killed worker) can be resumed by calling the same method again with `checkpoint=state`. `state` is
    JSON-serialisable and small: a page cursor, never a list of ids."""

    state: dict[str, Any]


@dataclass(frozen=True)
class Cursor:
    """Yielded by `load` or `changes`: where the next incremental sync starts, to be passed to `changes` once this
    run has processed everything (a delta link, a last-modified time taken before listing began)."""

    state: dict[str, Any]


@dataclass(frozen=True)
class Deleted:
    """Yielded by `changes`: the item is gone from the source (or from what the connector may read)."""

    external_id: str


class CursorExpired(Exception):
    """`changes` cannot continue from the cursor it was given (a delta token the source no longer honours, a
    410 Gone): the framework runs a full sync instead."""


Listed = SourceItem | Checkpoint | Cursor
Changed = SourceItem | Deleted | Checkpoint | Cursor


@runtime_checkable
class Connector(Protocol):
    """What every connector has; the rest is optional, one protocol per capability, declared in `capabilities`."""

    capabilities: ClassVar[frozenset[Capability]]


class Loads(Protocol):
    def load(self, checkpoint: dict[str, Any] | None = None) -> Iterator[Listed]:
        """Every item the source holds now; SourceUnavailable or IncompleteListing when it cannot say.

        With Capability.CHECKPOINT, Checkpoints between items, and `checkpoint` resumes after the one given."""
        ...


class ChangesSince(Protocol):
    def changes(self, cursor: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> Iterator[Changed]:
        """Items changed or deleted since `cursor` (a Cursor's state from an earlier run), then the next Cursor;
        CursorExpired when the source no longer honours `cursor`."""
        ...


class ListsIds(Protocol):
    def list_ids(self) -> Iterator[str]:
        """External ids of every item that still exists, for pruning deleted ones; raises as `load` does."""
        ...


class SyncsPermissions(Protocol):
    def fetch_permissions(self, external_id: str) -> Permissions:
        """Who may read the item now; status "unknown" or "error" when the source cannot say."""
        ...


class SyncsGroups(Protocol):
    def list_groups(self) -> Iterator[SourceGroup]:
        """The source's groups and their direct members (users or other groups), for membership sync."""
        ...


class RemembersState(Protocol):
    def sync_state(self) -> dict[str, Any]:
        """What to remember for the next sync (stored on the Source after a complete listing; {} for nothing)."""
        ...


class Unsupported(Exception):
    """The connector lacks the capability a kind of sync needs."""


def _require(connector: Connector, capability: Capability) -> None:
    if capability not in connector.capabilities:
        raise Unsupported(f"{type(connector).__name__} cannot {capability.value}: its capabilities are "
                          f"{', '.join(sorted(c.value for c in connector.capabilities))}")


def loader(connector: Connector) -> Loads:
    _require(connector, Capability.LOAD)
    return cast(Loads, connector)


def change_feed(connector: Connector) -> ChangesSince:
    _require(connector, Capability.INCREMENTAL)
    return cast(ChangesSince, connector)


def id_lister(connector: Connector) -> ListsIds:
    _require(connector, Capability.LIST_IDS)
    return cast(ListsIds, connector)


def permission_source(connector: Connector) -> SyncsPermissions:
    _require(connector, Capability.PERMISSIONS)
    return cast(SyncsPermissions, connector)


def group_source(connector: Connector) -> SyncsGroups:
    _require(connector, Capability.GROUPS)
    return cast(SyncsGroups, connector)


def remembered_state(connector: Connector) -> dict[str, Any]:
    """What a connector asks to remember for the next sync ({} if it remembers nothing)."""
    sync_state = getattr(connector, "sync_state", None)
    return dict(sync_state()) if callable(sync_state) else {}
