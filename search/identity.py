"""Who is asking: the one place that turns an authenticated user into the principals search filters on.

Identity comes only from authentication (a session, an API token, a signed Slack request, a
validated Teams token), never from request parameters. Group memberships are expanded here, at
query time, so a membership change takes effect on the next question with no re-index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.selectors import expanded_principals, expanded_principals_of


def principals_for(user: Any) -> frozenset[str]:
    """The principals whose documents `user` may read, besides public ones; empty for anonymous users."""
    return expanded_principals(user)


def principals_of(users: Iterable[Any]) -> dict[Any, frozenset[str]]:
    """principals_for of many users (by primary key), expanded together: a channel's members in a few queries."""
    users = list(users)
    expanded = expanded_principals_of(users)
    return {user.pk: expanded.get(user.pk, frozenset()) for user in users}
