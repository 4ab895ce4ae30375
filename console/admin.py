"""The admin console: documents and the review queue, every view of them audited.

Admins see every document and flag here whatever the ACLs say, so each list and each record they open is written
to the audit log (audit/admin.py: AuditedAdminMixin). Answers and feedback are registered by answers/admin.py.
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from answers.admin import FeedbackAdminBase
from answers.models import Feedback
from audit.admin import AuditedAdminMixin
from connectors.admin import DocumentAdmin
from connectors.models import Document
from console.models import FlaggedAnswer

admin.site.site_header = "Citewise console"
admin.site.site_title = "Citewise console"
admin.site.index_title = "Sources, freshness, documents and the review queue"

# Documents stay registered by connectors/admin.py; this swaps in the same admin with auditing.
admin.site.unregister(Document)


@admin.register(Document)
class AuditedDocumentAdmin(AuditedAdminMixin, DocumentAdmin):
    list_display: tuple[str, ...] = (*DocumentAdmin.list_display, "acl_status", "acl_public")
    list_filter: ClassVar[tuple[str, ...]] = (*DocumentAdmin.list_filter, "acl_status", "acl_public")


@admin.register(FlaggedAnswer)
class ReviewQueueAdmin(FeedbackAdminBase):
    """Flags nobody has reviewed yet, oldest first; "Mark reviewed" takes them off the queue."""

    list_filter = ("reason",)
    ordering = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(kind=Feedback.Kind.FLAG, reviewed=False)
