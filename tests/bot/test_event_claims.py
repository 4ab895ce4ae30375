"""Event de-duplication: claims as leases (clock injected), and concurrent retries on real PostgreSQL.

SQLite serialises writers, so only PostgreSQL (READ COMMITTED, row locks) shows whether the takeover in
bot.services.claim_event lets exactly one of two concurrent retries win; those tests run each retry on a connection
of its own, to the cluster scripts/services.sh starts, in a database of their own (the `postgres_database`
fixture). A cluster that is down fails them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.utils import timezone

from bot import services
from bot.models import ProcessedEvent

WAIT_S = 30  # a bound on waiting for the other connection, never a measure of anything
SECOND = timedelta(seconds=1)


# -- leases (the suite's database) -------------------------------------------------------------------

@pytest.mark.django_db
def test_a_claim_is_a_lease_that_a_retry_takes_over_only_once_it_ran_out():
    claimed_at = timezone.now()
    lease = services.event_lease()
    first = services.claim_event("slack", "EvLEASE", now=claimed_at)
    assert first is not None and first.attempt == 1
    assert services.claim_event("slack", "EvLEASE", now=claimed_at + lease - SECOND) is None  # the worker is alive
    retry = services.claim_event("slack", "EvLEASE", now=claimed_at + lease + SECOND)  # it died
    assert retry is not None and retry.attempt == 2
    assert ProcessedEvent.objects.get(event_id="EvLEASE").status == "processing"


@pytest.mark.django_db
def test_a_renewed_lease_keeps_retries_out():
    claimed_at = timezone.now()
    lease = services.event_lease()
    claim = services.claim_event("slack", "EvRENEW", now=claimed_at)
    assert services.renew_claim(claim, now=claimed_at + lease - SECOND)
    assert services.claim_event("slack", "EvRENEW", now=claimed_at + lease + SECOND) is None
    assert services.claim_event("slack", "EvRENEW", now=claimed_at + 2 * lease) is not None


@pytest.mark.django_db
def test_a_worker_whose_event_was_taken_over_can_neither_renew_nor_finish_it():
    claimed_at = timezone.now()
    slow = services.claim_event("slack", "EvSLOW", now=claimed_at)
    retry = services.claim_event("slack", "EvSLOW", now=claimed_at + services.event_lease() + SECOND)
    assert not services.renew_claim(slow)
    assert not services.finish_event("slack", "EvSLOW", error="too slow", attempt=slow.attempt)
    assert ProcessedEvent.objects.get(event_id="EvSLOW").status == "processing"
    assert services.finish_event("slack", "EvSLOW", attempt=retry.attempt)
    assert ProcessedEvent.objects.get(event_id="EvSLOW").status == "done"
    assert services.claim_event("slack", "EvSLOW", now=claimed_at + 10 * services.event_lease()) is None


# -- concurrent retries on PostgreSQL ----------------------------------------------------------------


class OnPostgres(threading.Thread):
    """Runs `work` in a thread whose Django `default` connection is its own connection to the test database.

    Django keeps connections per thread, so the code under test (bot.services) runs unchanged, as it would in two
    web or Celery workers.
    """

    def __init__(self, database: dict[str, Any], work: Callable[[], Any]):
        super().__init__(daemon=True)
        self.database, self.work = database, work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        config = connections.configure_settings({"default": dict(self.database)})["default"]
        connections["default"] = DatabaseWrapper(config, "default")
        try:
            self.result = self.work()
        except BaseException as exc:
            self.error = exc
        finally:
            connections["default"].close()

    def outcome(self) -> Any:
        self.join(WAIT_S)
        assert not self.is_alive(), "the worker thread is stuck"
        if self.error is not None:
            raise self.error
        return self.result


def on_postgres(database: dict[str, Any], work: Callable[[], Any]) -> Any:
    worker = OnPostgres(database, work)
    worker.start()
    return worker.outcome()


def _conninfo(database: dict[str, Any]) -> dict[str, Any]:
    return {"host": database["HOST"], "port": database["PORT"] or 5432, "user": database["USER"],
            "password": database["PASSWORD"] or None, "dbname": database["NAME"]}


def wait_for_lock_waiters(database: dict[str, Any], count: int) -> None:
    """Until `count` sessions of the test database wait on a lock (another transaction's row lock)."""
    with psycopg.connect(**_conninfo(database), autocommit=True) as observer:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            waiting = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                (database["NAME"],)).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.01)
    pytest.fail(f"no {count} session(s) came to wait on a row lock within {WAIT_S} s")


@pytest.fixture
def claims_db(postgres_database, django_db_blocker):
    """The test database with bot.ProcessedEvent's table (only that: migrating everything would be slow)."""
    with django_db_blocker.unblock():
        def create_table() -> None:
            with connections["default"].schema_editor() as editor:
                editor.create_model(ProcessedEvent)

        on_postgres(postgres_database, create_table)
        yield postgres_database


def two_retries_race(database: dict[str, Any], event_id: str) -> list[Any]:
    """Two retries of one event claim it at once: both UPDATEs start while the row is retryable and then queue on
    its row lock (held here by a third transaction, as any transaction touching the row could), so the one that
    goes second must decide on the row as the first left it."""
    with psycopg.connect(**_conninfo(database)) as holder:
        holder.execute("SELECT id FROM bot_processedevent WHERE platform = 'slack' AND event_id = %s FOR UPDATE",
                       (event_id,))
        retries = [OnPostgres(database, lambda: services.claim_event("slack", event_id)) for _ in range(2)]
        for retry in retries:
            retry.start()
        try:
            wait_for_lock_waiters(database, 2)
        finally:
            holder.rollback()
    return [retry.outcome() for retry in retries]


def test_two_retries_of_a_failed_event_cannot_both_take_it_over(claims_db):
    """Reproduces issue 10 item 11: claim_event's takeover had its predicates in a subquery
    (`pk__in=retryable.values("pk")`); under READ COMMITTED the second UPDATE waited for the first, then updated the
    row anyway, so two Slack retries of a failed event both answered it."""
    on_postgres(claims_db, lambda: ProcessedEvent.objects.create(platform="slack", event_id="EvRACE",
                                                                   status=ProcessedEvent.Status.FAILED))
    outcomes = two_retries_race(claims_db, "EvRACE")
    assert sorted(bool(claimed) for claimed in outcomes) == [False, True]
    row = on_postgres(claims_db, lambda: ProcessedEvent.objects.get(event_id="EvRACE"))
    assert (row.status, row.attempts) == ("processing", 2)


def test_two_retries_of_an_event_whose_worker_died_cannot_both_take_it_over(claims_db):
    abandoned = timezone.now() - services.event_lease() - SECOND
    assert on_postgres(claims_db, lambda: services.claim_event("slack", "EvDEAD", now=abandoned))
    outcomes = two_retries_race(claims_db, "EvDEAD")
    assert sorted(bool(claimed) for claimed in outcomes) == [False, True]
    assert on_postgres(claims_db, lambda: ProcessedEvent.objects.get(event_id="EvDEAD").attempts) == 2
