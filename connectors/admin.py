"""The console's connector pages: sources (a typed form per kind, a connection test, actions), their runs, and the
freshness dashboard. Every change and action is written to the audit log (audit.services.record)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from celery.result import EagerResult
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Count, QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from pydantic import ValidationError

from audit import services as audit
from audit.admin import AuditedAdminMixin
from connectors import config_forms, selectors, services, tasks
from connectors.models import Document, Source, SourceFreshness, SyncRun
from connectors.runs import SyncInProgress
from connectors.secrets import SecretsUnavailable, mask
from connectors.sources import MODULES, source_module, validated_config
from core.errors import InvalidInput
from search.types import SearchUnavailable

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec


def _not_deleted(what: str, exc: SearchUnavailable) -> str:
    return (f"{what} was not deleted: the search index could not confirm removing its documents ({exc}). "
            "Nothing was deleted; try again once search is available.")


class IndexFirstDeleteMixin:
    """Deleting here removes the documents from the search index first (connectors/signals.py). If the index
    cannot confirm, the whole delete is rolled back and the admin is told so, rather than shown an error page."""

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc]
        except SearchUnavailable as exc:
            opts = self.model._meta  # type: ignore[attr-defined]
            self.message_user(request, _not_deleted(f"The {opts.verbose_name} {object_id}", exc),  # type: ignore[attr-defined]
                              messages.ERROR)
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                                                args=[quote(object_id)]))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        if "delete_selected" in actions:
            action, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_index_first(action), name, description)
        return actions


def _index_first(action: Callable) -> Callable:
    def delete_selected(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
        try:
            # One transaction, so the log entries of a delete that did not happen go too.
            with transaction.atomic(using=router.db_for_write(queryset.model)):
                return action(modeladmin, request, queryset)
        except SearchUnavailable as exc:
            modeladmin.message_user(request, _not_deleted(f"The selected {queryset.model._meta.verbose_name_plural}",
                                                          exc), messages.ERROR)
            return None

    return delete_selected


# -- the typed source form -------------------------------------------------------------------------------------------

LOCATION_HELP = {
    "filesystem": "The folder on this server to read (its .citewise-acl.json says who may read what).",
    "beir": "The BEIR corpus file (evaluation only).",
    "confluence": "The site's URL, e.g. https://corp.atlassian.net (Data Center: with its context path).",
    "sharepoint": "A label for the tenant, e.g. https://corp.sharepoint.com.",
    "google_drive": "A label for the organisation, e.g. https://drive.google.com/corp.example.",
    "slack": "The workspace's URL, e.g. https://corp.slack.com (a label).",
    "web": "Where the crawl starts, e.g. https://intranet.corp.example/.",
}
SCHEDULE_FIELDS = ("paused", "freshness_target_s", "incremental_interval_s", "full_interval_s", "prune_interval_s",
                   "permissions_interval_s", "groups_interval_s")
BOOKKEEPING_FIELDS = ("health", "credentials", "created_at", "last_synced_at", "permissions_synced_at",
                      "mass_deletion_confirmed", "health_alerted", "sync_state", "sync_cursor")


class SourceForm(forms.ModelForm):
    """A source of one kind (`kind`, set by `source_form_for`): its settings as typed fields, its credentials
    write-only; the config is checked by the kind's schema (and services.check_config) before anything is saved."""

    kind: ClassVar[str] = ""

    class Meta:
        model = Source
        fields = ("name", "location", "index_name", "search_backend", *SCHEDULE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.kind = self.kind
        self.fields["location"].help_text = LOCATION_HELP.get(self.kind, "")
        self.fields["freshness_target_s"].help_text = (
            "Seconds since the last successful sync after which the source is stale; blank: "
            "CITEWISE_FRESHNESS_TARGET_S.")
        self.stored_secrets: dict[str, str] | None = {}
        if self.instance.pk and self.instance.encrypted_secrets:
            try:
                self.stored_secrets = selectors.source_secrets(self.instance)
            except SecretsUnavailable:
                self.stored_secrets = None
        # Declared on the class (source_form_for); built again here to say what is stored, masked.
        self.fields.update(config_forms.secret_fields(self.kind, self.stored_secrets))
        if not self.is_bound:
            self.initial.update(config_forms.config_initial(self.kind, self.instance.config or {}))
        self.secrets_to_store: dict[str, str] | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        config = config_forms.config_from_form(self.kind, cleaned)
        try:
            services.check_config(config)
            validated_config(self.kind, config)
        except InvalidInput as exc:
            if isinstance(exc.__cause__, ValidationError):
                for field, message in config_forms.schema_errors(self.kind, exc.__cause__):
                    self.add_error(field if field in self.fields else None, message)
            else:
                self.add_error(None, exc.user_message)
        self.instance.config = config
        stored = self.stored_secrets or {}
        secrets = config_forms.secrets_from_form(self.kind, cleaned, stored)
        self.secrets_to_store = secrets if secrets != stored else None
        return cleaned

    def connection_secrets(self) -> dict[str, str]:
        """The credentials a connection test uses: what the form says, over what is stored."""
        return self.secrets_to_store if self.secrets_to_store is not None else dict(self.stored_secrets or {})

    def changed_secrets(self) -> list[str]:
        stored = self.stored_secrets or {}
        new = self.secrets_to_store if self.secrets_to_store is not None else stored
        return sorted(name for name in {*stored, *new} if stored.get(name) != new.get(name))


def source_form_for(kind: str) -> type[SourceForm]:
    """SourceForm with the fields of this kind's Config."""
    return type(f"{kind.title().replace('_', '')}SourceForm", (SourceForm,),
                {"kind": kind, **config_forms.config_fields(kind), **config_forms.secret_fields(kind, {})})


def _kind_label(kind: str) -> str:
    return str(dict(Source.Kind.choices).get(kind, kind))


# -- actions: one path for the list's actions and the change page's buttons -------------------------------------------

# name: (what is audited, the sync kind queued or None, what the admin is told it does)
SOURCE_ACTIONS: dict[str, tuple[str, str | None, str]] = {
    "sync": ("source.sync", "incremental", "Sync now"),
    "full": ("source.full_resync", "full", "Full resync"),
    "permissions": ("source.permission_sync", "permissions", "Permission sync"),
    "pause": ("source.pause", None, "Pause"),
    "resume": ("source.resume", None, "Resume"),
}


def _run_summary(run: SyncRun) -> str:
    counts = ", ".join(f"{name} {getattr(run, name)}" for name in
                       ("seen", "added", "updated", "unchanged", "deleted", "failed"))
    if run.kind == SyncRun.Kind.PERMISSIONS:
        counts = f"checked {run.seen}, changed {run.permission_changes}"
    return f"{run.get_kind_display()} sync of {run.source}: {run.get_state_display().lower()} ({counts})."


def queue_sync(request: HttpRequest, source: Source, kind: str) -> tuple[int, str]:
    """Queue one run (tasks.run_sync, as the schedule does); with eager tasks it has run by the time this returns,
    and what it did is what the admin is told."""
    try:
        result = tasks.run_sync.delay(source.pk, kind, "console")
    except SyncInProgress as exc:
        return messages.WARNING, f"{source}: {exc}"
    except Exception as exc:  # noqa: BLE001 (the run records the failure; the admin is told in words)
        failed = SyncRun.objects.filter(source=source).first()
        if failed is not None and failed.state == SyncRun.State.FAILED:
            return messages.ERROR, f"{_run_summary(failed)} {(failed.errors or [{}])[-1].get('error', exc)}"
        return messages.ERROR, f"The {kind} sync of {source} failed: {exc}"
    # Only an eager run's outcome can be read here: a queued one's is the worker's (and there may be no result backend).
    if not isinstance(result, EagerResult):
        return messages.INFO, f"{kind.capitalize()} sync of {source} queued; its run appears under Sync runs."
    outcome = result.result or {}
    if "skipped" in outcome:
        return messages.WARNING, f"{source}: skipped ({outcome['skipped']})."
    run = SyncRun.objects.filter(pk=int(outcome.get("run_id") or 0)).first()
    if run is None:
        return messages.INFO, f"{kind.capitalize()} sync of {source} done."
    level = messages.SUCCESS if run.state == SyncRun.State.SUCCEEDED else messages.WARNING
    return level, _run_summary(run)


def apply_source_action(request: HttpRequest, sources: Sequence[Source], action: str) -> None:
    what, kind, _ = SOURCE_ACTIONS[action]
    for source in sources:
        audit.record(request.user, what, object_type="connectors.source", object_id=source.pk, surface="admin",
                     detail={"source": source.name, **({"kind": kind} if kind else {})})
        if kind is not None:
            level, message = queue_sync(request, source, kind)
            messages.add_message(request, level, message)
        else:
            Source.objects.filter(pk=source.pk).update(paused=action == "pause")
            messages.success(request, f"{source} {'paused: scheduled syncs stop' if action == 'pause' else 'resumed'}.")


def _list_action(name: str) -> Callable:
    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        apply_source_action(request, list(queryset), name)

    action.__name__ = f"{name}_action"
    return admin.action(description=f"{SOURCE_ACTIONS[name][2]} the selected sources")(action)


def health_badge(health: str, reason: str = "") -> str:
    """Text and colour: the word says it, the colour only repeats it."""
    return format_html('<span class="health-badge health-{}" title="{}">{}</span>', health, reason, health.capitalize())


@admin.register(Source)
class SourceAdmin(AuditedAdminMixin, IndexFirstDeleteMixin, admin.ModelAdmin):
    form = SourceForm
    list_display = ("name", "kind", "location", "health", "paused", "last_synced_at", "runs_link")
    list_filter = ("kind", "paused")
    search_fields = ("name", "location")
    actions = (_list_action("sync"), _list_action("full"), _list_action("permissions"), _list_action("pause"),
               _list_action("resume"), "confirm_mass_deletion")
    change_form_template = "admin/connectors/source/change_form.html"
    change_list_template = "admin/connectors/source/change_list.html"
    delete_confirmation_template = "admin/connectors/source/delete_confirmation.html"
    delete_selected_confirmation_template = "admin/connectors/source/delete_selected_confirmation.html"

    # -- the form, per kind
    def _requested_kind(self, request: HttpRequest) -> str | None:
        kind = request.GET.get("kind") or request.POST.get("kind") or ""
        return kind if kind in MODULES and kind in Source.Kind.values else None

    def get_form(self, request: HttpRequest, obj: Source | None = None, change: bool = False, **kwargs: Any
                 ) -> type[forms.ModelForm]:
        kind = obj.kind if obj is not None else self._requested_kind(request)
        if kind is None:
            raise Http404("choose a kind of source first")
        kwargs["form"] = source_form_for(kind)
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Source | None = None) -> _FieldsetSpec:
        kind = obj.kind if obj is not None else self._requested_kind(request) or ""
        fields = config_forms.config_fields(kind) if kind else {}
        secrets = source_module(kind).SECRETS if kind else ()
        fieldsets: list = [
            (None, {"fields": ["name", *(["kind"] if obj is not None else []), "location"]}),
            (f"{_kind_label(kind)} settings", {"fields": list(fields)}),
        ]
        if secrets:
            fieldsets.append(("Credentials", {
                "fields": [name for secret in secrets for name in (f"{config_forms.SECRET_PREFIX}{secret}",
                                                                   f"{config_forms.SECRET_PREFIX}{secret}"
                                                                   f"{config_forms.CLEAR_SUFFIX}")],
                "description": "Stored encrypted; never shown again. Leave blank to keep what is stored."}))
        fieldsets.append(("Schedule and freshness", {"fields": list(SCHEDULE_FIELDS)}))
        fieldsets.append(("Index", {"fields": ["index_name", "search_backend"], "classes": ["collapse"]}))
        if obj is not None:
            fieldsets.append(("Sync bookkeeping (read-only)", {"fields": list(BOOKKEEPING_FIELDS)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Source | None = None) -> list[str]:
        return ["kind", *BOOKKEEPING_FIELDS] if obj is not None else []

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        kind = self._requested_kind(request)
        if kind is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
            kinds = [(value, label, (source_module(value).__doc__ or "").strip().split("\n\n")[0])
                     for value, label in Source.Kind.choices if value in MODULES]
            return TemplateResponse(request, "admin/connectors/source/pick_kind.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Add a source: its kind",
                "kinds": kinds})
        return super().add_view(request, form_url, {**(extra_context or {}), "kind": kind,
                                                    "title": f"Add a source: {_kind_label(kind)}"})

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict | None = None) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if object_id is not None:
            source = self.get_object(request, unquote(object_id))
            if source is not None:
                extra_context.update(self._change_page_context(source))
        if request.method == "POST" and "_test_connection" in request.POST:
            return self._test_connection_view(request, object_id, form_url, extra_context)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _change_page_context(self, source: Source) -> dict[str, Any]:
        documents = Document.objects.filter(source=source)
        return {"freshness": selectors.source_freshness(source), "recent_runs": SyncRun.objects.filter(source=source)[:10],
                "runs_url": f"{reverse('admin:connectors_syncrun_changelist')}?source__id__exact={source.pk}",
                "source_actions": [(name, label) for name, (_, _, label) in SOURCE_ACTIONS.items()
                                   if not (name == "pause" and source.paused) and not (name == "resume" and not source.paused)],
                "document_count": documents.count()}

    def _test_connection_view(self, request: HttpRequest, object_id: str | None, form_url: str,
                              extra_context: dict[str, Any]) -> HttpResponse:
        """Check the form's settings and credentials against the source, saving nothing; the page comes back as it
        was submitted, with what the check found."""
        obj = self.get_object(request, unquote(object_id)) if object_id else None
        add = obj is None
        if object_id and obj is None:
            raise Http404
        if (add and not self.has_add_permission(request)) or (obj is not None and
                                                               not self.has_change_permission(request, obj)):
            raise PermissionDenied
        fieldsets = self.get_fieldsets(request, obj)
        form = self.get_form(request, obj, change=not add, fields=flatten_fieldsets(fieldsets))(
            request.POST, request.FILES, instance=obj)
        if not isinstance(form, SourceForm):
            raise TypeError(f"SourceAdmin checks connections through a SourceForm, not {type(form).__name__}")
        check = None
        if form.is_valid():
            check = services.check_connection(form.kind, form.cleaned_data["location"], form.instance.config,
                                              form.connection_secrets())
            audit.record(request.user, "source.test_connection", object_type="connectors.source",
                         object_id=object_id or "", surface="admin",
                         detail={"kind": form.kind, "location": form.cleaned_data["location"], "ok": check.ok})
        admin_form = helpers.AdminForm(form, list(fieldsets), {},  # type: ignore[arg-type]
                                       self.get_readonly_fields(request, obj), model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add a source: {_kind_label(form.kind)}" if add else f"Change source: {obj}",
            "subtitle": None, "adminform": admin_form, "object_id": object_id, "original": obj, "is_popup": False,
            "to_field": None, "media": self.media + admin_form.media, "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []), "preserved_filters": self.get_preserved_filters(request),
            "connection_check": check, "kind": form.kind, **extra_context,
        }
        return self.render_change_form(request, context, add=add, change=not add, obj=obj, form_url=form_url)

    def save_model(self, request: HttpRequest, obj: Source, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not isinstance(form, SourceForm):
            raise TypeError(f"SourceAdmin saves through a SourceForm, not {type(form).__name__}")
        changed_secrets = form.changed_secrets()
        if form.secrets_to_store is not None:
            try:
                services.set_source_secrets(obj, form.secrets_to_store)
            except SecretsUnavailable as exc:
                messages.error(request, f"The credentials were not stored: {exc}")
                changed_secrets = []
        audit.record(request.user, "source.change" if change else "source.add", object_type="connectors.source",
                     object_id=obj.pk, surface="admin",
                     detail={"kind": obj.kind, "fields": sorted(f for f in form.changed_data
                                                                if not f.startswith(config_forms.SECRET_PREFIX)),
                             "credentials_changed": changed_secrets})

    # -- actions and their page buttons
    def get_urls(self) -> list:
        return [path("<path:object_id>/run/<str:action>/", self.admin_site.admin_view(self.source_action_view),
                     name="connectors_source_action"), *super().get_urls()]

    def source_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        source = self.get_object(request, unquote(object_id))
        if source is None or action not in SOURCE_ACTIONS:
            raise Http404
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        apply_source_action(request, [source], action)
        return HttpResponseRedirect(reverse("admin:connectors_source_change", args=[quote(source.pk)]))

    @admin.action(description="Confirm held deletions (the next full or prune run may delete what is gone)")
    def confirm_mass_deletion(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            services.confirm_mass_deletion(source)
            audit.record(request.user, "source.confirm_deletions", object_type="connectors.source",
                         object_id=source.pk, surface="admin", detail={"source": source.name})
        self.message_user(request, f"Deletions confirmed for {queryset.count()} source(s).", messages.WARNING)

    # -- delete: the confirmation says what leaves the index, and the delete is audited
    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        ids = [obj.pk for obj in objs]
        removal = Document.objects.filter(source_id__in=ids).aggregate(documents=Count("pk"), chunks=Sum("chunk_count"))
        request.citewise_index_removal = {  # type: ignore[attr-defined]
            "documents": removal["documents"], "chunks": removal["chunks"] or 0}
        return super().get_deleted_objects(objs, request)

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        pk, name = obj.pk, obj.name
        super().delete_model(request, obj)
        audit.record(request.user, "source.delete", object_type="connectors.source", object_id=pk, surface="admin",
                     detail={"source": name})

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        deleted = list(queryset.values_list("pk", "name"))
        super().delete_queryset(request, queryset)
        for pk, name in deleted:
            audit.record(request.user, "source.delete", object_type="connectors.source", object_id=pk,
                         surface="admin", detail={"source": name})

    # -- columns and read-only fields
    @admin.display(description="Health")
    def health(self, source: Source) -> str:
        if source.pk is None:
            return "-"
        entry = selectors.source_freshness(source)
        return health_badge(entry.health, entry.reason)

    @admin.display(description="Runs")
    def runs_link(self, source: Source) -> str:
        return format_html('<a href="{}?source__id__exact={}">Runs</a>', reverse("admin:connectors_syncrun_changelist"),
                           source.pk)

    @admin.display(description="Credentials")
    def credentials(self, source: Source) -> str:
        try:
            stored = selectors.source_secrets(source)
        except SecretsUnavailable as exc:
            return exc.user_message
        return ", ".join(f"{name}: {mask(value)}" for name, value in sorted(stored.items())) or "none"


@admin.register(Document)
class DocumentAdmin(IndexFirstDeleteMixin, admin.ModelAdmin):
    list_display: tuple[str, ...] = ("title", "source", "mime_type", "status", "chunk_count", "source_modified_at",
                                     "indexed_at")
    list_filter: ClassVar[tuple[str, ...]] = ("status", "mime_type", "source")
    search_fields = ("title", "external_id", "error")
    readonly_fields = [f.name for f in Document._meta.fields]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        services.delete_documents(queryset)  # one index call for all, not one per document


def rerun(request: HttpRequest, runs: Sequence[SyncRun]) -> None:
    """Run again what these runs ran: the same kind, the same source."""
    for run in runs:
        audit.record(request.user, "source.rerun", object_type="connectors.source", object_id=run.source_id,
                     surface="admin", detail={"run": run.pk, "kind": run.kind})
        level, message = queue_sync(request, run.source, run.kind)
        messages.add_message(request, level, message)


@admin.register(SyncRun)
class SyncRunAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Runs are records: read, never written by hand; any can be run again (same kind, same source)."""

    list_display = ("started_at", "source", "kind", "state", "trigger", "duration", "seen", "added", "updated",
                    "unchanged", "deleted", "failed", "permission_changes", "errors_total", "resumed")
    list_filter: ClassVar[tuple[str, ...]] = ("state", "kind", "source")
    list_select_related = ("source",)
    readonly_fields = ["duration", "error_list", *(f.name for f in SyncRun._meta.fields if f.name != "errors")]
    actions = ("rerun_action",)
    change_form_template = "admin/connectors/syncrun/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Re-run the selected runs (same kind, same source)")
    def rerun_action(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        rerun(request, list(queryset.select_related("source")))

    def get_urls(self) -> list:
        return [path("<path:object_id>/rerun/", self.admin_site.admin_view(self.rerun_view),
                     name="connectors_syncrun_rerun"), *super().get_urls()]

    def rerun_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404
        if not self.has_view_permission(request, run) or not request.user.has_perm("connectors.change_source"):
            raise PermissionDenied
        rerun(request, [run])
        return HttpResponseRedirect(f"{reverse('admin:connectors_syncrun_changelist')}"
                                    f"?source__id__exact={run.source_id}")

    @admin.display(description="Duration")
    def duration(self, run: SyncRun) -> str:
        seconds = run.seconds
        if seconds is None:
            return "running" if run.state == SyncRun.State.RUNNING else "-"
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

    @admin.display(description="Errors (per item)")
    def error_list(self, run: SyncRun) -> str:
        if not run.errors:
            return "none"
        shown = format_html_join("", "<li><code>{}</code>: {}</li>",
                                 ((entry.get("item", ""), entry.get("error", "")) for entry in run.errors))
        more = run.errors_total - len(run.errors)
        return format_html("<ul>{}</ul>{}", shown, f"… and {more} more" if more > 0 else "")


@admin.register(SourceFreshness)
class FreshnessAdmin(admin.ModelAdmin):
    """The freshness dashboard (connectors.selectors.freshness): one row per source, with its badge."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("connectors.view_source")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = selectors.freshness()
        audit.record(request.user, "admin.view", object_type="connectors.sourcefreshness", surface="admin",
                     detail={"path": request.get_full_path(), "shown": [str(row.source.pk) for row in rows]})
        return TemplateResponse(request, "admin/connectors/sourcefreshness/dashboard.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Freshness", "rows": rows,
            "counts": {health: sum(1 for row in rows if row.health == health)
                       for health in ("healthy", "stale", "failing", "paused")}})

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:connectors_source_change", args=[object_id]))
