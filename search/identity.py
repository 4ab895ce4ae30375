"""Who is asking: the one place that turns an authenticated user into the principals search filters on.

Identity comes only from authentication (a session, an API token, a signed Slack request, a
validated Teams token), never from request parameters. Group memberships are expanded here, at
query time, so a membership change takes effect on the next question with no re-index.
"""

from __future__ import annotations

from typing import Any

from connectors.selectors import expanded_principals


def principals_for(user: Any) -> frozenset[str]:
    """The principals whose documents `user` may read, besides public ones; empty for anonymous users."""
    return expanded_principals(user)
