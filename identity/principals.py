"""How principals are spelled: the namespaced strings ACLs, identities and group memberships name readers with."""

from __future__ import annotations

EVERYONE_EXCEPT_EXTERNAL = "org:everyone-except-external"


def normalize_principal(principal: str) -> str:
    """One spelling per principal: email addresses and domains compare case-insensitively."""
    principal = principal.strip()
    kind, _, value = principal.partition(":")
    if kind in ("email", "domain") and value:
        return f"{kind}:{value.lower()}"
    return principal


def local_principal(username: str) -> str:
    """The principal an ACL manifest uses to name a Citewise user directly."""
    return f"citewise:user:{username}"


def domain_principal(domain: str) -> str:
    """'Anyone in <domain>' as a source shares it (Google Drive domain sharing, SharePoint org links)."""
    return f"domain:{domain.lower()}"


def describe_principal(principal: str, group_names: dict[str, str] | None = None) -> str:
    """A principal in plain words for an administrator: who it stands for, not how it is spelled."""
    kind, _, value = principal.partition(":")
    names = group_names or {}
    if principal == EVERYONE_EXCEPT_EXTERNAL:
        return "everyone in the organisation except guests and external users"
    if kind == "email":
        return f"the person with the email address {value}"
    if kind == "domain":
        return f"every employee with an address at {value}"
    if principal.startswith("citewise:user:"):
        return f"the Citewise user {principal.removeprefix('citewise:user:')}"
    if principal in names:
        return f"members of the group “{names[principal]}” ({principal})"
    if principal.endswith(":anonymous"):
        return f"anonymous visitors of {principal.split(':')[1]} (nobody, unless an administrator grants it)"
    if ":link:" in principal or principal.startswith("link:"):
        return f"people holding a sharing link ({principal}; nobody, unless the source's link sharing counts as org-wide)"
    if ":channel:" in principal:
        return f"members of the channel {principal.rsplit(':', 1)[1]} ({principal})"
    if ":group:" in principal or kind == "group":
        return f"members of the group {principal.rsplit(':', 1)[1]} ({principal})"
    if ":user:" in principal:
        return f"the account {principal.rsplit(':', 1)[1]} in {kind} ({principal})"
    return principal
