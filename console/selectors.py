"""What the console reads across apps: who may read a document, and why a given user can or cannot.

The ACL stored on the document (as the last permission sync left it) is explained through the user's identities
and group memberships (identity.selectors.principal_routes); the search index, which every read path filters by,
gives the verdict that counts, and a disagreement between the two (a sync still pending) is said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from connectors.models import Document
from identity.models import ExternalIdentity, Group, GroupMembership
from identity.principals import EVERYONE_EXCEPT_EXTERNAL, describe_principal
from identity.selectors import account_status, expanded_principals_of, principal_routes, principals_for
from retrieval import selectors as retrieval_selectors

READERS_SHOWN = 100
USERS_PER_BATCH = 500


@dataclass
class DocumentAccess:
    """Who may read a document: nobody (and why), every signed-in user, or those holding one of its grants."""

    nobody_because: str
    public: bool
    grants: list[tuple[str, str]]  # (principal, the same in plain words)
    readers: list[tuple[Any, tuple[str, ...]]] = field(default_factory=list)  # (user, route to a grant), the first
    readers_total: int = 0


@dataclass
class AccessExplanation:
    can_read: bool  # by the stored ACL
    index_can_read: bool  # by the search index: what every read path applies
    steps: list[str]


def _group_names(principals: set[str]) -> dict[str, str]:
    return {principal: name for principal, name in
            Group.objects.filter(principal__in=principals).exclude(name="").values_list("principal", "name")}


def _nobody_because(document: Document) -> str:
    if document.status != Document.Status.INDEXED:
        return f"it is not in the index (status {document.status}{': ' + document.error if document.error else ''})"
    if document.acl_status != "ok":
        reason = document.acl_reason or "the source's permissions could not be read"
        return f"its permissions are unknown ({reason}), and a document nobody can vouch for is hidden from everyone"
    if not document.acl_public and not document.acl_principals:
        return "the source grants it to nobody"
    return ""


def in_words(route: tuple[str, ...], names: dict[str, str] | None = None) -> str:
    """A route to a principal (identity → group → group) in plain words, groups by their names."""
    names = _group_names(set(route)) if names is None else names
    return " → ".join(describe_principal(principal, names) for principal in route)


def document_grants(document: Document) -> DocumentAccess:
    """What the document's stored ACL grants, in words, without looking for its readers."""
    granted = set(document.acl_principals or [])
    names = _group_names(granted)
    return DocumentAccess(_nobody_because(document), document.acl_public,
                          [(principal, describe_principal(principal, names)) for principal in sorted(granted)])


def document_access(document: Document, *, shown: int = READERS_SHOWN) -> DocumentAccess:
    """Who may read the document by its stored ACL: its grants, how many active users hold one, and the first
    `shown` of them with how they get it."""
    access = document_grants(document)
    if access.nobody_because or access.public:
        return access
    granted = set(document.acl_principals)
    users = get_user_model().objects.filter(is_active=True).order_by("username")
    for start in range(0, users.count(), USERS_PER_BATCH):
        batch = list(users[start:start + USERS_PER_BATCH])
        expanded = expanded_principals_of(batch)
        for user in batch:
            if granted & expanded.get(user.pk, frozenset()):
                access.readers_total += 1
                if len(access.readers) < shown:
                    routes = principal_routes(user)
                    access.readers.append((user, min((routes[p] for p in granted if p in routes), key=len)))
    return access


def explain_access(document: Document, user: Any) -> AccessExplanation:
    """Whether `user` may read the document, step by step in plain words, and whether the index agrees."""
    index_can_read = retrieval_selectors.readable_document(document.id, principals_for(user)) is not None
    steps: list[str] = []
    if not user.is_active:
        return AccessExplanation(False, index_can_read, [f"{user} is inactive, and reads as nobody."])
    nobody = _nobody_because(document)
    if nobody:
        return AccessExplanation(False, index_can_read, [f"Nobody may read it: {nobody}."])
    if document.acl_public:
        return AccessExplanation(True, index_can_read, ["The source makes it public: every signed-in user reads it."])
    granted = set(document.acl_principals)
    routes = principal_routes(user)
    names = _group_names(granted | set(routes))
    reached = sorted((routes[principal] for principal in granted if principal in routes), key=len)
    if reached:
        steps.append(f"{user} may read it through: {in_words(reached[0], names)}.")
        steps += [f"Also through: {in_words(route, names)}." for route in reached[1:3]]
        return AccessExplanation(True, index_can_read, steps)
    steps.append(f"{user} holds none of the principals the document is granted to: "
                 + "; ".join(describe_principal(p, names) for p in sorted(granted)) + ".")
    own = [route[0] for route in routes.values() if len(route) == 1]
    steps.append(f"{user} reads as: " + ("; ".join(describe_principal(p, names) for p in sorted(own))
                                         if own else "nothing (no linked identity)") + ".")
    groups = [route for route in routes.values() if len(route) > 1]
    if groups:
        steps.append(f"{user} is in the groups: " + "; ".join(in_words(route, names) for route in groups) + ".")
    status = account_status(user)
    org_wide = {EVERYONE_EXCEPT_EXTERNAL} | {p for p in granted if p.startswith("domain:")}
    if granted & org_wide and status != "employee":
        steps.append(f"It is shared organisation-wide, which only employees hold; {user}'s account is {status}: an "
                     "administrator decides that under Users.")
    revoked = GroupMembership.objects.filter(member__in=set(routes), group__principal__in=granted,
                                             revoked_at__isnull=False).select_related("group", "revoked_by")
    for membership in revoked:
        steps.append(f"{membership.member}'s membership of {membership.group.principal} was revoked in Citewise"
                     f" by {membership.revoked_by or 'an administrator'} on {membership.revoked_at:%Y-%m-%d}.")
    if not ExternalIdentity.objects.filter(user=user).exists():
        steps.append(f"{user} has no linked identity from a source (an email address, a Slack or Teams account): "
                     "link one under Users to let the sources' grants reach them.")
    return AccessExplanation(False, index_can_read, steps)


def find_user(text: str) -> Any | None:
    """A user by username or email address, exactly (case-insensitive); None when there is none or several."""
    text = text.strip()
    if not text:
        return None
    found = list(get_user_model().objects.filter(Q(username__iexact=text) | Q(email__iexact=text))[:2])
    return found[0] if len(found) == 1 else None


def broker_status(url: str, timeout_s: float) -> str:
    """"ok" when the Celery broker at `url` accepts a connection within `timeout_s` ("not configured…" without one);
    raises the transport's error otherwise. /readyz and the containers' health checks both ask it."""
    if not url:
        return "not configured: tasks run in-process"
    from kombu import Connection

    with Connection(url, connect_timeout=timeout_s) as broker:
        broker.ensure_connection(max_retries=1, timeout=timeout_s)
    return "ok"
