"""Sources an admin connects and the documents they hold."""

from __future__ import annotations

import hashlib

from django.db import models


class Source(models.Model):
    class Kind(models.TextChoices):
        FILESYSTEM = "filesystem", "Files on disk"
        BEIR = "beir", "BEIR corpus (evaluation)"
        CONFLUENCE = "confluence", "Confluence Cloud"
        SHAREPOINT = "sharepoint", "SharePoint Online and OneDrive"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # Where the connector reads from: a directory, a corpus file, later a SaaS site URL.
    location = models.CharField(max_length=1000)
    # The search index this source's chunks live in (evaluation corpora get their own).
    index_name = models.CharField(max_length=200, blank=True, default="")
    # Blank means the configured backend; evaluation pins a dataset copy to each backend it measures.
    search_backend = models.CharField(max_length=32, blank=True, default="")
    # Connector options, e.g. {"public": true} for a folder everyone may read.
    config = models.JSONField(default=dict, blank=True)
    # Credentials (an API token, a client secret), encrypted with CITEWISE_ENCRYPTION_KEY: connectors/secrets.py.
    encrypted_secrets = models.TextField(blank=True, default="")
    permissions_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # The content sync running now ("host:pid:token") and until when its lease holds unless renewed: one
    # content sync per source at a time, taken with a conditional UPDATE (SQLite and PostgreSQL alike).
    sync_lease_owner = models.CharField(max_length=300, blank=True)
    sync_lease_expires_at = models.DateTimeField(null=True, blank=True)
    # What the connector remembers between syncs, written after a complete listing: e.g. the mount point a
    # folder lived on, so that an unmounted share (an empty folder) fails instead of pruning everything.
    sync_state = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.name


def document_id_for(source_id: int, external_id: str) -> str:
    """Stable id: the same source item always maps to the same document, across re-ingests."""
    return hashlib.sha256(f"{source_id}\x00{external_id}".encode()).hexdigest()[:32]


class Document(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        INDEXED = "indexed", "Indexed"
        ERROR = "error", "Error"

    id = models.CharField(primary_key=True, max_length=32, editable=False)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="documents")
    external_id = models.CharField(max_length=1000)
    title = models.CharField(max_length=500, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    mime_type = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the source bytes last seen")
    indexed_hash = models.CharField(max_length=64, blank=True, help_text="sha256 of the bytes now in the index")
    embedding_model = models.CharField(max_length=300, blank=True)
    # Model, chunking settings and pipeline version that produced the indexed chunks; a change re-indexes.
    indexed_pipeline = models.CharField(max_length=400, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    source_modified_at = models.DateTimeField(null=True, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    # sha256 of the bytes a worker is parsing now, saved before it starts; still set at the next sync means
    # the worker died on them (killed, out of memory), so those bytes are recorded as failed and skipped.
    parsing_hash = models.CharField(max_length=64, blank=True)
    # Who may read it, as the source says. Anything but acl_status "ok" hides it from everyone.
    acl_principals = models.JSONField(default=list, blank=True)
    acl_public = models.BooleanField(default=False)
    acl_status = models.CharField(max_length=16, default="unknown")
    acl_hash = models.CharField(max_length=64, blank=True)
    # What the text itself states (search/versions.py): the date it takes effect, and title keys of the
    # documents it replaces. Citations show the effective date before the source's modified time.
    effective_date = models.DateField(null=True, blank=True)
    supersedes = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="unique_external_id_per_source")]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.title or self.external_id
