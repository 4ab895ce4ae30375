"""Who is asking: the one place that turns an authenticated user into the principals search filters on.

Identity comes only from authentication (a session, an API token, a signed Slack request, a
validated Teams token), never from request parameters. Group memberships are expanded here, at
query time, so a membership change takes effect on the next question with no re-index.
"""

from __future__ import annotations

from typing import Any

from identity.models import Account, ExternalIdentity, GroupMembership
from identity.principals import EVERYONE_EXCEPT_EXTERNAL, domain_principal, local_principal, normalize_principal


def account_status(user: Any) -> str:
    """employee, guest or unknown; a user nobody has classified (no Account row) is unknown."""
    status = Account.objects.filter(user=user).values_list("status", flat=True).first()
    return status or Account.Status.UNKNOWN


def own_principals(user: Any) -> set[str]:
    """The user's direct principals: linked identities and the pseudo-principals they imply.

    The organisation-wide pseudo-principals ("everyone except external users", "anyone at <domain>") go to
    employees only: an unknown account could be anyone, and a guest may well hold an address at our domain.
    """
    identities = [(normalize_principal(principal), is_external) for principal, is_external in
                  ExternalIdentity.objects.filter(user=user).values_list("principal", "is_external")]
    principals = {local_principal(user.get_username())} | {principal for principal, _ in identities}
    if account_status(user) != Account.Status.EMPLOYEE:
        return principals
    for principal, is_external in identities:
        if principal.startswith("email:") and "@" in principal and not is_external:
            principals.add(domain_principal(principal.rsplit("@", 1)[1]))
    # An employee who also holds a guest identity somewhere (a contractor's second hat) is not "everyone".
    if not any(is_external for _, is_external in identities):
        principals.add(EVERYONE_EXCEPT_EXTERNAL)
    return principals


def expand_groups(principals: set[str]) -> frozenset[str]:
    """Add every group the principals belong to, through any depth of nesting; cycles end the walk.

    A revoked membership grants nothing.
    """
    seen = set(principals)
    frontier = set(principals)
    while frontier:
        parents = set(
            GroupMembership.objects.filter(member__in=frontier, revoked_at__isnull=True)
            .values_list("group__principal", flat=True)
        ) - seen
        seen |= parents
        frontier = parents
    return frozenset(seen)


def expanded_principals(user: Any) -> frozenset[str]:
    """Everything `user` reads as, for filtering search. Anonymous and inactive users have none."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return frozenset()
    return expand_groups(own_principals(user))


def principals_for(user: Any) -> frozenset[str]:
    """The principals whose documents `user` may read, besides public ones; empty for anonymous users."""
    return expanded_principals(user)
