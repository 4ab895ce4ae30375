"""Reads about who may see what: a user's expanded principals, computed at query time."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from connectors.base import normalize_principal
from connectors.models import Account, Document, ExternalIdentity, GroupMembership

EVERYONE_EXCEPT_EXTERNAL = "org:everyone-except-external"


def local_principal(username: str) -> str:
    """The principal an ACL manifest uses to name a Citewise user directly."""
    return f"citewise:user:{username}"


def domain_principal(domain: str) -> str:
    """'Anyone in <domain>' as a source shares it (Google Drive domain sharing, SharePoint org links)."""
    return f"domain:{domain.lower()}"


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


def indexed_chunks_expected(backend_kind: str, index_name: str) -> bool:
    """Whether the database records chunks written to this index: then a missing or empty index is an outage."""
    config = settings.CITEWISE
    # Blank on a source means the configured backend and main index (as sync_source resolves them).
    kinds = [backend_kind, ""] if backend_kind == config["SEARCH_BACKEND"] else [backend_kind]
    names = [index_name, ""] if index_name == config["INDEX_NAME"] else [index_name]
    return Document.objects.filter(status=Document.Status.INDEXED, chunk_count__gt=0,
                                   source__search_backend__in=kinds, source__index_name__in=names).exists()
