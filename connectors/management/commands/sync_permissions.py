"""manage.py sync_permissions [--source ID] — permission-only sync: groups, memberships and document ACLs."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from connectors import services
from connectors.base import SourceUnavailable
from connectors.models import Source
from connectors.runs import SyncInProgress
from search.types import SearchUnavailable


class Command(BaseCommand):
    help = ("Re-read who may read each document (and the sources' groups) without re-indexing content; "
            "revocations take effect on the next question.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", type=int, action="append", dest="sources", metavar="ID",
                            help="only this source (repeatable); default: every source except evaluation corpora")
        parser.add_argument("--json", action="store_true", help="print the reports as JSON")

    def handle(self, *args, **options) -> None:
        if options["sources"]:
            sources = list(Source.objects.filter(pk__in=options["sources"]).order_by("pk"))
            missing = sorted(set(options["sources"]) - {s.pk for s in sources})
            if missing:
                raise CommandError(f"no such source: {', '.join(map(str, missing))}")
        else:
            sources = list(Source.objects.exclude(kind="beir").order_by("pk"))
        reports, unavailable = [], []
        try:
            for source in sources:
                try:
                    reports.append(services.sync_permissions(source))
                except (SourceUnavailable, SyncInProgress) as exc:  # one source must not hold up the others
                    unavailable.append(f"{source.name}: {exc}")
        except SearchUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self._print(reports, options)
        if unavailable:
            raise CommandError("could not sync " + "; ".join(unavailable))

    def _print(self, reports: list[services.PermissionSyncReport], options: dict) -> None:
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2))
            return
        if not reports and not options["sources"]:
            self.stdout.write("No sources to sync.")
        for r in reports:
            self.stdout.write(f"{r.source}: {r.checked} documents checked, {r.changed} changed; "
                              f"{r.groups} groups, {r.memberships} memberships in {r.seconds:.1f}s")
            for where, message in r.errors:
                self.stdout.write(self.style.WARNING(f"  ! {where}: {message}"))
