from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db import router, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from connectors import selectors, services, tasks
from connectors.models import Document, Source, SyncRun
from connectors.secrets import SecretsUnavailable, mask
from connectors.sources import validated_config
from core.errors import InvalidInput
from search.types import SearchUnavailable


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


class SourceForm(forms.ModelForm):
    """SourceAdmin's form (its fields are the model's, less `SourceAdmin.exclude`)."""

    # Write-only: the stored credentials are never put back into the page, only their masked form.
    new_secrets = forms.JSONField(
        required=False, label="Set credentials",
        help_text='JSON, e.g. {"api_token": "…"}; stored encrypted; leave empty to keep the current ones, {} to remove')

    def clean_config(self) -> dict:
        config = self.cleaned_data["config"] or {}
        _valid(services.check_config, config)
        return config

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind, config = cleaned.get("kind"), cleaned.get("config")
        if kind and config is not None:
            try:
                validated_config(kind, config)
            except InvalidInput as exc:
                self.add_error("config", exc.user_message)
        return cleaned

    def clean_new_secrets(self) -> dict[str, str] | None:
        value = self.cleaned_data["new_secrets"]
        if value is None or value == "":
            return None
        _valid(services.check_secrets, value)
        return value


def _valid(check: Callable[[Any], None], value: Any) -> None:
    """Run a services check, its refusal shown on the form field."""
    try:
        check(value)
    except InvalidInput as exc:
        raise forms.ValidationError(exc.user_message) from exc


@admin.register(Source)
class SourceAdmin(IndexFirstDeleteMixin, admin.ModelAdmin):
    form = SourceForm
    exclude = ("encrypted_secrets",)  # written only through the form's `new_secrets`
    list_display = ("name", "kind", "location", "index_name", "paused", "last_synced_at")
    readonly_fields = ("credentials", "sync_state", "sync_cursor", "last_synced_at", "permissions_synced_at")
    search_fields = ("name", "location")
    actions = ("sync_now", "confirm_mass_deletion")

    @admin.action(description="Sync now (queued: incremental where the source has a change feed, else full)")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            tasks.run_sync.delay(source.pk, "incremental", "console")
        self.message_user(request, f"{queryset.count()} sync(s) queued; their runs appear under Sync runs.")

    @admin.action(description="Confirm held deletions (the next full or prune run may delete what is gone)")
    def confirm_mass_deletion(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            services.confirm_mass_deletion(source)
        self.message_user(request, f"Deletions confirmed for {queryset.count()} source(s).", messages.WARNING)

    @admin.display(description="Credentials")
    def credentials(self, source: Source) -> str:
        try:
            stored = selectors.source_secrets(source)
        except SecretsUnavailable as exc:
            return exc.user_message
        return ", ".join(f"{name}: {mask(value)}" for name, value in sorted(stored.items())) or "none"

    def save_model(self, request: HttpRequest, obj: Source, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        new_secrets = form.cleaned_data.get("new_secrets")
        if new_secrets is not None:
            try:
                services.set_source_secrets(obj, new_secrets)
            except SecretsUnavailable as exc:
                messages.error(request, f"The credentials were not stored: {exc}")


@admin.register(Document)
class DocumentAdmin(IndexFirstDeleteMixin, admin.ModelAdmin):
    list_display: tuple[str, ...] = ("title", "source", "mime_type", "status", "chunk_count", "source_modified_at",
                                     "indexed_at")
    list_filter: ClassVar[tuple[str, ...]] = ("status", "mime_type", "source")
    search_fields = ("title", "external_id", "error")
    readonly_fields = [f.name for f in Document._meta.fields]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        services.delete_documents(queryset)  # one index call for all, not one per document


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """Runs are records: read, never written by hand."""

    list_display = ("source", "kind", "state", "trigger", "started_at", "seconds", "seen", "added", "updated",
                    "unchanged", "deleted", "failed", "permission_changes", "errors_total", "resumed")
    list_filter: ClassVar[tuple[str, ...]] = ("state", "kind", "source")
    readonly_fields = [f.name for f in SyncRun._meta.fields] + ["seconds"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
