from django.contrib import admin

from connectors.models import Document, ExternalIdentity, Group, GroupMembership, Source


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
