"""manage.py sync SOURCE [--kind full|incremental|prune|permissions|groups] — one sync run by hand, with a progress
bar, recorded like a scheduled one."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from connectors import services
from connectors.base import SourceUnavailable, Unsupported
from connectors.models import Source, SyncRun
from connectors.runs import SyncInProgress
from core.errors import InvalidInput
from search.types import IndexModelMismatch, SearchUnavailable


class Command(BaseCommand):
    help = "Run one sync of a source now (by id or name) and print what its run recorded."

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", help="the source's id or name")
        parser.add_argument("--kind", choices=SyncRun.Kind.values, default=SyncRun.Kind.FULL,
                            help="full (default): every item; incremental: what changed since the last run; prune: "
                                 "delete what the source no longer has; permissions; groups")
        parser.add_argument("--confirm-deletions", action="store_true",
                            help="let this run delete more of the source than the mass-deletion guard allows")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        reference = options["source"]
        source = Source.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
        source = source or Source.objects.filter(name=reference).first()
        if source is None:
            raise CommandError(f"no such source: {reference}")
        try:
            run = services.run_sync(source, options["kind"], progress=not options["no_progress"], trigger="manual",
                                    confirm_deletions=options["confirm_deletions"])
        except (SearchUnavailable, IndexModelMismatch, SourceUnavailable, SyncInProgress, Unsupported,
                InvalidInput) as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            fields = ["id", "kind", "state", "trigger", "seen", "added", "updated", "unchanged", "deleted", "failed",
                      "permission_changes", "errors_total", "errors", "details", "resumed"]
            self.stdout.write(json.dumps({name: getattr(run, name) for name in fields} | {"seconds": run.seconds},
                                         indent=2, default=str))
            return
        self.stdout.write(
            f"{run.kind} sync of {source.name}: {run.state} — {run.seen} seen, {run.added} added, {run.updated} "
            f"updated, {run.unchanged} unchanged, {run.deleted} deleted, {run.failed} failed, "
            f"{run.permission_changes} permission changes in {run.seconds or 0:.1f}s (run {run.pk})")
        for error in run.errors:
            self.stdout.write(self.style.WARNING(f"  ! {error['item']}: {error['error']}"))
        if run.errors_total > len(run.errors):
            self.stdout.write(f"  … and {run.errors_total - len(run.errors)} more errors")
