from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from connectors import services
from connectors.models import Account, Document, ExternalIdentity, Group, GroupMembership, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "location", "index_name", "last_synced_at")
    search_fields = ("name", "location")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "source", "mime_type", "status", "chunk_count", "source_modified_at", "indexed_at")
    list_filter = ("status", "mime_type", "source")
    search_fields = ("title", "external_id", "error")
    readonly_fields = [f.name for f in Document._meta.fields]


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(admin.ModelAdmin):
    """Where an admin links a user's Slack, Teams or source account to their Citewise user."""

    list_display = ("principal", "user", "is_external", "created_at")
    list_filter = ("is_external",)
    search_fields = ("principal", "user__username", "user__email")
    autocomplete_fields = ("user",)


class GroupMembershipInline(admin.TabularInline):
    model = GroupMembership
    extra = 0


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("principal", "name", "source", "synced_at")
    search_fields = ("principal", "name")
    inlines = [GroupMembershipInline]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Employee, guest or unknown: only employees read as "everyone except external users" and their domains."""

    list_display = ("user", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    readonly_fields = ("updated_at",)

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        # Through the service, so that every change of status is audited.
        services.set_account_status(obj.user, obj.status, actor=request.user, surface="admin")


class AccountInline(admin.StackedInline):
    model = Account
    can_delete = False
    fields = ("status", "updated_at")
    readonly_fields = ("updated_at",)
    verbose_name_plural = "Citewise account (employee, guest or unknown)"


# django.contrib.auth.admin registers the stock UserAdmin when imported (above): swap in the same admin with
# the account status shown, filterable and editable on each user.
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class CitewiseUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, AccountInline]
    list_display = (*UserAdmin.list_display, "account_status")
    list_filter = (*UserAdmin.list_filter, "account__status")
    list_select_related = ("account",)

    @admin.display(description="account", ordering="account__status")
    def account_status(self, obj: Any) -> str:
        account = getattr(obj, "account", None)
        return account.get_status_display() if account else Account.Status.UNKNOWN.label

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Account:
            return super().save_formset(request, form, formset, change)
        for account in formset.save(commit=False):
            services.set_account_status(form.instance, account.status, actor=request.user, surface="admin")
