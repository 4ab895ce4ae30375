"""The audit log: who looked at or changed what, and every question asked."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who looked at or changed what, and every question asked: appended, never edited or deleted in the console.

    `action` is one of "ask", "admin.view", "admin.change", "document.view", "document.open", "account.status",
    "membership.delete", "membership.revoke", "membership.restore"; `object_type` is "app_label.model" (e.g.
    "answers.answer"), `object_id` that object's primary key.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="audit_events")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    surface = models.CharField(max_length=32, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["action", "created_at"]), models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        target = f" {self.object_type}:{self.object_id}" if self.object_type else ""
        return f"{self.actor or 'anonymous'} {self.action}{target}"
