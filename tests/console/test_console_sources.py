"""The console's source pages: a typed form per kind (credentials write-only), a connection test that saves nothing,
actions (sync, full resync, permission sync, pause, resume, delete), run history with re-run, the freshness dashboard
and its badges, and the alert hook."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from connectors import alerts, selectors, services
from connectors.models import Document, Source, SyncRun
from identity.selectors import principals_for
from retrieval import selectors as retrieval_selectors
from search.types import SearchMode
from tests.console.conftest import write_corpus
from tests.standins.base import hang
from tests.standins.confluence import ConfluenceStandIn

pytestmark = pytest.mark.django_db

TOKEN = "confluence-token-abcd-1234"
ADD = "/admin/connectors/source/add/"


@pytest.fixture(autouse=True)
def encryption_key(settings) -> None:
    from cryptography.fernet import Fernet

    settings.CITEWISE = settings.CITEWISE.replace(encryption_key=Fernet.generate_key().decode())


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def change_url(source: Source) -> str:
    return reverse("admin:connectors_source_change", args=[source.pk])


def schedule(**extra) -> dict[str, str]:
    return {"index_name": "", "search_backend": "", "freshness_target_s": "", "incremental_interval_s": "",
            "full_interval_s": "", "prune_interval_s": "", "permissions_interval_s": "", "groups_interval_s": "",
            **extra}


def confluence_form(**extra) -> dict[str, str]:
    return schedule(**{"name": "wiki", "location": "https://corp.atlassian.net", "config__deployment": "cloud",
                       "config__email": "bot@corp.example", "config__username": "", "config__spaces": "ENG\nHR\n",
                       "config__api_url": "", **extra})


# -- the typed form ------------------------------------------------------------------------------------------------


def test_adding_a_source_asks_for_its_kind_then_shows_that_kinds_typed_fields(admin_client):
    picker = admin_client.get(ADD).content.decode()
    assert "?kind=confluence" in picker and "?kind=filesystem" in picker

    page = admin_client.get(f"{ADD}?kind=confluence").content.decode()
    assert 'name="config"' not in page  # no raw JSON box
    assert '<select name="config__deployment"' in page and '<option value="data_center">' in page
    assert '<textarea name="config__spaces"' in page
    assert 'type="checkbox" name="config__include_archived_spaces"' in page
    assert 'type="password" name="secret__api_token"' in page and 'name="secret__api_token__clear"' in page
    assert "limits the sync to those space keys" in page  # help from the Config's docstring
    web = admin_client.get(f"{ADD}?kind=web").content.decode()
    assert 'type="number" name="config__max_depth"' in web and 'max="100"' in web
    slack = admin_client.get(f"{ADD}?kind=slack").content.decode()
    assert "the workspace id, T followed by letters and digits" in slack  # a Field description
    assert 'name="config__team_id"' in slack and "required" in slack.split('name="config__team_id"')[1][:200]


def test_the_typed_form_saves_a_valid_config_and_refuses_bad_values_on_their_fields(admin_client):
    refused = admin_client.post(f"{ADD}?kind=web", schedule(
        name="site", location="https://intranet.corp.example/", config__max_depth="500", config__max_pages="10",
        config__delay_s="1", config__user_agent="bot", config__start_urls="ftp://nope"))
    assert refused.status_code == 200 and not Source.objects.exists()
    errors = refused.context["adminform"].form.errors
    assert "config__max_depth" in errors and "is not an http(s) URL" in str(errors["config__start_urls"])

    no_email = admin_client.post(f"{ADD}?kind=confluence", confluence_form(config__email=""))
    assert no_email.status_code == 200 and "needs `email`" in no_email.content.decode()

    saved = admin_client.post(f"{ADD}?kind=confluence", confluence_form(secret__api_token=TOKEN))
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    source = Source.objects.get()
    assert (source.kind, source.config) == ("confluence", {"email": "bot@corp.example", "spaces": ["ENG", "HR"]})
    assert selectors.source_secrets(source) == {"api_token": TOKEN}
    assert AuditEvent.objects.filter(action="source.add", object_id=str(source.pk)).exists()


def test_credentials_are_write_only_blank_keeps_them_and_remove_clears_them(admin_client):
    source = services.ensure_source("confluence", "https://corp.atlassian.net", name="wiki",
                                    config={"email": "bot@corp.example"}, secrets={"api_token": TOKEN})
    page = admin_client.get(change_url(source)).content.decode()
    assert TOKEN not in page and "••••1234" in page
    assert 'name="config__email" value="bot@corp.example"' in page
    for name in ("sync_state", "sync_cursor", "mass_deletion_confirmed", "last_synced_at"):
        assert f'name="{name}"' not in page  # shown read-only, never editable

    kept = admin_client.post(change_url(source), confluence_form(secret__api_token=""))
    assert kept.status_code == 302
    assert selectors.source_secrets(Source.objects.get()) == {"api_token": TOKEN}
    replaced = admin_client.post(change_url(source), confluence_form(secret__api_token="new-token-5678"))
    assert replaced.status_code == 302
    assert selectors.source_secrets(Source.objects.get()) == {"api_token": "new-token-5678"}
    cleared = admin_client.post(change_url(source), confluence_form(secret__api_token__clear="on"))
    assert cleared.status_code == 302
    assert selectors.source_secrets(Source.objects.get()) == {}
    changes = AuditEvent.objects.filter(action="source.change").order_by("pk")
    assert [event.detail["credentials_changed"] for event in changes] == [[], ["api_token"], ["api_token"]]
    assert all("new-token" not in str(event.detail) for event in AuditEvent.objects.all())


# -- test connection -------------------------------------------------------------------------------------------------


def test_test_connection_reads_a_folder_and_saves_nothing(admin_client, tmp_path):
    folder = write_corpus(tmp_path / "docs")
    form = schedule(name="docs", location=str(folder))
    page = admin_client.post(f"{ADD}?kind=filesystem", {**form, "_test_connection": "Test connection"})
    assert page.status_code == 200 and not Source.objects.exists()
    check = page.context["connection_check"]
    assert check.ok and check.items == 2 and check.first_item == "finance/travel-budget.md"
    assert "Connected: found 2 items" in page.content.decode()

    missing = admin_client.post(f"{ADD}?kind=filesystem", {**form, "location": str(tmp_path / "gone"),
                                                            "_test_connection": "Test connection"})
    assert not missing.context["connection_check"].ok
    assert "does not exist" in missing.content.decode() and not Source.objects.exists()


def test_test_connection_says_a_refused_token_is_a_401_in_plain_words(admin_client):
    with ConfluenceStandIn({"users": {}, "groups": {}, "spaces": {}, "pages": {}}, api_token=TOKEN) as site:
        refused = services.check_connection("confluence", site.url, {"email": "bot@corp.example"},
                                           {"api_token": "wrong"}, timeout_s=10)
        assert not refused.ok and "refused the credentials (HTTP 401)" in refused.message
        site.fail("/wiki/api/v2/spaces", status=403)
        forbidden = services.check_connection("confluence", site.url, {"email": "bot@corp.example"},
                                             {"api_token": TOKEN}, timeout_s=10)
        assert not forbidden.ok and "not allowed to read this (HTTP 403)" in forbidden.message
        site.script("/wiki/api/v2/spaces", hang(2.0))
        silent = services.check_connection("confluence", site.url, {"email": "bot@corp.example"},
                                          {"api_token": TOKEN}, timeout_s=0.5)
        assert not silent.ok and "No answer within 0.5 seconds" in silent.message
        # On an existing source, a blank credential field tests with the stored one.
        source = services.ensure_source("confluence", site.url, name="wiki", config={"email": "bot@corp.example"},
                                        secrets={"api_token": TOKEN})
        page = admin_client.post(change_url(source), {**confluence_form(location=site.url, config__spaces=""),
                                                      "_test_connection": "Test connection"})
    check = page.context["connection_check"]
    assert check.ok and "Connected, but found no items" in check.message


# -- actions ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def folder_source(tmp_path, isolated_index) -> Source:
    return services.ensure_source("filesystem", write_corpus(tmp_path / "docs"), name=f"docs-{uuid.uuid4().hex[:6]}")


def act(client, source: Source, action: str):
    return client.post(reverse("admin:connectors_source_action", args=[source.pk, action]), follow=True)


def test_sync_now_full_resync_permission_sync_pause_and_resume(admin_client, folder_source, alice):
    synced = act(admin_client, folder_source, "sync")
    run = SyncRun.objects.get(source=folder_source)
    assert (run.kind, run.state, run.trigger, run.seen, run.added) == ("full", "succeeded", "console", 2, 2)
    assert "Full sync of" in synced.content.decode() and "added 2" in synced.content.decode()
    assert act(admin_client, folder_source, "full").status_code == 200
    assert SyncRun.objects.filter(source=folder_source, kind="full").first().unchanged == 2
    act(admin_client, folder_source, "permissions")
    assert SyncRun.objects.filter(source=folder_source, kind="permissions", state="succeeded").exists()
    hits = retrieval_selectors.search("travel budget 2025", principals=principals_for(alice), mode=SearchMode.BM25)
    assert {hit.title for hit in hits} == {"Travel budget"}

    act(admin_client, folder_source, "pause")
    assert Source.objects.get(pk=folder_source.pk).paused
    assert "Resume" in admin_client.get(change_url(folder_source)).content.decode()
    act(admin_client, folder_source, "resume")
    assert not Source.objects.get(pk=folder_source.pk).paused
    assert admin_client.get(reverse("admin:connectors_source_action", args=[folder_source.pk, "sync"])
                            ).status_code == 405
    assert list(AuditEvent.objects.filter(action__startswith="source.").order_by("pk").values_list(
        "action", flat=True)) == ["source.sync", "source.full_resync", "source.permission_sync", "source.pause",
                                  "source.resume"]

    # The list's actions do the same for every selected source.
    admin_client.post("/admin/connectors/source/", {"action": "pause_action", ACTION_CHECKBOX_NAME: [folder_source.pk]})
    assert Source.objects.get(pk=folder_source.pk).paused


def test_delete_says_what_leaves_the_index_then_removes_it(admin_client, folder_source, alice):
    act(admin_client, folder_source, "sync")
    act(admin_client, folder_source, "permissions")
    chunks = sum(Document.objects.filter(source=folder_source).values_list("chunk_count", flat=True))
    url = reverse("admin:connectors_source_delete", args=[folder_source.pk])
    confirmation = admin_client.get(url).content.decode()
    assert f"This removes 2 documents\n  ({chunks} passage" in confirmation

    admin_client.post(url, {"post": "yes"})
    assert not Source.objects.filter(pk=folder_source.pk).exists()
    assert retrieval_selectors.search("travel budget 2025", principals=principals_for(alice),
                                      mode=SearchMode.BM25) == []
    assert AuditEvent.objects.filter(action="source.delete", object_id=str(folder_source.pk)).exists()


def test_runs_show_counts_and_errors_per_item_and_can_be_run_again(admin_client, folder_source):
    Path(folder_source.location, "public", "broken.pdf").write_bytes(b"not a pdf")
    act(admin_client, folder_source, "sync")
    run = SyncRun.objects.get(source=folder_source)
    assert run.failed == 1 and run.errors
    listing = admin_client.get(f"/admin/connectors/syncrun/?source__id__exact={folder_source.pk}").content.decode()
    assert "public/broken.pdf" not in listing and f"/admin/connectors/syncrun/{run.pk}/change/" in listing
    page = admin_client.get(reverse("admin:connectors_syncrun_change", args=[run.pk])).content.decode()
    assert "public/broken.pdf" in page and 'id="rerun"' in page
    recent = admin_client.get(change_url(folder_source)).content.decode()
    assert 'id="recent-runs"' in recent and "Full" in recent

    admin_client.post(reverse("admin:connectors_syncrun_rerun", args=[run.pk]))
    again = SyncRun.objects.filter(source=folder_source).first()
    assert again.pk != run.pk and (again.kind, again.trigger, again.unchanged) == ("full", "console", 2)
    admin_client.post("/admin/connectors/syncrun/", {"action": "rerun_action", ACTION_CHECKBOX_NAME: [again.pk]})
    assert SyncRun.objects.filter(source=folder_source).count() == 3


# -- freshness -------------------------------------------------------------------------------------------------------

NOW = timezone.now().replace(microsecond=0)


def run_of(source: Source, kind: str, state: str, *, started: timedelta, took: timedelta | None = None,
           **counts) -> SyncRun:
    run = SyncRun.objects.create(source=source, kind=kind, lane="content" if kind in ("full", "incremental", "prune")
                                 else kind, state=state, **counts)
    finished = NOW - started + took if took is not None else None
    SyncRun.objects.filter(pk=run.pk).update(started_at=NOW - started, finished_at=finished)
    run.refresh_from_db()
    return run


def badges(now=NOW) -> dict[str, str]:
    return {entry.source.name: entry.health for entry in selectors.freshness(now=now)}


def test_freshness_badges_healthy_stale_failing_paused_and_stuck(settings):
    settings.CITEWISE = settings.CITEWISE.replace(freshness_target_s=3600, stuck_run_s=600)
    sources = {name: Source.objects.create(name=name, kind="filesystem", location=f"/srv/{name}")
               for name in ("fresh", "old", "broken", "resting", "stuck", "slow", "never")}
    minute = timedelta(minutes=1)
    run_of(sources["fresh"], "full", "succeeded", started=10 * minute, took=minute, seen=5)
    run_of(sources["old"], "full", "succeeded", started=3 * 60 * minute, took=minute, seen=5)
    run_of(sources["broken"], "full", "succeeded", started=30 * minute, took=minute, seen=5)
    run_of(sources["broken"], "full", "partial", started=5 * minute, took=minute, failed=2)
    sources["resting"].paused = True
    sources["resting"].save()
    run_of(sources["resting"], "full", "failed", started=5 * minute, took=minute)
    run_of(sources["stuck"], "full", "succeeded", started=50 * minute, took=minute)
    run_of(sources["stuck"], "incremental", "running", started=15 * minute)  # > max(10 min, 3 x 1 min)
    # A source whose runs take 20 minutes is not stuck at 15 (3 x its median), but is once its lease expired.
    run_of(sources["slow"], "full", "succeeded", started=50 * minute, took=20 * minute)
    slow = run_of(sources["slow"], "full", "running", started=15 * minute)
    assert badges() == {"fresh": "healthy", "old": "stale", "broken": "failing", "resting": "paused",
                        "stuck": "failing", "slow": "healthy", "never": "stale"}
    SyncRun.objects.filter(pk=slow.pk).update(lease_expires_at=NOW - minute)
    assert badges()["slow"] == "failing"
    # The target is per source.
    Source.objects.filter(pk=sources["old"].pk).update(freshness_target_s=4 * 3600)
    assert badges()["old"] == "healthy"

    entry = next(e for e in selectors.freshness(now=NOW) if e.source.name == "broken")
    assert (entry.items_at_source, entry.last_run_failed, entry.lag_s) == (5, 2, 29 * 60)
    assert entry.since_complete_listing_s == 29 * 60


def test_the_dashboard_lists_every_source_with_its_badge(admin_client, folder_source):
    act(admin_client, folder_source, "sync")
    page = admin_client.get("/admin/connectors/sourcefreshness/").content.decode()
    assert "health-healthy" in page and ">Healthy<" in page and folder_source.name in page
    assert "1 healthy, 0 stale, 0 failing" in page
    assert "/admin/connectors/sourcefreshness/" in admin_client.get("/admin/").content.decode()
    assert "/admin/connectors/sourcefreshness/" in admin_client.get("/admin/connectors/source/").content.decode()


def gauge(source: str, state: str) -> float | None:
    return REGISTRY.get_sample_value("citewise_source_health", {"source": source, "state": state})


def test_the_alert_hook_fires_once_per_change_of_state(settings, caplog):
    settings.CITEWISE = settings.CITEWISE.replace(freshness_target_s=3600,
                                                  alert_emails="ops@corp.example, oncall@corp.example")
    source = Source.objects.create(name=f"wiki-{uuid.uuid4().hex[:6]}", kind="filesystem", location="/srv/wiki")
    run_of(source, "full", "succeeded", started=timedelta(minutes=10), took=timedelta(minutes=1))
    assert alerts.check_freshness(now=NOW) == [] and not mail.outbox
    assert gauge(source.name, "healthy") == 1 and gauge(source.name, "failing") == 0

    run_of(source, "incremental", "failed", started=timedelta(minutes=5), took=timedelta(minutes=1))
    connectors_log = logging.getLogger("citewise.connectors")  # "citewise" does not propagate to caplog's root
    connectors_log.addHandler(caplog.handler)
    try:
        fired = alerts.check_freshness(now=NOW)
    finally:
        connectors_log.removeHandler(caplog.handler)
    assert [(alert.source, alert.state) for alert in fired] == [(source.name, "failing")]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@corp.example", "oncall@corp.example"]
    assert f"{source.name} is failing" in mail.outbox[0].subject
    assert any(record.levelname == "WARNING" and getattr(record, "state", "") == "failing"
               and record.source_id == source.pk for record in caplog.records)
    assert gauge(source.name, "failing") == 1 and gauge(source.name, "healthy") == 0

    assert alerts.check_freshness(now=NOW + timedelta(minutes=5)) == [] and len(mail.outbox) == 1  # still failing
    run_of(source, "full", "succeeded", started=timedelta(minutes=2), took=timedelta(minutes=1))
    assert alerts.check_freshness(now=NOW) == [] and Source.objects.get(pk=source.pk).health_alerted == ""
    # Stale two hours later: a new state, a new alert.
    assert [a.state for a in alerts.check_freshness(now=NOW + timedelta(hours=2))] == ["stale"]
    assert len(mail.outbox) == 2


def test_the_beat_schedule_checks_freshness():
    from django.conf import settings as django_settings

    from connectors import tasks

    entry = django_settings.CELERY_BEAT_SCHEDULE["check-freshness"]
    assert entry["task"] == "connectors.check_freshness" and entry["schedule"] == 300.0
    assert tasks.check_freshness.delay().get() == []


def test_with_a_worker_the_sync_is_queued_and_the_admin_told_so(admin_client, folder_source, monkeypatch):
    from celery.result import AsyncResult

    from connectors import tasks

    queued: list[tuple] = []
    monkeypatch.setattr(tasks.run_sync, "delay", lambda *args: queued.append(args) or AsyncResult("queued-id"))
    page = act(admin_client, folder_source, "full").content.decode()
    assert queued == [(folder_source.pk, "full", "console")]
    assert "Full sync of" in page and "queued; its run appears under Sync runs" in page
