"""Write to the audit log: one call per event, from the ask service, the admin console, identity changes and
document links."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent


def record(
    actor: Any,
    action: str,
    *,
    object_type: str = "",
    object_id: Any = "",
    surface: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. An anonymous or missing actor is stored as null."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(actor=user, action=action, object_type=object_type,
                                     object_id=str(object_id or ""), surface=surface, detail=detail or {})
