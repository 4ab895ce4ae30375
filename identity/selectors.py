"""Who is asking: the one place that turns an authenticated user into the principals search filters on.

Identity comes only from authentication (a session, an API token, a signed Slack request, a
validated Teams token), never from request parameters. Group memberships are expanded here, at
query time, so a membership change takes effect on the next question with no re-index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from identity.models import Account, ExternalIdentity, GroupMembership
from identity.principals import EVERYONE_EXCEPT_EXTERNAL, domain_principal, local_principal, normalize_principal

K = TypeVar("K")


def account_status(user: Any) -> str:
    """employee, guest or unknown; a user nobody has classified (no Account row) is unknown."""
    status = Account.objects.filter(user=user).values_list("status", flat=True).first()
    return status or Account.Status.UNKNOWN


def own_principals(user: Any) -> set[str]:
    """The user's direct principals: linked identities and the pseudo-principals they imply.

    The organisation-wide pseudo-principals ("everyone except external users", "anyone at <domain>") go to
    employees only: an unknown account could be anyone, and a guest may well hold an address at our domain.
    """
    return own_principals_of([user])[user.pk]


def own_principals_of(users: Iterable[Any]) -> dict[Any, set[str]]:
    """own_principals of many users, by primary key, in two queries however many they are."""
    users = list(users)
    identities: dict[Any, list[tuple[str, bool]]] = {user.pk: [] for user in users}
    for user_id, principal, is_external in ExternalIdentity.objects.filter(user__in=list(identities)).values_list(
            "user_id", "principal", "is_external"):
        identities[user_id].append((normalize_principal(principal), is_external))
    statuses = dict(Account.objects.filter(user__in=list(identities)).values_list("user_id", "status"))
    found: dict[Any, set[str]] = {}
    for user in users:
        linked = identities[user.pk]
        principals = {local_principal(user.get_username())} | {principal for principal, _ in linked}
        found[user.pk] = principals
        if (statuses.get(user.pk) or Account.Status.UNKNOWN) != Account.Status.EMPLOYEE:
            continue
        for principal, is_external in linked:
            if principal.startswith("email:") and "@" in principal and not is_external:
                principals.add(domain_principal(principal.rsplit("@", 1)[1]))
        # An employee who also holds a guest identity somewhere (a contractor's second hat) is not "everyone".
        if not any(is_external for _, is_external in linked):
            principals.add(EVERYONE_EXCEPT_EXTERNAL)
    return found


def expand_groups(principals: set[str]) -> frozenset[str]:
    """Add every group the principals belong to, through any depth of nesting; cycles end the walk.

    A revoked membership grants nothing.
    """
    return expand_groups_of({None: principals})[None]


def expand_groups_of(principals: Mapping[K, set[str]]) -> dict[K, frozenset[str]]:
    """expand_groups of many principal sets at once: one query per level of nesting, however many sets."""
    parents: dict[str, set[str]] = {}
    seen: set[str] = set().union(*principals.values()) if principals else set()
    frontier = set(seen)
    while frontier:
        found: set[str] = set()
        for member, group in GroupMembership.objects.filter(member__in=frontier, revoked_at__isnull=True).values_list(
                "member", "group__principal"):
            parents.setdefault(member, set()).add(group)
            found.add(group)
        frontier = found - seen
        seen |= frontier
    expanded: dict[K, frozenset[str]] = {}
    for key, start in principals.items():
        reached, pending = set(start), list(start)
        while pending:
            for group in parents.get(pending.pop(), ()):
                if group not in reached:
                    reached.add(group)
                    pending.append(group)
        expanded[key] = frozenset(reached)
    return expanded


def expanded_principals(user: Any) -> frozenset[str]:
    """Everything `user` reads as, for filtering search. Anonymous and inactive users have none."""
    return expanded_principals_of([user])[user.pk] if _reads_as_someone(user) else frozenset()


def expanded_principals_of(users: Iterable[Any]) -> dict[Any, frozenset[str]]:
    """expanded_principals of many users, by primary key: the queries of one user's, whatever their number.

    Anonymous and inactive users are left out (they read as nobody).
    """
    readers = [user for user in users if _reads_as_someone(user)]
    return expand_groups_of(own_principals_of(readers)) if readers else {}


def _reads_as_someone(user: Any) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", True)


def principals_for(user: Any) -> frozenset[str]:
    """The principals whose documents `user` may read, besides public ones; empty for anonymous users."""
    return expanded_principals(user)


def principals_of(users: Iterable[Any]) -> dict[Any, frozenset[str]]:
    """principals_for of many users (by primary key), expanded together: a channel's members in a few queries."""
    users = list(users)
    expanded = expanded_principals_of(users)
    return {user.pk: expanded.get(user.pk, frozenset()) for user in users}


def principal_routes(user: Any) -> dict[str, tuple[str, ...]]:
    """Every principal `user` reads as, each with how: the shortest chain from one of their own principals (an
    identity, a pseudo-principal) through the groups that contain it, e.g. ("email:a@x", "group:finance",
    "group:staff"). Revoked memberships grant nothing; anonymous and inactive users read as nobody ({})."""
    if not _reads_as_someone(user):
        return {}
    routes: dict[str, tuple[str, ...]] = {principal: (principal,) for principal in sorted(own_principals(user))}
    frontier = set(routes)
    while frontier:
        found: set[str] = set()
        for member, group in sorted(GroupMembership.objects.filter(member__in=frontier, revoked_at__isnull=True)
                                    .values_list("member", "group__principal")):
            if group not in routes:
                routes[group] = (*routes[member], group)
                found.add(group)
        frontier = found
    return routes
