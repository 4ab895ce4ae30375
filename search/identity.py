"""Who is asking: the one place that turns an authenticated user into the principals search filters on.

Identity comes only from authentication (a session or an API token), never from request parameters.
"""

from __future__ import annotations

from typing import Any


def principals_for(user: Any) -> frozenset[str]:
    """The principals whose documents `user` may read, besides public documents.

    Until per-user ACLs arrive every reader, signed in or not, sees public documents only.
    """
    return frozenset()
