"""Slack channels as a source, through the real sync and retrieval path, against the Slack Web API stand-in
(tests/standins/slack.py, the bot's, which serves channels and their history too); then the connector alone:
checkpoints, the look-back window, throttling, files, settings and the token.

Who may read each channel comes from the test's own reading of the scenario (`readable_channels`: plain set logic
over channel memberships), never from the connector: a channel the app is not in, or archived or excluded, is read
by nobody; a private channel by its members; a public one by the workspace's full members and its own members;
guests only where they are members; a Slack Connect partner's user only with a Slack identity an admin linked,
never by the email their own organisation gives them. Every user searches the word every message shares, on both
backends, and must get exactly the documents of their channels; again after the workspace churns.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from connectors import services as connectors
from connectors.base import (
    Checkpoint,
    Cursor,
    CursorExpired,
    Deleted,
    IncompleteListing,
    ItemError,
    SourceItem,
    SourceUnavailable,
)
from connectors.models import Document, Source, SyncRun
from connectors.sources import connector_for
from connectors.sources.slack import SlackConnector
from core.errors import InvalidInput
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from retrieval.selectors import search
from search.types import SearchMode
from tests.connectors.conftest import kill_sync_midway
from tests.standins.base import Reply, hang
from tests.standins.slack import SlackStandIn
from tests.workers import shared_database, worker_environment  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("encryption_key")]

WORD = "zephyr"
TEAM, PARTNER = "T1", "T9"
BOT_TOKEN = "xoxb-1234-5678-do-not-log"
EXCLUDED = {"random"}
NOW = time.time()
TODAY = int(NOW // 86400) * 86400


def at(days_ago: int, hour: int, minute: int = 0, micro: int = 100) -> str:
    return f"{TODAY - days_ago * 86400 + hour * 3600 + minute * 60}.{micro:06d}"


# Citewise user -> (Slack user id, Slack's fields); `linked`: how the Citewise account is tied to the Slack user.
PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"id": "UALICE", "email": "Alice@Corp.example", "linked": "email"},
    "bob": {"id": "UBOB", "email": "bob@corp.example", "linked": "email"},
    "carol": {"id": "UCAROL", "email": "carol@corp.example", "linked": "email"},
    # A full member whose email Slack does not show: known by the Slack identity an admin linked.
    "dan": {"id": "UDAN", "email": "", "linked": "slack"},
    # A multi-channel guest of our workspace.
    "gina": {"id": "UGINA", "email": "gina@contractor.example", "guest": True, "linked": "email"},
    # Slack Connect partners: xavier's Slack identity is linked by an admin; yuri only has his partner email.
    "xavier": {"id": "UXAV", "email": "xavier@partner.example", "team": PARTNER, "linked": "slack"},
    "yuri": {"id": "UYURI", "email": "yuri@partner.example", "team": PARTNER, "linked": "email"},
}
ID = {name: person["id"] for name, person in PEOPLE.items()}


def day_of(ts: str) -> str:
    return datetime.fromtimestamp(int(Decimal(ts)), tz=UTC).strftime("%Y-%m-%d")


def message(ts: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "user": ID.get(user, user), "text": f"{WORD} {text}", **extra}


def reply(parent: str, ts: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
    return message(ts, user, text, thread_ts=parent, **extra)


def scenario() -> dict[str, Any]:
    t1, t2, t3 = at(3, 9), at(2, 10), at(40, 10)
    return {
        "channels": {
            "CGEN": {"name": "general", "is_private": False, "is_member": True},
            "CENG": {"name": "eng", "is_private": False, "is_member": True},
            "CHR": {"name": "hr", "is_private": True, "is_member": True},
            "CSHR": {"name": "deal-room", "is_private": True, "is_member": True, "is_ext_shared": True},
            "CPUB": {"name": "partners", "is_private": False, "is_member": True, "is_ext_shared": True},
            "CNOT": {"name": "not-joined", "is_private": False, "is_member": False},
            "CSEC": {"name": "secret", "is_private": True, "is_member": False},
            "COLD": {"name": "old", "is_private": False, "is_member": True, "is_archived": True},
            "CRND": {"name": "random", "is_private": False, "is_member": True},
        },
        "members": {
            "CGEN": ["UALICE", "UBOB", "UCAROL", "UDAN", "UGONE", "UBOT"],
            "CENG": ["UALICE", "UBOB", "UGINA", "UBOT"],
            "CHR": ["UCAROL", "UALICE", "UDAN", "UHELPER", "UBOT"],
            "CSHR": ["UBOB", "UXAV", "UYURI", "UGHOST", "UBOT"],
            "CPUB": ["UALICE", "UXAV", "UBOT"],
            "CNOT": ["UBOB"], "CSEC": ["UCAROL"], "COLD": ["UALICE", "UBOT"], "CRND": ["UALICE", "UBOT"],
        },
        "history": {
            "CGEN": [
                {"ts": at(30, 9), "user": "UCAROL", "text": "has joined the channel", "subtype": "channel_join"},
                message(at(30, 10), "alice", "kestrel: the kestrel roster moved to Fridays."),
                message(at(30, 11), "bob", "kestrel roster noted, <@UALICE> &amp; team."),
                message(t1, "alice", "lantern: who owns the lantern deploy?"),
                reply(t1, at(3, 9, 5), "bob", "lantern: the platform team."),
                reply(t1, at(3, 9, 10), "carol", "lantern: and dan is on call."),
                message(at(1, 12), "carol", "marmot draft is ready."),
                message(at(1, 13), "dan", "marmot review at noon."),
            ],
            "CENG": [
                message(t2, "alice", "nebula incident: the queue stalled."),
                reply(t2, at(2, 10, 30), "gina", "nebula logs are attached."),
                message(at(2, 11), "bob", "the runbook for nebula.", files=["F1"]),
            ],
            "CHR": [
                message(at(40, 9), "carol", "oriole salary bands for 2025."),
                message(t3, "carol", "oriole review cycle starts in May."),
                reply(t3, at(40, 10, 30), "alice", "oriole dates confirmed."),
                message(at(5, 9), "carol", "quartz handbook, new edition.", files=["F2"]),
            ],
            "CSHR": [
                message(at(4, 9), "xavier", "rosehip contract draft."),
                message(at(4, 10), "bob", "rosehip redlines sent."),
                message(at(2, 8), "yuri", "rosehip signature pending."),
            ],
            "CPUB": [message(at(6, 12), "alice", "saffron partner brief.")],
            "CNOT": [message(at(2, 9), "bob", "tundra: not for Citewise.")],
            "CSEC": [message(at(2, 9), "carol", "umber: not for Citewise.")],
            "COLD": [message(at(50, 9), "alice", "vervain: archived talk.")],
            "CRND": [message(at(2, 9), "alice", "willow: excluded by the admin.")],
        },
        "files": {
            "F1": {"name": "runbook.md", "filetype": "markdown", "mimetype": "text/plain", "user": "UBOB",
                   "content": f"# Nebula runbook\n\nRestart the {WORD} queue, then page the owner.\n".encode()},
            "F2": {"name": "handbook.txt", "filetype": "text", "mimetype": "text/plain", "user": "UCAROL",
                   "content": f"The {WORD} quartz handbook: leave, benefits and reviews.\n".encode()},
        },
    }


def workspace_of(site: dict[str, Any]) -> SlackStandIn:
    server = SlackStandIn(team_id=TEAM)
    server.token = BOT_TOKEN
    for name, person in PEOPLE.items():
        server.names[person["id"]] = name.title()
        if person["email"]:
            server.emails[person["id"]] = person["email"]
        extra = {}
        if person.get("guest"):
            extra["is_restricted"] = True
        if person.get("team"):
            extra["team_id"] = person["team"]
        if extra:
            server.users[person["id"]] = extra
    server.emails["UGONE"] = "gone@corp.example"
    server.users["UGONE"] = {"deleted": True}
    server.bots.add("UHELPER")
    server.unknown_users.add("UGHOST")  # a member Slack will not describe
    server.channels, server.members, server.history, server.files = (
        site["channels"], site["members"], site["history"], site["files"])
    return server


@pytest.fixture
def workspace():
    server = workspace_of(scenario())
    with server:
        yield server


def connector(server: SlackStandIn, **options: Any) -> SlackConnector:
    options.setdefault("exclude_channels", sorted(EXCLUDED))
    return SlackConnector(team_id=TEAM, bot_token=BOT_TOKEN, api_url=f"{server.url}/api", **options)


# -- the oracle: straight from the scenario, no connector code ---------------------------------------------------


def indexed_channel(channel: dict[str, Any]) -> bool:
    return bool(channel["is_member"]) and not channel.get("is_archived") and channel["name"] not in EXCLUDED


def readable_channels(site: dict[str, Any], name: str) -> set[str]:
    person = PEOPLE[name]
    external = person.get("team", TEAM) != TEAM
    if external and person["linked"] != "slack":
        return set()  # another organisation's email names nobody here
    full = not external and not person.get("guest")
    return {cid for cid, channel in site["channels"].items() if indexed_channel(channel) and (
        person["id"] in site["members"][cid] or (not channel["is_private"] and full))}


def expected_documents(site: dict[str, Any]) -> set[str]:
    """What the channels should make: a thread per message with replies, a day per channel for the others, a
    document per file shared."""
    documents = set()
    for cid, messages in site["history"].items():
        if not indexed_channel(site["channels"][cid]):
            continue
        for top in (m for m in messages if m.get("thread_ts", m["ts"]) == m["ts"]):
            replies = [m for m in messages if m.get("thread_ts") == top["ts"] and m["ts"] != top["ts"]]
            if replies:
                documents.add(f"{cid}/thread/{top['ts']}")
            elif not top.get("deleted") and not top.get("subtype"):
                documents.add(f"{cid}/day/{day_of(top['ts'])}")
            for shared in [top, *replies]:
                documents |= {f"{cid}/file/{f}" for f in shared.get("files", [])}
    return documents


# -- the product -------------------------------------------------------------------------------------------------


def make_users() -> dict[str, Any]:
    users = {}
    for name, person in PEOPLE.items():
        user = get_user_model().objects.create_user(name, password="pw")
        outside = bool(person.get("guest") or person.get("team"))
        Account.objects.create(user=user, status=Account.Status.GUEST if outside else Account.Status.EMPLOYEE)
        principal = (f"email:{person['email'].lower()}" if person["linked"] == "email"
                     else f"slack:{TEAM}:user:{person['id']}")
        ExternalIdentity.objects.create(user=user, principal=principal, is_external=outside)
        users[name] = user
    return users


def counts(run: SyncRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in ("seen", "added", "updated", "unchanged", "deleted", "failed")
            if getattr(run, name)}


def check_matrix(users: dict[str, Any], source: Source, site: dict[str, Any]) -> None:
    channel_of = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        leaks, denials = {}, {}
        for name, user in users.items():
            expected = {e for e in channel_of.values() if e.partition("/")[0] in readable_channels(site, name)}
            seen = {channel_of[h.document_id] for h in search(WORD, principals=principals_for(user), mode=mode,
                                                                  limit=1000)}
            if seen - expected:
                leaks[name] = seen - expected
            if expected - seen:
                denials[name] = expected - seen
        assert not leaks and not denials, (mode, leaks, denials)


def test_every_user_sees_exactly_the_channels_slack_lets_them_read_before_and_after_churn(backend_kind, workspace):
    users = make_users()
    source = connectors.ensure_source(
        "slack", "https://t1.slack.test", name=f"slack-{backend_kind}",
        index_name=retrieval_services.get_backend().index_name, search_backend=backend_kind,
        config={"team_id": TEAM, "api_url": f"{workspace.url}/api", "exclude_channels": sorted(EXCLUDED)},
        secrets={"bot_token": BOT_TOKEN})
    site = workspace  # the stand-in holds the scenario the test changes
    first = connectors.run_sync(source, "full")
    assert (first.state, counts(first)) == ("succeeded", {"seen": 13, "added": 13}), first.errors
    groups = connectors.run_sync(source, "groups")
    assert (groups.state, groups.seen) == ("succeeded", 6)
    documents = set(Document.objects.filter(source=source).values_list("external_id", flat=True))
    state = {"channels": site.channels, "members": site.members, "history": site.history}
    assert documents == expected_documents(state) and len(documents) == 13
    # The scenario exercises what it means to: guests, Slack Connect, an email-less member, channels left out.
    assert readable_channels(state, "gina") == {"CENG"}
    assert readable_channels(state, "xavier") == {"CSHR", "CPUB"} and readable_channels(state, "yuri") == set()
    assert readable_channels(state, "dan") == {"CGEN", "CENG", "CHR", "CPUB"}
    assert readable_channels(state, "carol") == {"CGEN", "CENG", "CHR", "CPUB"}
    check_matrix(users, source, state)

    thread = Document.objects.get(source=source, external_id=f"CGEN/thread/{at(3, 9)}")
    assert thread.url == f"https://t1.slack.test/archives/CGEN/p{at(3, 9).replace('.', '')}" \
                         f"?thread_ts={at(3, 9)}&cid=CGEN"
    assert thread.acl_principals == [f"slack:{TEAM}:channel:CGEN"] and thread.title.startswith("#general: ")
    runbook = Document.objects.get(source=source, external_id="CENG/file/F1")
    assert (runbook.mime_type, runbook.status, runbook.title) == ("text/markdown", "indexed", "Nebula runbook")

    with workspace.scenario_lock:
        site.members["CHR"] = ["UCAROL", "UDAN", "UBOB", "UBOT"]  # alice out, bob in
        site.members["CENG"].remove("UGINA")  # the guest leaves
        site.members["CSHR"].remove("UXAV")  # the partner leaves
        general = site.history["CGEN"]
        general[6] = {**general[6], "text": f"{WORD} marmot draft v2 is ready.",
                      "edited": {"user": "UCAROL", "ts": f"{int(NOW)}.000000"}}  # a message edited
        general[5] = {**general[5], "text": f"{WORD} lantern: and erin is on call.",
                      "edited": {"user": "UCAROL", "ts": f"{int(NOW)}.000000"}}  # a reply edited
        general.append(message(at(0, 8), "bob", "notes from the stand-up.", files=["F3"]))  # a file shared
        site.files["F3"] = {"name": "notes.txt", "filetype": "text", "mimetype": "text/plain", "user": "UBOB",
                            "content": f"{WORD} stand-up notes: nebula fixed.\n".encode()}
        site.history["CSHR"] = site.history["CSHR"][:1]  # two messages deleted (one alone on its day)
        site.history["CENG"] = site.history["CENG"][2:]  # a whole thread deleted
        site.channels["CENG"]["is_private"] = True  # made private
        site.channels["CPUB"]["is_archived"] = True  # archived
        site.history["CHR"].append(reply(at(40, 10), at(0, 9), "carol", "oriole: moved to June.",
                                         subtype="thread_broadcast"))  # a reply to an old thread, also in channel
        site.channels["CNEW"] = {"name": "launch", "is_private": False, "is_member": True}  # the app joins
        site.members["CNEW"] = ["UALICE", "UCAROL", "UBOT"]
        site.history["CNEW"] = [message(at(20, 9), "alice", "yarrow launch plan."),
                                message(at(0, 7), "carol", "yarrow launch moved.")]
    workspace.requests.clear()
    incremental = connectors.run_sync(source, "incremental")
    assert (incremental.kind, incremental.state) == ("incremental", "succeeded"), incremental.errors
    assert counts(incremental) == {"seen": 12, "added": 4, "updated": 4, "unchanged": 4, "deleted": 2}
    # Known channels were read from their window; the new channel alone from its start.
    history = [r.form for r in workspace.requests_to("conversations.history")]
    assert {f["channel"] for f in history if "oldest" not in f} == {"CNEW"}
    assert {f["channel"] for f in history if "oldest" in f} == {"CGEN", "CENG", "CHR", "CSHR"}
    assert connectors.run_sync(source, "groups").seen == 6  # CPUB's group dropped, CNEW's added
    documents = set(Document.objects.filter(source=source).values_list("external_id", flat=True))
    # The archived channel's day stays (hidden) until a full run prunes it.
    assert documents == expected_documents(state) | {f"CPUB/day/{day_of(at(6, 12))}"}
    assert readable_channels(state, "carol") == {"CGEN", "CHR", "CNEW"}  # eng went private
    assert readable_channels(state, "bob") == {"CGEN", "CENG", "CHR", "CSHR", "CNEW"}
    assert readable_channels(state, "gina") == set() and readable_channels(state, "xavier") == set()
    check_matrix(users, source, state)
    edited = Document.objects.get(source=source, external_id=f"CGEN/thread/{at(3, 9)}")
    found = search("erin", principals=principals_for(users["carol"]), mode=SearchMode.BM25, limit=5)
    assert [hit.document_id for hit in found] == [edited.pk]  # the edited reply is what the index holds

    quiet = connectors.run_sync(source, "incremental")  # nothing changed: the window is read, nothing rewritten
    assert counts(quiet) == {"seen": 11, "unchanged": 11}
    full = connectors.run_sync(source, "full")
    assert counts(full) == {"seen": 14, "unchanged": 14, "deleted": 1}
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == \
        expected_documents(state)
    check_matrix(users, source, state)


# -- the connector alone -----------------------------------------------------------------------------------------


def drain(listing) -> tuple[list, list[Checkpoint], list[Cursor]]:
    entries, checkpoints, cursors = [], [], []
    for entry in listing:
        (checkpoints if isinstance(entry, Checkpoint) else cursors if isinstance(entry, Cursor) else entries).append(
            entry)
    return entries, checkpoints, cursors


def ids(entries: list) -> list[str]:
    return [e.external_id for e in entries if isinstance(e, SourceItem)]


def test_groups_name_members_by_email_and_slack_identity_and_keep_outsiders_apart(workspace):
    reader = connector(workspace)
    groups = {g.principal: g for g in reader.list_groups()}
    slack = f"slack:{TEAM}"
    assert set(groups) == {f"{slack}:workspace", *(f"{slack}:channel:{c}" for c in ("CGEN", "CENG", "CHR", "CSHR",
                                                                                      "CPUB"))}
    # Full members only: no guest, bot, deactivated user or partner.
    assert groups[f"{slack}:workspace"].members == tuple(sorted({
        "email:alice@corp.example", f"{slack}:user:UALICE", "email:bob@corp.example", f"{slack}:user:UBOB",
        "email:carol@corp.example", f"{slack}:user:UCAROL", f"{slack}:user:UDAN"}))
    # A public channel: the workspace, plus its guest.
    assert groups[f"{slack}:channel:CENG"].members == (
        "email:gina@contractor.example", f"{slack}:user:UGINA", f"{slack}:workspace")
    # A private channel: its members; the app's helper bot reads nothing.
    assert groups[f"{slack}:channel:CHR"].members == (
        "email:alice@corp.example", "email:carol@corp.example", f"{slack}:user:UALICE", f"{slack}:user:UCAROL",
        f"{slack}:user:UDAN")
    # Slack Connect: partners by their Slack identity only, never their email; one Slack will not describe is
    # left out and counted.
    assert groups[f"{slack}:channel:CSHR"].members == (
        "email:bob@corp.example", f"{slack}:user:UBOB", f"{slack}:user:UXAV", f"{slack}:user:UYURI")
    assert groups[f"{slack}:channel:CPUB"].members == (f"{slack}:user:UXAV", f"{slack}:workspace")
    assert reader.left_out == {"CSHR": 1}
    assert reader.fetch_permissions("CHR/day/2025-01-01").principals == {f"{slack}:channel:CHR"}
    for gone in ("COLD/day/x", "CNOT/day/x", "CRND/day/x", "CSEC/day/x"):
        hidden = reader.fetch_permissions(gone)
        assert hidden.status == "unknown" and not hidden.principals and "no longer synced" in hidden.reason
    workspace.fail("conversations.members", status=500, times=None)
    with pytest.raises(ValueError, match="members could not be read"):
        list(connector(workspace, sleep=lambda _: None).list_groups())


def test_load_checkpoints_every_history_page_and_resumes_without_reading_earlier_pages(workspace):
    workspace.max_page = 2
    full, checkpoints, cursors = drain(connector(workspace).load())
    assert len(cursors) == 1 and sorted(ids(full)) == sorted(expected_documents(
        {"channels": workspace.channels, "history": workspace.history}))
    pages = [c.state for c in checkpoints if c.state["channel"]]
    assert len(pages) == len(workspace.requests_to("conversations.history"))
    # Stop after CHR's first page (its two newest top-level messages).
    listing = connector(workspace).load()
    state = None
    for entry in listing:
        if isinstance(entry, Checkpoint) and entry.state["channel"] == "CHR":
            state = entry.state
            break
    listing.close()  # the worker is killed here
    assert state is not None and set(state["done"]) == {"CENG", "CGEN"}
    # CHR's first page holds the quartz day (not done: more of its messages may follow) and an older thread: the
    # run resumes from the end of the quartz day.
    assert state["latest"] == f"{TODAY - 5 * 86400 + 86399}.999999"
    workspace.requests.clear()
    rest, _, (cursor,) = drain(connector(workspace).load(checkpoint=state))
    history = [r.form for r in workspace.requests_to("conversations.history")]
    assert {f["channel"] for f in history} == {"CHR", "CPUB", "CSHR"}  # finished channels are not read again
    first_chr = next(f for f in history if f["channel"] == "CHR")
    assert first_chr["latest"] == state["latest"] and "cursor" not in first_chr
    # Every document is made, and the resumed run re-made at most the day that went over the page.
    assert set(ids(rest)) | {i for i in ids(full) if i.startswith(("CENG", "CGEN"))} == set(ids(full))
    assert cursor == cursors[0]


def test_changes_read_each_channel_from_its_window_and_a_new_channel_backfills_alone(workspace):
    _, _, (cursor,) = drain(connector(workspace, clock=lambda: NOW).load())
    channels = cursor.state["channels"]
    assert set(channels) == {"CGEN", "CENG", "CHR", "CSHR", "CPUB"}
    assert channels["CGEN"]["latest"] == at(1, 13)
    # Only documents the look-back window (7 days) holds are remembered.
    assert channels["CHR"]["recent"] == {f"day/{day_of(at(5, 9))}": f"{TODAY - 5 * 86400}.000000",
                                         "file/F2": at(5, 9)}
    workspace.requests.clear()
    nothing = [e for e in connector(workspace, clock=lambda: NOW).changes(cursor.state) if isinstance(e, Deleted)]
    assert nothing == []
    window = f"{TODAY - 7 * 86400}.000000"
    assert all(r.form["oldest"] == window and r.form["inclusive"] == "true"
               for r in workspace.requests_to("conversations.history"))
    with pytest.raises(CursorExpired):
        list(connector(workspace).changes({"since": "yesterday"}))
    # A channel that cannot be read: nothing is lost, no cursor moves.
    workspace.fail("conversations.history", status=500, times=None)
    with pytest.raises(IncompleteListing, match="unreadable_channel"):
        drain(connector(workspace, sleep=lambda _: None).changes(cursor.state))


def test_a_storm_of_429s_loses_nothing_and_waits_exactly_as_slack_asks():
    with workspace_of(scenario()) as calm:
        calm.max_page = 2
        expected = {e.external_id: e.read() for e in connector(calm).load() if isinstance(e, SourceItem)}
    with workspace_of(scenario()) as stormy:
        stormy.max_page = 2
        stormy.throttle_every = 3
        stormy.retry_after_values = [1, 7, 30]
        waits: list[float] = []
        reader = connector(stormy, sleep=waits.append)
        loaded = {e.external_id: e.read() for e in reader.load() if isinstance(e, SourceItem)}
        groups = list(reader.list_groups())
        assert len(stormy.throttled) > 15 and waits == stormy.throttled
    assert loaded == expected and len(groups) == 6


def test_files_are_fetched_with_the_token_from_slack_only_and_never_past_their_listed_size(workspace):
    item = next(e for e in connector(workspace).load() if isinstance(e, SourceItem) and e.external_id.endswith("F1"))
    assert item.read() == workspace.files["F1"]["content"] and item.size_bytes == len(item.read())
    download = workspace.requests_to("files:F1")[-1]
    assert download.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    workspace.script("files:F1", Reply(200, b"x" * (item.size_bytes + 10), {"Content-Type": "text/plain"}))
    with pytest.raises(ItemError, match="longer than the listed"):
        item.read()
    workspace.script("files:F1", Reply(200, b"<html>Sign in</html>", {"Content-Type": "text/html"}))
    with pytest.raises(ItemError, match="web page instead of the file"):
        item.read()
    with pytest.raises(ItemError, match="not sent there"):
        connector(workspace)._download("CENG/file/F9", "https://evil.example/f", 10, "text/plain")
    assert not [r for r in workspace.requests if "evil" in r.headers.get("host", "")]


def test_a_refused_or_foreign_token_fails_the_listing_and_the_token_never_shows(workspace, caplog):
    with pytest.raises(SourceUnavailable, match="invalid_auth"):
        list(SlackConnector(team_id=TEAM, bot_token="xoxb-wrong", api_url=f"{workspace.url}/api").load())
    with pytest.raises(SourceUnavailable, match="belongs to workspace 'T1'"):
        list(SlackConnector(team_id="T2", bot_token=BOT_TOKEN, api_url=f"{workspace.url}/api").load())
    for config, problem in (({"team_id": "acme"}, "team id"), ({"team_id": TEAM, "bot_token": BOT_TOKEN}, "secret"),
                            ({"team_id": TEAM, "channels": [BOT_TOKEN]}, "secret"),
                            ({"team_id": TEAM, "lookback_days": 400}, "lookback_days"),
                            ({"team_id": TEAM, "channel": ["general"]}, "channel")):
        with pytest.raises(InvalidInput, match=problem) as refused:
            connectors.ensure_source("slack", "https://t1.slack.test", config=config)
        assert BOT_TOKEN not in str(refused.value)
    caplog.set_level(logging.DEBUG)
    source = connectors.ensure_source("slack", "https://t1.slack.test", secrets={"bot_token": BOT_TOKEN},
                                      config={"team_id": TEAM, "api_url": f"{workspace.url}/api"})
    # Failures are logged and recorded (an error Slack does not ask to retry: the run does not wait).
    workspace.fail("conversations.replies", status=200, body={"ok": False, "error": "fatal_error"}, times=None)
    run = connectors.run_sync(source, "full")
    assert run.state == "partial"
    assert BOT_TOKEN not in str(source.config) and BOT_TOKEN not in source.encrypted_secrets
    assert BOT_TOKEN not in caplog.text and BOT_TOKEN not in str(run.errors) and BOT_TOKEN not in repr(
        connector_for(source))
    assert all(BOT_TOKEN not in r.body.decode() and BOT_TOKEN not in str(r.query) for r in workspace.requests)


# -- a sync killed mid-run resumes its run -----------------------------------------------------------------------


def test_a_sync_killed_mid_run_resumes_the_same_run_without_reading_earlier_pages(tmp_path, settings,
                                                                                   shared_database):
    index_dir, index_name = tmp_path / "index", f"test-slack-{uuid.uuid4().hex[:8]}"
    settings.CITEWISE = settings.CITEWISE.replace(search_backend="embedded", embedded_index_dir=index_dir,
                                                  index_name=index_name)
    retrieval_services._backends.clear()
    site = {"channels": {"CA": {"name": "alpha", "is_private": False, "is_member": True},
                         "CB": {"name": "beta", "is_private": True, "is_member": True}},
            "members": {"CA": ["UALICE", "UBOT"], "CB": ["UBOB", "UBOT"]},
            "history": {cid: [message(at(day, 9), "alice", f"{cid} day {day} notes.")
                              for day in range(1, 13)] for cid in ("CA", "CB")},
            "files": {}}
    with workspace_of(site) as server:
        server.max_page = 3  # 4 pages a channel
        source = connectors.ensure_source("slack", "https://t1.slack.test", secrets={"bot_token": BOT_TOKEN},
                                          config={"team_id": TEAM, "api_url": f"{server.url}/api"})
        # CB's second page hangs: the child has committed CA and CB's first page when it is killed.
        server.script("conversations.history", *([server.default] * 5), hang(120, server.default))
        env = worker_environment(shared_database, tmp_path, index_dir=index_dir, index_name=index_name)
        env["CITEWISE_ENCRYPTION_KEY"] = settings.CITEWISE.encryption_key
        log = tmp_path / "child.log"

        def midway() -> bool:
            run = SyncRun.objects.filter(source=source).first()
            return len(server.requests_to("conversations.history")) >= 6 and run is not None \
                and (run.checkpoint.get("resume") or {}).get("channel") == "CB"

        run = kill_sync_midway(source, env, log, midway)
        checkpoint = run.checkpoint["resume"]
        committed = dict(Document.objects.filter(source=source, seen_by_run=run.pk).values_list("id", "indexed_at"))
        assert checkpoint["channel"] == "CB" and set(checkpoint["done"]) == {"CA"} and 12 <= len(committed) < 24
        server.clear("conversations.history")
        before = len(server.requests)
        resumed = connectors.run_sync(source, "full")
        after = [r.form for r in server.requests[before:] if server.route(r) == "conversations.history"]
        assert (resumed.pk, resumed.state, resumed.resumed) == (run.pk, "succeeded", 1)
        assert {f["channel"] for f in after} == {"CB"} and after[0]["latest"] == checkpoint["latest"]
        assert counts(resumed) == {"seen": 24, "added": 24}
        documents = Document.objects.filter(source=source)
        assert documents.count() == 24 and not documents.exclude(status="indexed").exists()
        assert dict(documents.filter(id__in=committed).values_list("id", "indexed_at")) == committed
        backend = retrieval_services.get_backend(index_name, "embedded")
        assert backend.document_ids(source_ids=[str(source.pk)]) == set(documents.values_list("id", flat=True))
        assert sum(len(page) for page in backend.chunk_texts()) == sum(documents.values_list("chunk_count",
                                                                                               flat=True))
