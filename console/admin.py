"""The admin console: documents and the review queue, every view of them audited.

Admins see every document and flag here whatever the ACLs say, so each list and each record they open is written
to the audit log (audit/admin.py: AuditedAdminMixin). Answers and feedback are registered by answers/admin.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from answers.admin import FeedbackAdminBase
from answers.models import Feedback
from audit import services as audit
from audit.admin import AuditedAdminMixin
from connectors.admin import DocumentAdmin
from connectors.models import Document
from console.models import FlaggedAnswer
from console.selectors import document_access, explain_access, find_user, in_words
from retrieval.selectors import readable_document_text
from search.types import SearchUnavailable

admin.site.site_header = "Citewise console"
admin.site.site_title = "Citewise console"
admin.site.index_title = "Sources, freshness, documents and the review queue"

# Documents stay registered by connectors/admin.py; this swaps in the same admin with auditing.
admin.site.unregister(Document)


@admin.register(Document)
class AuditedDocumentAdmin(AuditedAdminMixin, DocumentAdmin):
    """A document: its status, its ACL in plain words, its chunks as indexed; who can read it and why a given
    user cannot (its own page, every look audited)."""

    list_display: tuple[str, ...] = (*DocumentAdmin.list_display, "acl_status", "acl_public")
    list_filter: ClassVar[tuple[str, ...]] = (*DocumentAdmin.list_filter, "acl_status", "acl_public")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "access", "permissions_in_words", "indexed_text"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        shown_first, shown_last = ("title", "access", "permissions_in_words"), ("indexed_text",)
        rest = [name for name in super().get_fields(request, obj) if name not in (*shown_first, *shown_last)]
        return [*shown_first, *rest, *shown_last]

    @admin.display(description="Who can read it")
    def access(self, document: Document) -> str:
        links = [format_html('<a href="{}">Who can read this? Why can’t a user see it?</a>',
                             reverse("admin:connectors_document_access", args=[quote(document.pk)]))]
        if document.url.split(":", 1)[0].lower() in ("http", "https"):
            links.append(format_html('<a href="{}" rel="noreferrer" target="_blank">Open at the source</a>',
                                     document.url))
        return format_html_join(" · ", "{}", ((link,) for link in links))

    @admin.display(description="Permissions")
    def permissions_in_words(self, document: Document) -> str:
        access = document_access(document, shown=0)
        if access.nobody_because:
            return f"Nobody may read it: {access.nobody_because}."
        if access.public:
            return "Public: every signed-in user may read it."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} <code>{}</code></li>",
                                                            ((words, principal) for principal, words in access.grants)))

    @admin.display(description="Indexed text")
    def indexed_text(self, document: Document) -> str:
        # Read as its own readers would: the index's ACL filter applies to the console too.
        readers = frozenset(document.acl_principals or [])
        try:
            shown = readable_document_text(document.pk, readers)
        except SearchUnavailable as exc:
            return f"The search index is unavailable: {exc}"
        if shown is None:
            return "Not in the index for anyone."
        return format_html("<ol>{}</ol>", format_html_join(
            "", '<li value="{}"><strong>{}</strong><pre style="white-space:pre-wrap">{}</pre></li>',
            ((part.ordinal, " › ".join(part.heading_path), part.text) for part in shown.sections)))

    def get_urls(self) -> list:
        return [path("<path:object_id>/access/", self.admin_site.admin_view(self.access_view),
                     name="connectors_document_access"), *super().get_urls()]

    def access_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        document = self.get_object(request, unquote(object_id))
        if document is None or not self.has_view_permission(request, document):
            raise Http404("unknown document")
        asked = request.GET.get("user", "")[:200]
        user = find_user(asked) if asked else None
        explanation = explain_access(document, user) if user is not None else None
        access = document_access(document)
        audit.record(request.user, "document.access_check", object_type="connectors.document", object_id=document.pk,
                     surface="admin", detail={"path": request.get_full_path(), "readers": access.readers_total,
                                              "user": asked, "found": user is not None,
                                              "can_read": explanation.can_read if explanation else None})
        names = {principal: words for principal, words in access.grants}
        return TemplateResponse(request, "console/document_access.html", {
            **self.admin_site.each_context(request), "title": f"Who can read “{document}”", "document": document,
            "opts": self.model._meta, "access": access, "asked": asked, "user_found": user,
            "explanation": explanation, "grants": names,
            "readers": [(reader, in_words(route)) for reader, route in access.readers],
        })


@admin.register(FlaggedAnswer)
class ReviewQueueAdmin(FeedbackAdminBase):
    """Flags nobody has reviewed yet, oldest first; "Mark reviewed" takes them off the queue."""

    list_filter = ("reason",)
    ordering = ("created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(kind=Feedback.Kind.FLAG, reviewed=False)
