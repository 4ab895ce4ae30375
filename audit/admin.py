"""The audit log in the admin console, and the mixin that audits every other admin view.

Admins see every document, answer and piece of feedback in the console whatever the ACLs say, so each list and
each record they open through an admin with AuditedAdminMixin is written to the audit log (audit.models.AuditEvent),
which is itself read-only here: nothing in the console can add, change or delete an audit event.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import models
from django.http import HttpRequest, HttpResponse

from audit import services as audit
from audit.models import AuditEvent


def _object_type(model: Any) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


class AuditedAdminMixin:
    """Log every list and record an admin opens ("admin.view") and every change, addition, deletion or action
    ("admin.change")."""

    model: type[models.Model]  # the ModelAdmin's, which this is mixed into

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        if response.status_code >= 400:
            return response
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action:
            selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
            known = action in self.get_actions(request)  # type: ignore[attr-defined]
            audit.record(request.user, "admin.change", object_type=_object_type(self.model), surface="admin",
                         detail={"action": action, "ids": selected[:1000], "allowed": known,
                                 "path": request.get_full_path()})
            return response
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        shown = [str(obj.pk) for obj in changelist.result_list] if changelist is not None else []
        audit.record(request.user, "admin.view", object_type=_object_type(self.model), surface="admin",
                     detail={"path": request.get_full_path(), "shown": shown})
        return response

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if response.status_code < 400:
            audit.record(request.user, "admin.change" if request.method == "POST" else "admin.view",
                         object_type=_object_type(self.model), object_id=object_id, surface="admin",
                         detail={"path": request.get_full_path()})
        return response

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        response = super().add_view(request, form_url, extra_context)  # type: ignore[misc]
        if request.method == "POST" and response.status_code == 302:  # saved: the form redirects
            audit.record(request.user, "admin.change", object_type=_object_type(self.model), surface="admin",
                         detail={"path": request.get_full_path(), "added": True})
        return response

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        response = super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        if response.status_code < 400:
            deleted = request.method == "POST" and response.status_code == 302
            audit.record(request.user, "admin.change" if deleted else "admin.view",
                         object_type=_object_type(self.model), object_id=object_id, surface="admin",
                         detail={"path": request.get_full_path(), "deleted": deleted})
        return response

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        response = super().history_view(request, object_id, extra_context)  # type: ignore[misc]
        if response.status_code < 400:
            audit.record(request.user, "admin.view", object_type=_object_type(self.model), object_id=object_id,
                         surface="admin", detail={"path": request.get_full_path(), "view": "history"})
        return response


class ReadOnlyAdminMixin:
    """Records kept for the audit trail: nothing is added or deleted from the console."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]  # type: ignore[attr-defined]


@admin.register(AuditEvent)
class AuditEventAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "object_type", "object_id", "surface")
    list_filter = ("action", "surface", "object_type")
    search_fields = ("actor__username", "object_id", "action")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
