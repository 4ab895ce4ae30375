"""The admin console: documents and the review queue, every view of them audited.

Admins see every document and flag here whatever the ACLs say, so each list and each record they open is written
to the audit log (audit/admin.py: AuditedAdminMixin). Answers and feedback are registered by answers/admin.py.

The review queue holds flags and thumbs-down: each item shows the question, the answer, what it cited (only where the
reviewer may read it), who asked and where; a reviewer takes it ("assign to me"), resolves or dismisses it with a
note, changes how the cited documents rank (retrieval.services.add_ranking_rule) and keeps a corrected answer as an
evaluation case (answers.services.save_evaluation_case). Every one of those actions is audited by the service.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as AuthGroupAdmin
from django.contrib.auth.models import Group as AuthGroup
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from answers import selectors as answer_selectors
from answers import services as answer_services
from answers.admin import FeedbackAdminBase, citations_html, reviewer_principals
from answers.models import EvaluationCase, Feedback
from audit import services as audit
from audit.admin import AuditedAdminMixin, ReadOnlyAdminMixin
from connectors.admin import DocumentAdmin
from connectors.models import Document
from console.models import FlaggedAnswer
from console.selectors import document_access, document_grants, explain_access, find_user, in_words
from core.errors import InvalidInput
from identity.selectors import principals_for
from retrieval import selectors as retrieval_selectors
from retrieval import services as retrieval_services
from retrieval.models import RankingRule
from retrieval.ranking import question_hash
from retrieval.selectors import readable_document_text
from search.types import SearchUnavailable

admin.site.site_header = "Citewise console"
admin.site.site_title = "Citewise console"
admin.site.index_title = "Sources, freshness, documents and the review queue"

# Django's and DRF's own admins, the same with every view and change audited like ours.
for _model, _admin in ((AuthGroup, AuthGroupAdmin), (TokenProxy, TokenAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(f"Audited{_admin.__name__}", (AuditedAdminMixin, _admin), {}))

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
        access = document_grants(document)
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


class QueueFilter(admin.SimpleListFilter):
    """Open items unless asked otherwise: what still needs a reviewer."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("mine", "Assigned to me (open)"), ("resolved", "Resolved"),
                ("dismissed", "Dismissed"), ("all", "All")]

    def value(self) -> str:
        return super().value() or "open"

    def choices(self, changelist: Any):
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        status = Feedback.ReviewStatus
        match self.value():
            case "mine":
                return queryset.filter(review_status=status.OPEN, assignee=request.user)
            case "resolved" | "dismissed" as closed:
                return queryset.filter(review_status=closed)
            case "all":
                return queryset
            case _:
                return queryset.filter(review_status=status.OPEN)


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(Feedback.Kind.FLAG, "Flagged"), (Feedback.Kind.DOWN, "Thumbs-down")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(kind=self.value()) if self.value() else queryset


class SurfaceFilter(admin.SimpleListFilter):
    title = "surface"
    parameter_name = "surface"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(surface, surface.capitalize() if surface != "api" else "API")
                for surface in ("slack", "teams", "web", "api")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(answer__surface=self.value()) if self.value() else queryset


def _question_of(feedback: Feedback) -> str:
    """What a per-question rule is for: the question as it was searched (follow-ups resolved), as search() sees it."""
    return feedback.answer.search_query or feedback.answer.question


@admin.register(FlaggedAnswer)
class ReviewQueueAdmin(FeedbackAdminBase):
    """Flags and thumbs-down, oldest first: assign, resolve or dismiss, re-rank what was cited, keep a correction."""

    list_display = ("question", "kind", "reason", "comment_excerpt", "surface", "asked_by", "assignee",
                    "review_status", "created_at")
    list_filter = (QueueFilter, KindFilter, "reason", SurfaceFilter)
    list_select_related = ("answer", "answer__user", "assignee")
    ordering = ("created_at",)
    fieldsets = (
        ("The answer", {"fields": ("question", "answer_text", "cited_documents")}),
        ("The feedback", {"fields": ("kind", "reason", "comment", "asked_by", "surface", "created_at")}),
        ("Review", {"fields": ("assign_to_me", "assignee", "review_status", "resolution_note", "resolved_by",
                               "resolved_at")}),
        ("Ranking rules for the cited documents", {"fields": ("ranking_rules",)}),
        ("Save a corrected answer as an evaluation case", {"fields": ("evaluation_case",)}),
    )
    fields = None
    editable = ("assignee", "review_status", "resolution_note")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).filter(kind__in=[Feedback.Kind.FLAG, Feedback.Kind.DOWN])

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = [str(field) for _, options in self.fieldsets for field in options["fields"]]
        return [field for field in shown if field not in self.editable]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assignee":
            kwargs["queryset"] = get_user_model().objects.filter(is_active=True, is_staff=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Feedback, form: Any, change: bool) -> None:
        # Through the services, so that who resolved it and when are kept and each change is audited.
        saved = Feedback.objects.get(pk=obj.pk)
        if "assignee" in form.changed_data:
            answer_services.assign_review(saved, obj.assignee, by=request.user)
        if {"review_status", "resolution_note"} & set(form.changed_data):
            answer_services.set_review_status(saved, obj.review_status, by=request.user, note=obj.resolution_note)

    @admin.display(description="surface", ordering="answer__surface")
    def surface(self, obj: Feedback) -> str:
        return obj.answer.surface

    @admin.display(description="take it")
    def assign_to_me(self, obj: Feedback) -> SafeString:
        return _button(reverse("admin:console_flaggedanswer_assign", args=[obj.pk]), "assign", "me", "Assign to me")

    @staticmethod
    def _citations_shown(obj: Feedback) -> list:
        """The answer's citations as the reviewer may see them: asked of the index once per page, though three of
        the page's fields show them."""
        shown = getattr(obj, "_citations_for_reviewer", None)
        if shown is None:
            shown = answer_selectors.citations_for_reviewer(obj.answer.citations, reviewer_principals())
            obj._citations_for_reviewer = shown  # type: ignore[attr-defined]
        return shown

    @admin.display(description="cited documents")
    def cited_documents(self, obj: Feedback) -> SafeString:
        if not obj.answer.citations:
            return citations_html([])
        shown = self._citations_shown(obj)
        return SafeString(render_to_string("admin/console/review/cited_documents.html", {
            "citations": shown, "question": _question_of(obj),
            "ranking_url": reverse("admin:console_flaggedanswer_ranking", args=[obj.pk]),
        }))

    @admin.display(description="rules in force")
    def ranking_rules(self, obj: Feedback) -> SafeString:
        document_ids = {str(c.get("document_id", "")) for c in obj.answer.citations}
        titles = {c.document_id: c.title for c in self._citations_shown(obj) if c.readable}
        this_question = question_hash(_question_of(obj))
        rules = [rule for rule in retrieval_selectors.active_ranking_rules(document_ids=sorted(document_ids))
                 if rule.is_global or rule.question_hash == this_question]
        return SafeString(render_to_string("admin/console/review/ranking_rules.html", {
            "rules": [(rule, titles.get(rule.document_id)) for rule in rules],
            "undo_url": reverse("admin:console_flaggedanswer_undo", args=[obj.pk]),
        }))

    @admin.display(description="correction")
    def evaluation_case(self, obj: Feedback) -> SafeString:
        shown = [c for c in self._citations_shown(obj) if c.readable]
        return SafeString(render_to_string("admin/console/review/evaluation_case.html", {
            "documents": {c.document_id: c.title for c in shown}, "cases": obj.evaluation_cases.all(),
            "asker_email": getattr(obj.answer.user, "email", "") or "",
            "url": reverse("admin:console_flaggedanswer_evaluation_case", args=[obj.pk]),
        }))

    # -- the item page's actions -------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        def view(handler: Any, name: str, route: str) -> Any:
            return path(f"<path:object_id>/{route}/", self.admin_site.admin_view(require_POST(handler)),
                        name=f"console_flaggedanswer_{name}")

        return [view(self.assign_view, "assign", "assign"), view(self.ranking_view, "ranking", "ranking"),
                view(self.undo_view, "undo", "ranking/undo"),
                view(self.evaluation_case_view, "evaluation_case", "evaluation-case"), *super().get_urls()]

    def _item(self, request: HttpRequest, object_id: str) -> Feedback:
        item = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, item):
            raise PermissionDenied
        return item

    def _back(self, item: Feedback) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:console_flaggedanswer_change", args=[item.pk]))

    def _refused(self, request: HttpRequest, item: Feedback, action: str, why: str) -> HttpResponseRedirect:
        audit.record(request.user, "review.refused", object_type="answers.feedback", object_id=item.pk,
                     surface="admin", detail={"action": action, "why": why, "post": {
                         key: request.POST.get(key, "")[:200] for key in ("rule", "case_documents")}})
        self.message_user(request, why, messages.ERROR)
        return self._back(item)

    def assign_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self._item(request, object_id)
        answer_services.assign_review(item, request.user, by=request.user)
        self.message_user(request, "Assigned to you.", messages.SUCCESS)
        return self._back(item)

    def ranking_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self._item(request, object_id)
        document_id, effect, scope = [*request.POST.get("rule", "").split("|"), "", "", ""][:3]
        cited = {c.document_id for c in answer_selectors.citations_for_reviewer(item.answer.citations,
                                                                                  principals_for(request.user)) if c.readable}
        if document_id not in cited:
            # Only a document this answer cited and the reviewer may read: what they cannot see they cannot judge.
            return self._refused(request, item, "ranking", "That is not a document of this answer you may read.")
        try:
            retrieval_services.add_ranking_rule(
                document_id, effect, user=request.user, question=_question_of(item) if scope == "question" else "",
                note=request.POST.get("ranking_note", ""), source_feedback=item)
        except InvalidInput as exc:
            return self._refused(request, item, "ranking", str(exc))
        else:
            where = "for this question" if scope == "question" else "everywhere"
            self.message_user(request, f"{effect.capitalize()}d {where}.", messages.SUCCESS)
        return self._back(item)

    def undo_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self._item(request, object_id)
        rule = get_object_or_404(RankingRule, pk=request.POST.get("rule_id") or 0, removed_at=None)
        retrieval_services.remove_ranking_rule(rule, user=request.user)
        self.message_user(request, "Rule undone.", messages.SUCCESS)
        return self._back(item)

    def evaluation_case_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self._item(request, object_id)
        readable = {c.document_id for c in answer_selectors.citations_for_reviewer(item.answer.citations,
                                                                                     principals_for(request.user))
                    if c.readable}
        chosen = request.POST.getlist("case_documents")
        try:
            if not set(chosen) <= readable:
                raise answer_services.ReviewError("choose among the cited documents you may read")
            case = answer_services.save_evaluation_case(
                item, by=request.user, correct_answer=request.POST.get("case_answer", ""),
                must_contain=request.POST.get("case_facts", "").splitlines(), document_ids=chosen,
                asker_email=request.POST.get("case_asker_email", ""))
        except InvalidInput as exc:
            return self._refused(request, item, "evaluation_case", f"Not saved: {exc}")
        else:
            self.message_user(request, f"Saved as evaluation case {case.pk}.", messages.SUCCESS)
        return self._back(item)


def _button(url: str, name: str, value: str, label: str) -> SafeString:
    return SafeString(render_to_string("admin/console/review/button.html",
                                       {"url": url, "name": name, "value": value, "label": label}))


@admin.register(RankingRule)
class RankingRuleAdmin(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every ranking rule, in force or undone; added and undone from review queue items."""

    list_display = ("effect", "document_id", "scope", "note", "created_by", "created_at", "removed_by", "removed_at")
    list_filter = ("effect", "removed_at")
    search_fields = ("document_id", "question", "note")
    list_select_related = ("created_by", "removed_by")

    @admin.display(description="scope")
    def scope(self, obj: RankingRule) -> str:
        return "everywhere" if obj.is_global else f"for “{obj.question}”"


@admin.register(EvaluationCase)
class EvaluationCaseAdmin(AuditedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Corrected answers saved from review queue items: asked by `evaluate_answers --include-reviewed`."""

    list_display = ("question", "asker_email", "expected_doc_ids", "must_contain", "created_by", "created_at")
    search_fields = ("question", "correct_answer", "asker_email")
    list_select_related = ("created_by",)
