"""Who is who: a Citewise user's identities in other systems, whether they are one of the organisation's own
people, and the groups sources define (with their memberships)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExternalIdentity(models.Model):
    """An identity of a Citewise user in another system, as the namespaced principal that system's ACLs use.

    e.g. `email:alice@corp.com`, `slack:T024BE7LD:user:U12345`, `teams:<tenant>:user:<aad object id>`,
    `gdrive:user:10423`. Linked by an admin or by a verified sign-in, never from request parameters.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identities")
    principal = models.CharField(max_length=500, unique=True)
    # Guests and contractors from outside the organisation: never "everyone except external".
    is_external = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.principal


class Account(models.Model):
    """Whether a Citewise user is one of the organisation's own people: stored, never inferred.

    Only employees read as "everyone except external users" and as their email domains. A user without an
    account row, or with status unknown, is treated as unknown: an admin decides (Admin › Users, or Accounts).
    """

    class Status(models.TextChoices):
        EMPLOYEE = "employee", "Employee"
        GUEST = "guest", "Guest or contractor"
        UNKNOWN = "unknown", "Unknown (not yet decided)"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.status})"


class Group(models.Model):
    """A group as a source knows it (`entra:<tenant>:group:<id>`, `group:engineering`); synced apart from content."""

    principal = models.CharField(max_length=500, unique=True)
    name = models.CharField(max_length=300, blank=True)
    # A lazy reference: identity sits below connectors and never imports them; a source's groups go with it.
    source = models.ForeignKey("connectors.Source", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="groups")
    synced_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name or self.principal


class GroupMembership(models.Model):
    """`member` is a user principal or another group's principal: groups nest to any depth, cycles allowed.

    `origin` says who owns the row: "source" rows are replaced by each permission sync, "local" rows were added
    by an admin and no sync touches them. A revoked row (`revoked_at` set) grants nothing; it stays so that the
    next sync, which still lists the member, does not grant it again. Lifting the revocation clears it.
    """

    class Origin(models.TextChoices):
        SOURCE = "source", "Synced from the source"
        LOCAL = "local", "Added in Citewise"

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    member = models.CharField(max_length=500, db_index=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.LOCAL)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "member"], name="unique_group_member")]

    def __str__(self) -> str:
        return f"{self.member} ∈ {self.group.principal}" + (" (revoked)" if self.revoked else "")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
