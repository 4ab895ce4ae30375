from django.contrib import admin

from audit.admin import AuditedAdminMixin
from bot.models import ChannelSettings, ProcessedEvent


@admin.register(ChannelSettings)
class ChannelSettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "platform", "team_id", "channel_id", "enabled", "respond_only_when_mentioned", "visibility")
    list_filter = ("platform", "enabled", "visibility")
    search_fields = ("name", "channel_id", "team_id")
    readonly_fields = ("updated_at", "updated_by")

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("platform", "event_id", "status", "attempts", "lease_expires_at", "updated_at")
    list_filter = ("platform", "status")
    readonly_fields = ("platform", "event_id", "status", "attempts", "error", "lease_expires_at", "created_at",
                       "updated_at")
