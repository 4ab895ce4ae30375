from django.contrib import admin

from connectors.models import Document, Source


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
