"""The admin's view of answers and feedback: read-only, every list and record opened written to the audit log.

Admins see every answer and piece of feedback here whoever asked, so each view is audited (audit/admin.py:
AuditedAdminMixin). What the answers cited is shown only where the admin's own principals may read it now
(answers.selectors.citations_for_reviewer): being an admin is no licence to read a document. The review queue of
flags and thumbs-down is the console's (console/admin.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from answers import selectors
from answers.models import Answer, Feedback
from audit.admin import AuditedAdminMixin, ReadOnlyAdminMixin
from identity.selectors import principals_for

# The principals of the admin whose request is being rendered: display methods get the object, not the request.
# Unset (a display method called outside a request) means no principals: only public documents are shown.
_reviewer_principals: ContextVar[frozenset[str]] = ContextVar("reviewer_principals", default=frozenset())


def reviewer_principals() -> frozenset[str]:
    """The principals of the admin whose page is being rendered (no principals outside a ReviewerPrincipalsMixin view)."""
    return _reviewer_principals.get()


@contextmanager
def reviewing_as(request: HttpRequest) -> Iterator[None]:
    token = _reviewer_principals.set(principals_for(request.user))
    try:
        yield
    finally:
        _reviewer_principals.reset(token)


class ReviewerPrincipalsMixin:
    """Render lists and records with the signed-in admin's principals in reach of citations_html."""

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        with reviewing_as(request):
            response = super().changelist_view(request, extra_context)  # type: ignore[misc]
            return _rendered(response)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        with reviewing_as(request):
            response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
            return _rendered(response)


def _rendered(response: HttpResponse) -> HttpResponse:
    # A TemplateResponse renders after the view returns, when the principals would be out of reach.
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return response


def citations_html(citations: list[dict]) -> SafeString:
    """An answer's citations, each one's title, link and snippet only if the reviewer may read its document now."""
    if not citations:
        return SafeString("—")
    shown = selectors.citations_for_reviewer(citations, reviewer_principals())
    return SafeString(render_to_string("admin/answers/citations.html", {"citations": shown}))


def _mark_resolved(feedback: QuerySet, user: Any) -> int:
    return feedback.filter(review_status=Feedback.ReviewStatus.OPEN).update(
        review_status=Feedback.ReviewStatus.RESOLVED, resolved_by=user, resolved_at=timezone.now())


class ValuesWithBlankNamed(admin.AllValuesFieldListFilter):
    """Django's filter by each value in use, the blank one named: an empty link text is no link to a screen reader."""

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            yield {**choice, "display": "(none)"} if not str(choice["display"]).strip() else choice


class FeedbackInline(admin.TabularInline):
    model = Feedback
    extra = 0
    can_delete = False
    fields = ("kind", "reason", "comment", "user", "review_status", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Answer)
class AnswerAdmin(ReviewerPrincipalsMixin, AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("short_question", "status", "refused", "surface", "user", "open_flags", "created_at")
    list_filter = ("status", "refused", "surface", ("composer", ValuesWithBlankNamed))
    search_fields = ("question", "text", "user__username")
    date_hierarchy = "created_at"
    inlines = [FeedbackInline]
    actions = ["mark_flags_resolved"]
    fields = ("question", "search_query", "text", "citation_list", "status", "refused", "error", "user", "surface",
              "conversation", "composer", "prompt_version", "fallback_reason", "retrieved", "timings",
              "input_tokens", "output_tokens", "cost_usd", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "citation_list"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user").annotate(
            _open_flags=Count("feedback", filter=Q(feedback__kind=Feedback.Kind.FLAG,
                                                                feedback__review_status=Feedback.ReviewStatus.OPEN)))

    @admin.display(description="question")
    def short_question(self, obj: Answer) -> str:
        return Truncator(obj.question).chars(80)

    @admin.display(description="open flags", ordering="_open_flags")
    def open_flags(self, obj: Answer) -> int:
        return getattr(obj, "_open_flags", 0)

    @admin.display(description="citations")
    def citation_list(self, obj: Answer) -> str:
        return citations_html(obj.citations)

    @admin.action(description="Resolve their open flags", permissions=["change"])
    def mark_flags_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = _mark_resolved(Feedback.objects.filter(answer__in=queryset, kind=Feedback.Kind.FLAG), request.user)
        self.message_user(request, f"{count} flag(s) resolved.", messages.SUCCESS)


class FeedbackAdminBase(ReviewerPrincipalsMixin, AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display: tuple[str, ...] = ("question", "answer_excerpt", "kind", "reason", "comment_excerpt", "user",
                                     "review_status", "created_at")
    list_select_related: ClassVar[tuple[str, ...]] = ("answer", "user")
    search_fields = ("comment", "answer__question", "answer__text", "user__username")
    actions = ["mark_resolved"]
    fields: ClassVar[tuple[str, ...] | None] = (
        "question", "answer_text", "citation_list", "kind", "reason", "comment", "user", "asked_by", "review_status",
        "assignee", "resolution_note", "resolved_by", "resolved_at", "answer", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "question", "answer_text", "citation_list", "asked_by"]

    @admin.display(description="question", ordering="answer__question")
    def question(self, obj: Feedback) -> str:
        return obj.answer.question

    @admin.display(description="answer")
    def answer_excerpt(self, obj: Feedback) -> str:
        return Truncator(obj.answer.text).chars(120)

    @admin.display(description="answer")
    def answer_text(self, obj: Feedback) -> str:
        return obj.answer.text

    @admin.display(description="comment")
    def comment_excerpt(self, obj: Feedback) -> str:
        return Truncator(obj.comment).chars(120)

    @admin.display(description="citations")
    def citation_list(self, obj: Feedback) -> str:
        return citations_html(obj.answer.citations)

    @admin.display(description="asked by")
    def asked_by(self, obj: Feedback) -> str:
        return str(obj.answer.user or "—")

    @admin.action(description="Resolve", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = _mark_resolved(queryset, request.user)
        self.message_user(request, f"{count} resolved.", messages.SUCCESS)


@admin.register(Feedback)
class FeedbackAdmin(FeedbackAdminBase):
    list_filter = ("kind", "review_status", "reason")
