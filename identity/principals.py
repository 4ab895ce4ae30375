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
