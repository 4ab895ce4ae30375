"""The admin's view of answers and feedback: read-only, every list and record opened written to the audit log.

Admins see every answer and piece of feedback here whoever asked, so each view is audited (audit/admin.py:
AuditedAdminMixin). The review queue of unreviewed flags is the console's (console/admin.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from answers.models import Answer, Feedback
from audit.admin import AuditedAdminMixin, ReadOnlyAdminMixin


def _citations_html(citations: list[dict]) -> str:
    if not citations:
        return "—"
    return format_html("<ol>{}</ol>", format_html_join(
        "", '<li value="{}">{} <a href="{}" rel="noreferrer">{}</a><br><small>{}</small></li>',
        ((c.get("number", ""), c.get("title", ""), c.get("url", ""), c.get("url", ""), c.get("snippet", ""))
         for c in citations),
    ))


def _mark_reviewed(feedback: QuerySet) -> int:
    return feedback.filter(reviewed=False).update(reviewed=True)


class ValuesWithBlankNamed(admin.AllValuesFieldListFilter):
    """Django's filter by each value in use, the blank one named: an empty link text is no link to a screen reader."""

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            yield {**choice, "display": "(none)"} if not str(choice["display"]).strip() else choice


class FeedbackInline(admin.TabularInline):
    model = Feedback
    extra = 0
    can_delete = False
    fields = ("kind", "reason", "comment", "user", "reviewed", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Answer)
class AnswerAdmin(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("short_question", "status", "refused", "surface", "user", "open_flags", "created_at")
    list_filter = ("status", "refused", "surface", ("composer", ValuesWithBlankNamed))
    search_fields = ("question", "text", "user__username")
    date_hierarchy = "created_at"
    inlines = [FeedbackInline]
    actions = ["mark_flags_reviewed"]
    fields = ("question", "search_query", "text", "citation_list", "status", "refused", "error", "user", "surface",
              "conversation", "composer", "prompt_version", "fallback_reason", "retrieved", "timings",
              "input_tokens", "output_tokens", "cost_usd", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "citation_list"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("user").annotate(
            _open_flags=Count("feedback", filter=Q(feedback__kind=Feedback.Kind.FLAG, feedback__reviewed=False)))

    @admin.display(description="question")
    def short_question(self, obj: Answer) -> str:
        return Truncator(obj.question).chars(80)

    @admin.display(description="open flags", ordering="_open_flags")
    def open_flags(self, obj: Answer) -> int:
        return getattr(obj, "_open_flags", 0)

    @admin.display(description="citations")
    def citation_list(self, obj: Answer) -> str:
        return _citations_html(obj.citations)

    @admin.action(description="Mark their flags reviewed", permissions=["change"])
    def mark_flags_reviewed(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = _mark_reviewed(Feedback.objects.filter(answer__in=queryset, kind=Feedback.Kind.FLAG))
        self.message_user(request, f"{count} flag(s) marked reviewed.", messages.SUCCESS)


class FeedbackAdminBase(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("question", "answer_excerpt", "kind", "reason", "comment_excerpt", "user", "reviewed",
                    "created_at")
    list_select_related = ("answer", "user")
    search_fields = ("comment", "answer__question", "answer__text", "user__username")
    actions = ["mark_reviewed"]
    fields = ("question", "answer_text", "citation_list", "kind", "reason", "comment", "user", "asked_by",
              "reviewed", "answer", "created_at")

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
        return _citations_html(obj.answer.citations)

    @admin.display(description="asked by")
    def asked_by(self, obj: Feedback) -> str:
        return str(obj.answer.user or "—")

    @admin.action(description="Mark reviewed", permissions=["change"])
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = _mark_reviewed(queryset)
        self.message_user(request, f"{count} marked reviewed.", messages.SUCCESS)


@admin.register(Feedback)
class FeedbackAdmin(FeedbackAdminBase):
    list_filter = ("kind", "reviewed", "reason")
