"""Sources an admin connects and the documents they hold."""

from __future__ import annotations

import hashlib

from django.db import models


class Source(models.Model):
    class Kind(models.TextChoices):
        FILESYSTEM = "filesystem", "Files on disk"
        BEIR = "beir", "BEIR corpus (evaluation)"
        CONFLUENCE = "confluence", "Confluence (Cloud or Data Center)"
        SHAREPOINT = "sharepoint", "SharePoint Online and OneDrive"
        GOOGLE_DRIVE = "google_drive", "Google Drive"
        SLACK = "slack", "Slack channels"
        WEB = "web", "Website"

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
    # What the connector remembers between syncs, written after a complete listing: e.g. the mount point a
    # folder lived on, so that an unmounted share (an empty folder) fails instead of pruning everything.
    sync_state = models.JSONField(default=dict, blank=True)
    # Where the next incremental sync starts (a connector's Cursor), written when a full or incremental run completes.
    sync_cursor = models.JSONField(default=dict, blank=True)
    # Scheduled syncs stop while paused; a sync run by hand still runs.
    paused = models.BooleanField(default=False)
    # Seconds between scheduled runs of each kind; null takes the CITEWISE_*_INTERVAL_S default, 0 never runs it.
    incremental_interval_s = models.PositiveIntegerField(null=True, blank=True)
    full_interval_s = models.PositiveIntegerField(null=True, blank=True)
    prune_interval_s = models.PositiveIntegerField(null=True, blank=True)
    permissions_interval_s = models.PositiveIntegerField(null=True, blank=True)
    groups_interval_s = models.PositiveIntegerField(null=True, blank=True)
    # Set by an admin to let the next run delete more of the source than the mass-deletion guard allows; used up by it.
    mass_deletion_confirmed = models.BooleanField(default=False)
    # Seconds since the last successful content sync past which the source is stale (connectors.selectors.freshness);
    # null takes CITEWISE_FRESHNESS_TARGET_S.
    freshness_target_s = models.PositiveIntegerField("freshness target (seconds)", null=True, blank=True)
    # The unhealthy state ("stale", "failing") the last freshness alert was sent for; blank once healthy again, so an
    # alert goes out on each change of state, not at every check (connectors.alerts).
    health_alerted = models.CharField(max_length=16, blank=True, default="")

    def __str__(self) -> str:
        return self.name


class SourceFreshness(Source):
    """The console's freshness dashboard (connectors/admin.py), listed with the other connector pages."""

    class Meta:
        proxy = True
        verbose_name = "freshness"
        verbose_name_plural = "freshness"


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
    # The last full or prune run that listed it: one that completes deletes its source's documents it did not list,
    # and one resumed after a crash skips those it already processed (counts stay exact, nothing runs twice).
    seen_by_run = models.PositiveBigIntegerField(null=True, blank=True)
    # Who may read it, as the source says. Anything but acl_status "ok" hides it from everyone.
    acl_principals = models.JSONField(default=list, blank=True)
    acl_public = models.BooleanField(default=False)
    acl_status = models.CharField(max_length=16, default="unknown")
    acl_hash = models.CharField(max_length=64, blank=True)
    # Why the source's permissions could not be worked out (a refused lookup, a grantee of an unknown kind): shown
    # to admins, counted on each run; never part of the ACL.
    acl_reason = models.CharField(max_length=500, blank=True)
    # What the text itself states (search/versions.py): the date it takes effect, and title keys of the
    # documents it replaces. Citations show the effective date before the source's modified time.
    effective_date = models.DateField(null=True, blank=True)
    supersedes = models.JSONField(default=list, blank=True)
    # What the connector asked to keep for its next visit (SourceItem.memo): HTTP validators, a page's links.
    source_memo = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="unique_external_id_per_source")]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.title or self.external_id


class SyncRun(models.Model):
    """One run of one kind of sync of a source: what it did, what failed, and where to resume if its worker died.

    Runs of one lane (content: full, incremental and prune, which all write documents; permissions; groups) exclude
    each other per source: at most one is `running` (a partial unique constraint, so two workers can never both
    start one, on SQLite or PostgreSQL). A running run holds a lease it renews as it goes; a run whose lease ran out,
    or whose process on this machine is gone, is taken over by the next run of its lane and resumed from its
    checkpoint, counts included.
    """

    class Kind(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"
        PRUNE = "prune", "Prune"
        PERMISSIONS = "permissions", "Permissions"
        GROUPS = "groups", "Groups"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        # Finished, but part of the source could not be listed: nothing was pruned.
        PARTIAL = "partial", "Partial"
        # Deletions held back by the mass-deletion guard until an admin confirms them.
        HELD = "held", "Held for confirmation"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    lane = models.CharField(max_length=16)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(max_length=32, blank=True, help_text="schedule, manual, console, api")
    seen = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    permission_changes = models.PositiveIntegerField(default=0)
    # The first errors, each {"item": external id or where, "error": "code: message"}; errors_total counts them all.
    errors = models.JSONField(default=list, blank=True)
    errors_total = models.PositiveIntegerField(default=0)
    # Figures a kind has beyond the counts (groups and memberships, chunks embedded, the guard's arithmetic).
    details = models.JSONField(default=dict, blank=True)
    # {"resume": a Checkpoint's state, "cursor": a Cursor's state}: written with the counts of what precedes them.
    checkpoint = models.JSONField(default=dict, blank=True)
    resumed = models.PositiveIntegerField(default=0, help_text="times a crashed run was taken over and resumed")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # "host:pid:token" of the process running it, and until when that holds unless renewed.
    lease_owner = models.CharField(max_length=300, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "lane"], condition=models.Q(state="running"),
                                               name="one_running_sync_per_source_lane")]
        indexes = [models.Index(fields=["source", "kind", "-started_at"])]
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} sync of {self.source} ({self.state})"

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None
