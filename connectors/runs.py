"""The life of a SyncRun: started (or taken over from a worker that died), its lease kept, its progress committed
batch by batch with the work it counts, finished.

A run's counts and checkpoint are only ever written in the same transaction as the documents they describe
(`ActiveRun.commit`), so a run resumed after a crash goes on from exactly what was committed: nothing counted twice,
nothing skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from connectors.models import Source, SyncRun
from core.config import CitewiseSettings, current

logger = logging.getLogger("citewise.connectors")

# Runs of one lane write the same things, so at most one of them runs per source at a time.
LANES = {
    SyncRun.Kind.FULL: "content", SyncRun.Kind.INCREMENTAL: "content", SyncRun.Kind.PRUNE: "content",
    SyncRun.Kind.PERMISSIONS: "permissions", SyncRun.Kind.GROUPS: "groups",
}
# Errors kept on a run (errors_total counts every one): enough to act on, bounded however many items fail.
MAX_RUN_ERRORS = 200
COUNTS = ("seen", "added", "updated", "unchanged", "deleted", "failed", "permission_changes")


class SyncInProgress(Exception):
    """Another run of the same lane holds the source, so this one did nothing (or stopped)."""


def holder_is_gone(holder: str) -> bool:
    """Whether a lease holder ("host:pid:token") was a process on this machine that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


@dataclass
class ActiveRun:
    """A running SyncRun held by this process."""

    run: SyncRun
    ttl: timedelta
    renewed: float = field(default_factory=time.monotonic)
    # The run was taken over from a process that died: it resumes from `run.checkpoint`.
    resuming: bool = False

    @property
    def kind(self) -> str:
        return self.run.kind

    def keep(self) -> None:
        """Renew once a third of the lease has passed; SyncInProgress if another run took it over meanwhile."""
        if time.monotonic() - self.renewed < self.ttl.total_seconds() / 3:
            return
        if not SyncRun.objects.filter(pk=self.run.pk, lease_owner=self.run.lease_owner,
                                      state=SyncRun.State.RUNNING).update(lease_expires_at=timezone.now() + self.ttl):
            raise SyncInProgress(f"{self.run}: this run went longer than CITEWISE_SYNC_LEASE_S without renewing its "
                                 f"lease and another run took over; this one stopped")
        self.renewed = time.monotonic()

    def commit(
        self, counts: Counter[str] | dict[str, int], errors: Iterable[tuple[str, str]] = (), *,
        resume: dict[str, Any] | None = None, cursor: dict[str, Any] | None = None,
        work: Callable[[], object] | None = None,
    ) -> None:
        """Write `work` (the documents a batch changed), the counts and errors it adds and the checkpoint reached,
        in one transaction."""
        errors = list(errors)
        with transaction.atomic():
            if work is not None:
                work()
            increments = {name: F(name) + value for name, value in counts.items() if value and name in COUNTS}
            if errors:
                increments["errors_total"] = F("errors_total") + len(errors)
            checkpoint = dict(self.run.checkpoint)
            if resume is not None:
                checkpoint["resume"] = resume
            if cursor is not None:
                checkpoint["cursor"] = cursor
            updates: dict[str, Any] = dict(increments)
            if checkpoint != self.run.checkpoint:
                updates["checkpoint"] = checkpoint
            if errors:
                kept = SyncRun.objects.select_for_update().values_list("errors", flat=True).get(pk=self.run.pk)
                room = MAX_RUN_ERRORS - len(kept)
                if room > 0:
                    updates["errors"] = kept + [{"item": item, "error": error} for item, error in errors[:room]]
            if updates and not SyncRun.objects.filter(pk=self.run.pk, lease_owner=self.run.lease_owner).update(
                    **updates):
                raise SyncInProgress(f"{self.run}: another run took this one over; its batch was not recorded")
        self.run.checkpoint = checkpoint

    def finish(self, state: str, *, details: dict[str, Any] | None = None) -> SyncRun:
        updates: dict[str, Any] = {"state": state, "finished_at": timezone.now(), "lease_owner": "",
                                   "lease_expires_at": None}
        if details:
            updates["details"] = {**self.run.details, **details}
        SyncRun.objects.filter(pk=self.run.pk, lease_owner=self.run.lease_owner).update(**updates)
        self.run.refresh_from_db()
        logger.info("sync run finished source=%s kind=%s state=%s seen=%d added=%d updated=%d unchanged=%d "
                    "deleted=%d failed=%d permission_changes=%d errors=%d resumed=%d seconds=%.2f",
                    self.run.source_id, self.run.kind, self.run.state, self.run.seen, self.run.added,
                    self.run.updated, self.run.unchanged, self.run.deleted, self.run.failed,
                    self.run.permission_changes, self.run.errors_total, self.run.resumed, self.run.seconds or 0.0)
        return self.run

    def fail(self, exc: BaseException) -> None:
        """Record why the run stopped; it is not resumed (a crashed process, which records nothing, is)."""
        try:
            self.commit({}, [("run", f"{type(exc).__name__}: {exc}")])
        except SyncInProgress:
            return
        self.finish(SyncRun.State.FAILED)


def start(source: Source, kind: str, *, trigger: str = "", config: CitewiseSettings | None = None) -> ActiveRun:
    """Start a run of `kind`, or take over the running run of its lane whose process died (which then resumes in
    its own kind, from its checkpoint); SyncInProgress if a live run holds the lane.

    The partial unique constraint on (source, lane) where running makes two simultaneous starts impossible; a
    takeover is a conditional UPDATE on the dead holder's lease, so only one process wins it. A holder that was
    killed on this machine is not waited out; one on another machine is, until its lease expires.
    """
    ttl = timedelta(seconds=(config or current()).sync_lease_s)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    lane = LANES[SyncRun.Kind(kind)]
    for _ in range(2):  # the holder may finish between the refused insert and the look at it
        try:
            with transaction.atomic():
                run = SyncRun.objects.create(source=source, kind=kind, lane=lane, trigger=trigger, lease_owner=owner,
                                             lease_expires_at=timezone.now() + ttl)
            return ActiveRun(run, ttl)
        except IntegrityError:
            pass
        holder = SyncRun.objects.filter(source=source, lane=lane, state=SyncRun.State.RUNNING).first()
        if holder is None:
            continue
        now = timezone.now()
        expired = holder.lease_expires_at is not None and holder.lease_expires_at < now
        if (expired or holder_is_gone(holder.lease_owner)) and SyncRun.objects.filter(
                pk=holder.pk, lease_owner=holder.lease_owner, state=SyncRun.State.RUNNING).update(
                    lease_owner=owner, lease_expires_at=now + ttl, resumed=F("resumed") + 1):
            logger.warning("sync run %s (%s of %s) taken over from %s, whose process is gone or whose lease "
                           "expired; resuming from its checkpoint", holder.pk, holder.kind, source.name,
                           holder.lease_owner)
            holder.refresh_from_db()
            return ActiveRun(holder, ttl, resuming=True)
        raise SyncInProgress(f"{source.name}: another sync of this source is running ({holder.kind} run "
                             f"{holder.pk}, {holder.lease_owner}, lease until "
                             f"{holder.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC); this one was skipped")
    raise SyncInProgress(f"{source.name}: could not start a {kind} run")
