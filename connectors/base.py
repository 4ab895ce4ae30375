"""The one connector protocol every source implements, and the items it yields."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


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


class Connector(Protocol):
    def load(self) -> Iterator[SourceItem]:
        """Every item the source holds now; SourceUnavailable or IncompleteListing when it cannot say."""
        ...

    def poll(self, cursor: str | None) -> tuple[Iterator[SourceItem], str]:
        """Items changed since `cursor`, and the cursor to pass next time."""
        ...

    def list_ids(self) -> Iterator[str]:
        """External ids of every item that still exists, for pruning deleted ones; raises as `load` does."""
        ...

    def fetch_permissions(self, external_id: str) -> Permissions:
        """Who may read the item now; status "unknown" or "error" when the source cannot say."""
        ...

    def list_groups(self) -> Iterator[SourceGroup]:
        """The source's groups and their direct members (users or other groups), for membership sync."""
        ...

    def sync_state(self) -> dict:
        """What to remember for the next sync (stored on the Source after a complete listing; {} for nothing)."""
        ...
