"""Changes to who reads as what: account status, group memberships an admin removes or restores, and the groups a
source syncs. Each change an admin makes is written to the audit log in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from django.db import models, transaction
from django.utils import timezone

from audit import services as audit
from identity.models import Account, Group, GroupMembership

MEMBERSHIP = GroupMembership._meta.label_lower


# -- accounts ----------------------------------------------------------------------------------------

def set_account_status(user: Any, status: str, *, actor: Any = None, surface: str = "") -> Account:
    """Record whether `user` is an employee, a guest or unknown; a change is written to the audit log."""
    if status not in Account.Status.values:
        raise ValueError(f"unknown account status {status!r}")
    with transaction.atomic():
        account, created = Account.objects.get_or_create(user=user, defaults={"status": status})
        # No row read as unknown before, so that is what a first classification changes from.
        previous = Account.Status.UNKNOWN if created else account.status
        if not created and previous != status:
            account.status = status
            account.save(update_fields=["status", "updated_at"])
        if previous != status:
            audit.record(actor, "account.status", object_type="auth.user", object_id=user.pk, surface=surface,
                         detail={"username": user.get_username(), "from": previous, "to": status})
    return account


# -- group memberships -------------------------------------------------------------------------------

def remove_membership(membership: GroupMembership, *, actor: Any, surface: str = "admin") -> str:
    """An admin takes a member out of a group: "deleted", "revoked" or "already revoked".

    A local membership is the admin's own and is deleted. A source-synced one is kept, marked revoked by `actor`:
    expansion ignores it and the next sync, which still lists the member, does not grant it again. Audited.
    """
    detail = {"group": membership.group.principal, "member": membership.member, "origin": membership.origin}
    if membership.origin == GroupMembership.Origin.LOCAL:
        membership_id = membership.pk
        with transaction.atomic():
            membership.delete()
            audit.record(actor, "membership.delete", object_type=MEMBERSHIP, object_id=membership_id,
                         surface=surface, detail=detail)
        return "deleted"
    if membership.revoked:
        return "already revoked"
    membership.revoked_at = timezone.now()
    membership.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        membership.save(update_fields=["revoked_at", "revoked_by"])
        audit.record(actor, "membership.revoke", object_type=MEMBERSHIP, object_id=membership.pk, surface=surface,
                     detail=detail)
    return "revoked"


def lift_revocation(membership: GroupMembership, *, actor: Any, surface: str = "admin") -> bool:
    """Undo a revocation: the membership grants again, and the source's sync owns it again. Audited."""
    if not membership.revoked:
        return False
    detail = {"group": membership.group.principal, "member": membership.member,
              "revoked_at": membership.revoked_at.isoformat() if membership.revoked_at else None,
              "revoked_by": membership.revoked_by.get_username() if membership.revoked_by else None}
    membership.revoked_at, membership.revoked_by = None, None
    with transaction.atomic():
        membership.save(update_fields=["revoked_at", "revoked_by"])
        audit.record(actor, "membership.restore", object_type=MEMBERSHIP, object_id=membership.pk,
                     surface=surface, detail=detail)
    return True


# -- groups a source syncs ---------------------------------------------------------------------------

class ListedGroup(Protocol):
    """A group as a source lists it now (connectors.base.SourceGroup): its principal, name and direct members."""

    @property
    def principal(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def members(self) -> Sequence[str]: ...


def replace_source_groups(source: models.Model, groups: Sequence[ListedGroup]) -> tuple[int, int]:
    """Replace the source's groups and direct memberships with what the source lists now; returns (groups,
    memberships listed).

    Only memberships the source owns (origin "source") are replaced. Those an admin added ("local") stay, and
    so do revoked ones, whether the source still lists them or not: a revocation lasts until an admin lifts it.
    """
    synced = GroupMembership.objects.filter(origin=GroupMembership.Origin.SOURCE, revoked_at__isnull=True)
    with transaction.atomic():
        gone = Group.objects.filter(source_id=source.pk).exclude(principal__in=[g.principal for g in groups])
        synced.filter(group__in=gone).delete()
        # A group the source dropped is kept while an admin's memberships or revocations still hang on it.
        gone.exclude(pk__in=GroupMembership.objects.values("group")).delete()
        memberships = 0
        for listed in groups:
            group, _ = Group.objects.update_or_create(principal=listed.principal,
                                                      defaults={"name": listed.name, "source": source})
            members = list(dict.fromkeys(listed.members))
            synced.filter(group=group).exclude(member__in=members).delete()
            existing = set(group.memberships.values_list("member", flat=True))
            GroupMembership.objects.bulk_create([GroupMembership(group=group, member=m,
                                                                 origin=GroupMembership.Origin.SOURCE)
                                                 for m in members if m not in existing])
            memberships += len(members)
    return len(groups), memberships
