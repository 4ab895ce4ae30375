"""The Slack bot end to end: signed requests to the Django app, every Web API call recorded by a local stand-in."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from slack_sdk.errors import SlackApiError

from answers.models import Answer, Feedback
from bot import services
from bot.models import ChannelSettings, ProcessedEvent, ThreadConversation
from connectors.models import Document
from identity.models import ExternalIdentity
from identity.selectors import principals_for
from tests.bot.conftest import TEAM, button_click, channel_message, dm, flag_submission, mention
from tests.fixtures import merge, payload

pytestmark = pytest.mark.django_db
QUESTION = "How much extra pay do I get for a week of on-call?"
SLACK_IDS = {"alice": "UALICE", "ben": "UBEN", "chris": "UCHRIS"}


@pytest.fixture
def demo(load_demo, slack):
    load_demo()
    users = get_user_model().objects
    # alice and ben are linked by Slack identity; chris is found through the email users.info reports.
    for name in ("alice", "ben"):
        ExternalIdentity.objects.create(user=users.get(username=name), principal=f"slack:{TEAM}:user:{SLACK_IDS[name]}")
    slack.emails["UCHRIS"] = "Chris@northbridge-contracting.example"
    slack.emails["UNOBODY"] = "nobody@elsewhere.example"
    return slack


def blocks_text(blocks: list[dict]) -> str:
    out = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        for element in block.get("elements", []):
            out.append((element.get("text") or {}).get("text", "") if isinstance(element.get("text"), dict)
                       else element.get("text", ""))
    return "\n".join(out)


def buttons(blocks: list[dict]) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def test_url_verification(slack, sender):
    body = json.dumps(payload("slack/url_verification", challenge="c-123"))
    response = sender.raw(body, "application/json")
    assert response.status_code == 200
    assert "c-123" in response.content.decode()


def test_mention_gets_a_threaded_ephemeral_answer_with_citations_and_buttons(demo, sender):
    response = sender.post_event(mention("UALICE", QUESTION, ts="100.000001"))
    assert response.status_code == 200
    [post] = demo.posts()
    assert post["method"] == "chat.postEphemeral"  # the default channel mode
    body = post["body"]
    assert body["thread_ts"] == "100.000001" and body["channel"] == "C1" and body["user"] == "UALICE"
    text = blocks_text(body["blocks"])
    assert "$400 per week" in text and "*Sources*" in text and "[1]" in text
    assert "visible only to you" in text
    answer = Answer.objects.get()
    assert buttons(body["blocks"]) == {"feedback_up": str(answer.id), "feedback_down": str(answer.id),
                                       "flag": str(answer.id)}
    assert answer.user.username == "alice" and answer.surface == "slack"
    # Work under way was shown and then cleared.
    assert demo.of("reactions.add") and demo.of("reactions.remove")


def test_dm_answers_in_the_dm_with_the_askers_permissions(demo, sender):
    sender.post_event(dm("UBEN", QUESTION, ts="200.000001"))
    [post] = demo.posts()
    assert post["method"] == "chat.postMessage" and post["body"]["channel"] == "D1"
    assert post["body"]["thread_ts"] == "200.000001"
    text = blocks_text(post["body"]["blocks"])
    assert "stipend" in text and "$400" not in text


def test_follow_up_in_a_thread_continues_the_conversation(demo, sender):
    sender.post_event(mention("UALICE", QUESTION, ts="300.000001"))
    sender.post_event(mention("UALICE", "And who approves it?", ts="300.000002", thread_ts="300.000001"))
    first, second = Answer.objects.order_by("created_at")
    assert first.conversation_id == second.conversation_id
    assert ThreadConversation.objects.count() == 1
    assert all(p["body"]["thread_ts"] == "300.000001" for p in demo.posts())


def test_thumbs_up_is_recorded(demo, sender):
    sender.post_event(mention("UALICE", QUESTION, ts="400.000001"))
    answer = Answer.objects.get()
    response = sender.post_payload(button_click("feedback_up", str(answer.id)))
    assert response.status_code == 200
    feedback = Feedback.objects.get()
    assert feedback.kind == "up" and feedback.user.username == "alice" and feedback.answer_id == answer.id
    assert "recorded" in demo.posts()[-1]["body"]["text"]


def test_flag_opens_a_modal_and_the_submission_is_stored(demo, sender):
    sender.post_event(mention("UALICE", QUESTION, ts="500.000001"))
    answer = Answer.objects.get()
    sender.post_payload(button_click("flag", str(answer.id), trigger_id="trigger-9"))
    [opened] = demo.of("views.open")
    assert opened["body"]["trigger_id"] == "trigger-9"
    view = opened["body"]["view"]
    assert view["callback_id"] == "citewise_flag"
    response = sender.post_payload(flag_submission(view["private_metadata"], reason="wrong", comment="Out of date"))
    assert response.status_code == 200
    flag = Feedback.objects.get()
    assert (flag.kind, flag.reason, flag.comment, flag.user.username) == ("flag", "wrong", "Out of date", "alice")


def test_a_resent_event_is_answered_once(demo, sender):
    event = mention("UALICE", QUESTION, ts="600.000001")
    sender.post_event(event, event_id="EvSAME")
    response = sender.post_event(event, event_id="EvSAME",
                                 headers={"HTTP_X_SLACK_RETRY_NUM": "1", "HTTP_X_SLACK_RETRY_REASON": "http_timeout"})
    assert response.status_code == 200
    assert len(demo.posts()) == 1 and Answer.objects.count() == 1
    assert ProcessedEvent.objects.get().status == "done"


def test_a_retry_after_a_failed_first_attempt_still_answers(demo, sender, settings):
    from retrieval import services as retrieval_services

    working = settings.CITEWISE
    # A real outage: the configured search backend is an Elasticsearch node that does not answer.
    settings.CITEWISE = working.replace(search_backend="elasticsearch", elasticsearch_url="http://127.0.0.1:9",
                         elasticsearch_timeout_s=2)
    retrieval_services._backends.clear()
    event = mention("UALICE", QUESTION, ts="650.000001")
    sender.post_event(event, event_id="EvFLAKY")
    [apology] = demo.posts()
    assert "unavailable" in apology["body"]["text"]
    assert ProcessedEvent.objects.get().status == "failed"
    settings.CITEWISE = working
    retrieval_services._backends.clear()
    sender.post_event(event, event_id="EvFLAKY", headers={"HTTP_X_SLACK_RETRY_NUM": "1"})
    assert "$400 per week" in blocks_text(demo.posts()[-1]["body"]["blocks"])
    assert ProcessedEvent.objects.get().status == "done"


@pytest.mark.parametrize("how", ["forged", "stale"])
def test_bad_signatures_are_refused_before_any_retrieval(demo, sender, how):
    kwargs = {"secret": "not-the-secret"} if how == "forged" else {"timestamp": int(time.time()) - 600}
    response = sender.post_event(mention("UALICE", QUESTION, ts="700.000001"), **kwargs)
    assert response.status_code == 401
    assert Answer.objects.count() == 0 and ProcessedEvent.objects.count() == 0 and demo.posts() == []


def test_a_rate_limited_post_is_retried_after_retry_after(demo, sender, bot_clock):
    ChannelSettings.objects.create(team_id=TEAM, channel_id="C1", visibility="channel_safe")
    demo.members["C1"] = ["UALICE", "UBOT"]
    demo.fail("chat.postMessage", status=429, retry_after=1)
    sender.post_event(mention("UALICE", QUESTION, ts="800.000001"))
    attempts = demo.of("chat.postMessage", ok_only=False)
    assert [a["status"] for a in attempts] == [429, 200]
    assert len(demo.posts()) == 1
    [waited] = bot_clock.waits  # Retry-After: 1, and up to a second of jitter
    assert 1 <= waited < 2


def test_a_claim_left_by_a_dead_worker_is_taken_over_by_slacks_retry(demo, sender):
    """Reproduces issue 10 item 10: a worker that claimed an event and died left it "processing" for 5 minutes, so
    Slack's retries (about 1 and 5 minutes later) were dropped as duplicates and the question went unanswered."""
    event = mention("UALICE", QUESTION, ts="820.000001")
    # The first delivery's worker claimed the event and died without answering, a lease and a second ago.
    died = timezone.now() - services.event_lease() - timedelta(seconds=1)
    assert services.claim_event("slack", "EvDIED", now=died)
    response = sender.post_event(event, event_id="EvDIED",
                                 headers={"HTTP_X_SLACK_RETRY_NUM": "2", "HTTP_X_SLACK_RETRY_REASON": "http_timeout"})
    assert response.status_code == 200
    [post] = demo.posts()
    assert "$400 per week" in blocks_text(post["body"]["blocks"])
    claim = ProcessedEvent.objects.get()
    assert (claim.status, claim.attempts) == ("done", 2)


def test_a_retry_while_the_worker_still_holds_its_lease_is_dropped(demo, sender):
    event = mention("UALICE", QUESTION, ts="830.000001")
    working_since = timezone.now() - services.event_lease() + timedelta(seconds=30)
    assert services.claim_event("slack", "EvBUSY", now=working_since)
    sender.post_event(event, event_id="EvBUSY", headers={"HTTP_X_SLACK_RETRY_NUM": "1"})
    assert demo.posts() == [] and ProcessedEvent.objects.get().status == "processing"


def test_a_retry_after_beyond_the_cap_fails_the_call_instead_of_waiting(slack):
    """Reproduces issue 10 item 10: the Slack client slept for any Retry-After (40 s here, twice), past gunicorn's
    30 s worker timeout, and the killed worker lost the event."""
    from bot.slack.client import make_client

    slack.fail("chat.postMessage", status=429, retry_after=40)  # the cap is 30 s
    with pytest.raises(SlackApiError) as raised:
        make_client().chat_postMessage(channel="C1", text="hello")
    assert raised.value.response.status_code == 429
    assert [c["status"] for c in slack.of("chat.postMessage", ok_only=False)] == [429]  # not waited for, not resent
    from bot.slack.client import MAX_RETRY_AFTER_S

    assert MAX_RETRY_AFTER_S < 40


def test_a_fractional_retry_after_is_waited_out(slack, bot_clock):
    from bot.slack.client import make_client

    slack.fail("chat.postMessage", status=429, retry_after="0.5")  # slack_sdk's own handler read it with int()
    assert make_client().chat_postMessage(channel="C1", text="hello")["ok"]
    assert [c["status"] for c in slack.of("chat.postMessage", ok_only=False)] == [429, 200]
    [waited] = bot_clock.waits
    assert 0.5 <= waited < 1.5


def test_a_throttled_answer_beyond_the_cap_is_explained_and_left_to_slacks_retry(demo, sender):
    ChannelSettings.objects.create(team_id=TEAM, channel_id="C1", visibility="channel_safe")
    demo.members["C1"] = ["UALICE", "UBOT"]
    demo.fail("chat.postMessage", status=429, retry_after=600)
    event = mention("UALICE", QUESTION, ts="840.000001")
    sender.post_event(event, event_id="EvTHROTTLED")
    throttled, apology = demo.of("chat.postMessage", ok_only=False)
    assert throttled["status"] == 429 and "went wrong" in apology["body"]["text"]
    assert ProcessedEvent.objects.get().status == "failed"
    sender.post_event(event, event_id="EvTHROTTLED", headers={"HTTP_X_SLACK_RETRY_NUM": "1"})
    assert "$400 per week" in blocks_text(demo.posts()[-1]["body"]["blocks"])
    assert ProcessedEvent.objects.get().status == "done"


def test_two_users_in_one_channel_get_different_ephemeral_answers(demo, sender):
    sender.post_event(mention("UALICE", QUESTION, ts="900.000001"))
    sender.post_event(mention("UCHRIS", QUESTION, ts="900.000002"))
    alice, chris = demo.posts()
    assert alice["method"] == chris["method"] == "chat.postEphemeral"
    assert (alice["body"]["user"], chris["body"]["user"]) == ("UALICE", "UCHRIS")
    assert "$400 per week" in blocks_text(alice["body"]["blocks"])
    chris_text = blocks_text(chris["body"]["blocks"])
    assert "$400" not in chris_text and "couldn't find an answer" in chris_text
    assert Answer.objects.get(question=QUESTION, user__username="chris").refused


def test_unknown_user_gets_public_documents_and_a_hint(demo, sender):
    sender.post_event(dm("UNOBODY", QUESTION, ts="950.000001"))
    text = blocks_text(demo.posts()[0]["body"]["blocks"])
    assert "$400" not in text and "link" in text and "public documents only" in text


def test_channel_safe_never_cites_what_a_member_cannot_read(demo, sender):
    ChannelSettings.objects.create(team_id=TEAM, channel_id="C2", visibility="channel_safe")
    demo.members["C2"] = ["UALICE", "UBEN", "UBOT"]
    sender.post_event(mention("UALICE", QUESTION, ts="990.000001", channel="C2"))
    sender.post_event(mention("UBEN", "What is the travel policy for hotels?", ts="990.000002", channel="C2"))
    posts = demo.posts()
    assert [p["method"] for p in posts] == ["chat.postMessage", "chat.postMessage"]
    assert all("everyone in this channel can read" in blocks_text(p["body"]["blocks"]) for p in posts)
    members = [get_user_model().objects.get(username=n) for n in ("alice", "ben")]
    cited = [c["document_id"] for a in Answer.objects.all() for c in a.citations]
    for document in Document.objects.filter(id__in=cited):
        for member in members:
            assert document.acl_public or set(document.acl_principals) & principals_for(member), (document, member)
    assert "$400" not in blocks_text(posts[0]["body"]["blocks"])


def test_bot_messages_are_ignored(demo, sender):
    sender.post_event(dm("UOTHER", QUESTION, ts="1.1", channel="D9", bot_id="BOTHER"))
    sender.post_event(dm("UBOT", QUESTION, ts="1.2", channel="D9"))
    assert demo.posts() == [] and Answer.objects.count() == 0


def test_channel_settings_disable_and_unmentioned_messages(demo, sender):
    ChannelSettings.objects.create(team_id=TEAM, channel_id="COFF", enabled=False)
    ChannelSettings.objects.create(team_id=TEAM, channel_id="COPEN", respond_only_when_mentioned=False)
    sender.post_event(mention("UALICE", QUESTION, ts="1100.000001", channel="COFF"))
    sender.post_event(channel_message("UALICE", QUESTION, ts="1100.000002", channel="C1"))  # default: mentions only
    assert demo.posts() == []
    sender.post_event(channel_message("UALICE", QUESTION, ts="1100.000003", channel="COPEN"))
    [post] = demo.posts()
    assert post["body"]["channel"] == "COPEN" and post["method"] == "chat.postEphemeral"


def test_slack_events_is_unavailable_until_configured(client, settings):
    settings.SLACK_SIGNING_SECRET = ""
    assert client.post("/slack/events", data="{}", content_type="application/json").status_code == 503


def test_a_channel_asking_too_fast_is_told_to_wait_and_other_channels_and_users_are_not(demo, sender, settings):
    """Reproduces issue 10 item 18: nothing limits how fast one channel asks; the bot answers every question."""
    from tests.api.test_rate_limits import searches_run

    settings.RATELIMIT_CACHE_PREFIX = f"citewise-test-rl-{uuid.uuid4().hex}:"
    # Per day: a fixed window rolling over mid-test would reset the counts.
    settings.CITEWISE = settings.CITEWISE.replace(ask_rate_per_channel="2/d", ask_rate_per_user="2/d")
    sender.post_event(mention("UALICE", QUESTION, ts="1100.000001", channel="C7"))
    sender.post_event(mention("UBEN", QUESTION, ts="1100.000002", channel="C7"))
    assert Answer.objects.count() == 2
    searches = searches_run()

    # A third person, within their own limit, in the same busy channel.
    sender.post_event(mention("UCHRIS", "Where is the bike storage?", ts="1100.000003", channel="C7"))
    reply = demo.posts()[-1]
    assert reply["body"]["channel"] == "C7" and reply["body"]["thread_ts"] == "1100.000003"
    assert "This channel" in reply["body"]["text"] and "wait" in reply["body"]["text"]
    assert Answer.objects.count() == 2 and searches_run() == searches
    # Done, not failed: Slack's redelivery must not ask again.
    assert ProcessedEvent.objects.order_by("-id").first().status == "done"

    # Another channel is unaffected, and so is the same person there.
    sender.post_event(mention("UCHRIS", "Where is the bike storage?", ts="1100.000004", channel="C8"))
    assert Answer.objects.count() == 3 and "wait" not in demo.posts()[-1]["body"]["text"]

    # The per-user limit follows a person across channels (a DM included).
    sender.post_event(dm("UALICE", QUESTION, ts="1100.000005", channel="D7"))
    assert Answer.objects.count() == 4
    sender.post_event(dm("UALICE", QUESTION, ts="1100.000006", channel="D7"))
    text = demo.posts()[-1]["body"]["text"]
    assert text.startswith("You") and "wait" in text and Answer.objects.count() == 4


# -- who counts as one of ours ---------------------------------------------------------------------------

ALICE_EMAIL = "alice@kestrelrobotics.com"
# users.info fields of people who are not full members of the installing workspace.
OUTSIDERS = {
    "UPARTNER": {"team_id": "TPARTNER"},  # a Slack Connect partner's user
    "UGUEST": {"is_restricted": True},  # a multi-channel guest of our own workspace
    "USCGUEST": {"is_restricted": True, "is_ultra_restricted": True},  # a single-channel guest
    "USTRANGER": {"team_id": "TPARTNER", "is_stranger": True},
    "UGONE": {"deleted": True},
}


def test_guests_and_other_workspaces_are_never_matched_by_email(demo, sender):
    """Reproduces issue 10 item 1: a user whose users.info names another team (a Slack Connect partner) or marks
    a guest, but reports an employee's email, was answered as that employee."""
    for n, (user, fields) in enumerate(OUTSIDERS.items()):
        demo.users[user] = fields
        demo.emails[user] = ALICE_EMAIL
        sender.post_event(dm(user, QUESTION, ts=f"2000.00000{n}", channel=f"D{user}"))
    posts = demo.posts()
    assert len(posts) == len(OUTSIDERS)
    for post in posts:
        text = blocks_text(post["body"]["blocks"])
        assert "$400" not in text and "guest or from another organisation" in text, post["body"]["channel"]
    assert Answer.objects.filter(user__isnull=False).count() == 0
    for answer in Answer.objects.all():
        assert all(Document.objects.get(id=c["document_id"]).acl_public for c in answer.citations)
    # An admin may still vouch for an outsider by linking their Slack identity.
    ExternalIdentity.objects.create(user=get_user_model().objects.get(username="alice"),
                                    principal=f"slack:{TEAM}:user:UPARTNER")
    sender.post_event(dm("UPARTNER", QUESTION, ts="2001.000001", channel="DUPARTNER"))
    assert "$400 per week" in blocks_text(demo.posts()[-1]["body"]["blocks"])


def test_enterprise_grid_members_of_our_org_match_by_email_and_other_orgs_do_not(demo, sender):
    """Reproduces issue 10 item 1: in an Enterprise Grid, another workspace of the same org is one of ours (its
    users' enterprise_user.enterprise_id is the installation's), a workspace of another org is not."""
    demo.enterprise_id = "E1"
    demo.emails["UDAVE"] = demo.emails["UIMPOSTOR"] = "dave@kestrelrobotics.com"
    demo.users["UDAVE"] = {"team_id": "T2", "enterprise_user": {"id": "UDAVE", "enterprise_id": "E1",
                                                                "enterprise_name": "Kestrel", "teams": ["T2"]}}
    demo.users["UIMPOSTOR"] = {"team_id": "T3", "enterprise_user": {"id": "UIMPOSTOR", "enterprise_id": "E2",
                                                                    "enterprise_name": "Else", "teams": ["T3"]}}
    sender.post_event(dm("UDAVE", QUESTION, ts="2100.000001", channel="DDAVE"))
    sender.post_event(dm("UIMPOSTOR", QUESTION, ts="2100.000002", channel="DIMPOSTOR"))
    dave, impostor = demo.posts()
    assert "$400 per week" in blocks_text(dave["body"]["blocks"])
    assert "$400" not in blocks_text(impostor["body"]["blocks"])
    assert [a.user.username if a.user else None for a in Answer.objects.order_by("created_at")] == ["dave", None]


def test_an_outsider_cannot_give_feedback_as_the_employee_whose_email_they_report(demo, sender):
    """Reproduces issue 10 item 1 (feedback and flag actions): a partner's user reporting alice's email could rate
    and flag alice's answers as alice."""
    sender.post_event(mention("UALICE", QUESTION, ts="2200.000001"))
    answer = Answer.objects.get()
    demo.users["UPARTNER"], demo.emails["UPARTNER"] = {"team_id": "TPARTNER"}, ALICE_EMAIL
    partner = {"user": {"id": "UPARTNER", "username": "partner", "name": "partner", "team_id": "TPARTNER"}}
    sender.post_payload(merge(button_click("feedback_down", str(answer.id)), partner))
    assert "Link your account" in demo.posts()[-1]["body"]["text"]
    metadata = json.dumps({"answer_id": str(answer.id), "channel_id": "C1"})
    response = sender.post_payload(merge(flag_submission(metadata, reason="wrong", comment="no"), partner))
    assert response.status_code == 200 and "Link your account" in response.content.decode()
    assert Feedback.objects.count() == 0


def test_channel_safe_counts_an_outsider_with_an_employees_email_as_unlinked(demo, sender):
    """Reproduces issue 10 item 1 (channel-safe member resolution): a partner's user in a shared channel who
    reports ben's email counted as ben, widening what the whole channel was shown."""
    ChannelSettings.objects.create(team_id=TEAM, channel_id="CSHARED", visibility="channel_safe")
    demo.members["CSHARED"] = ["UALICE", "UPARTNER", "UBOT"]
    demo.users["UPARTNER"], demo.emails["UPARTNER"] = {"team_id": "TPARTNER"}, "ben@kestrelrobotics.com"
    sender.post_event(mention("UALICE", "What is the travel policy for hotels?", ts="2300.000001",
                              channel="CSHARED"))
    [post] = demo.posts()
    assert "Some members aren't linked" in blocks_text(post["body"]["blocks"])
    answer = Answer.objects.get()
    assert all(Document.objects.get(id=c["document_id"]).acl_public for c in answer.citations)


# -- hostile input: 400/401/413 with a clear body, never a 500 ---------------------------------------

DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000
EVENT_WITHOUT_EVENT = json.dumps(payload("slack/app_mention", event=None, event_id="EvNOEVENT", event_time=1))
VIEW_WITHOUT_STATE = "payload=" + json.dumps(payload("slack/view_submission", view={"state": None}))
ACTION_WITHOUT_USER = "payload=" + json.dumps(payload("slack/block_actions", user=None))
SIGNED_BUT_ODD = {
    "not JSON": ("not json", "application/json"),
    "a JSON list": ("[1, 2]", "application/json"),
    "deeply nested JSON": (DEEPLY_NESTED, "application/json"),
    "not UTF-8": (b"{\"type\": \"\xff\xfe\"}", "application/json"),
    "an event_callback without event": (EVENT_WITHOUT_EVENT, "application/json"),
    "an interactivity payload that is not JSON": ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
    "an interactivity payload that is a list": ("payload=%5B1%5D", "application/x-www-form-urlencoded"),
    "a view submission without state": (VIEW_WITHOUT_STATE, "application/x-www-form-urlencoded"),
    "an action without a user": (ACTION_WITHOUT_USER, "application/x-www-form-urlencoded"),
}


def signed_post(client, body: str | bytes, content_type: str, *, timestamp: str | None = None,
                secret: str = "test-signing-secret"):
    raw = body.encode() if isinstance(body, str) else body
    ts = timestamp if timestamp is not None else str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return client.post("/slack/events", data=raw, content_type=content_type,
                       HTTP_X_SLACK_REQUEST_TIMESTAMP=ts, HTTP_X_SLACK_SIGNATURE=f"v0={digest}")


@pytest.mark.parametrize("shape", SIGNED_BUT_ODD)
def test_a_signed_request_of_an_odd_shape_is_400(slack, client, shape):
    """Reproduces issue 10 item 16: signed but odd Slack requests (a body that is not JSON, a JSON list, an event
    without `event`, an interactivity payload that is not JSON, a view submission without state, ...) made bolt or
    a listener raise, a 500."""
    body, content_type = SIGNED_BUT_ODD[shape]
    response = signed_post(client, body, content_type)
    assert response.status_code == 400, response.content
    assert response.json()["error"]
    assert ProcessedEvent.objects.count() == 0 and slack.calls == []


@pytest.mark.parametrize("timestamp", ["abc", "", "1e9", "9" * 5000], ids=["abc", "empty", "1e9", "5000 digits"])
def test_a_timestamp_that_is_not_a_number_is_401(slack, client, timestamp):
    """Reproduces issue 10 item 16: X-Slack-Request-Timestamp `abc` made bolt's signature check raise, a 500."""
    response = signed_post(client, json.dumps({"type": "event_callback"}), "application/json", timestamp=timestamp)
    assert response.status_code == 401, response.content
    assert "X-Slack-Request-Timestamp" in response.json()["error"]


@pytest.mark.parametrize("body", [DEEPLY_NESTED, "not json", "payload=%7Bnot-json"],
                         ids=["deeply nested", "not json", "payload not json"])
def test_an_unsigned_body_is_refused_before_it_is_parsed(slack, client, body):
    """Reproduces issue 10 item 16: bolt parses the body before it checks the signature, so an unsigned request
    nested 100,000 deep raised RecursionError, a 500."""
    response = signed_post(client, body, "application/json", secret="not-the-secret")
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "invalid request signature"}


def test_a_body_larger_than_django_accepts_is_413(slack, client, settings):
    """Reproduces issue 10 item 16 (body size): Django refused it, but with its bare HTML 400 page."""
    body = json.dumps({"type": "event_callback", "padding": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = signed_post(client, body, "application/json")
    assert response.status_code == 413 and "larger" in response.json()["error"]


def test_a_flag_submission_with_unreadable_metadata_is_answered_in_the_modal(demo, sender):
    response = sender.post_payload(flag_submission("{not json", reason="wrong", comment=None))
    assert response.status_code == 200
    assert response.json()["response_action"] == "errors" and Feedback.objects.count() == 0


# -- channel-safe member resolution in bulk ------------------------------------------------------------

IDENTITY_TABLES = ("connectors_externalidentity", "connectors_account", "connectors_groupmembership")


def identity_queries(captured) -> int:
    return sum(any(table in query["sql"] for table in IDENTITY_TABLES) for query in captured.captured_queries)


def add_linked_members(slack, how_many: int, *, prefix: str) -> list[str]:
    """Citewise users linked to Slack ids, each in a group, as an organisation's staff are."""
    from identity.models import Group, GroupMembership
    from identity.principals import local_principal

    group, _ = Group.objects.get_or_create(principal="group:bulk-staff")
    ids = []
    for n in range(how_many):
        user = get_user_model().objects.create_user(f"{prefix}{n}", f"{prefix}{n}@kestrelrobotics.com")
        ExternalIdentity.objects.create(user=user, principal=f"slack:{TEAM}:user:U{prefix.upper()}{n}")
        GroupMembership.objects.create(group=group, member=local_principal(user.username))
        ids.append(f"U{prefix.upper()}{n}")
    return ids


def test_channel_safe_resolves_members_in_bulk_and_asks_slack_only_about_unlinked_ones(demo, sender):
    """Reproduces issue 11 item 3: channel-safe answers resolved members one by one (an identity query, an email
    query and a principal expansion each, and a users.info call for every member, linked ones included), so the
    work grew with the channel."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ChannelSettings.objects.create(team_id=TEAM, channel_id="CSMALL", visibility="channel_safe")
    ChannelSettings.objects.create(team_id=TEAM, channel_id="CLARGE", visibility="channel_safe")
    demo.members["CSMALL"] = ["UALICE", "UBEN", "UCHRIS", "UBOT", *add_linked_members(demo, 1, prefix="small")]
    unlinked = [f"UTEMP{n}" for n in range(250)]
    for n, user in enumerate(unlinked):
        demo.emails[user] = f"temp{n}@elsewhere.example"
    demo.bots |= {"UOTHERBOT"}
    demo.members["CLARGE"] = ["UALICE", "UBEN", "UCHRIS", "UBOT", "UOTHERBOT", *unlinked,
                              *add_linked_members(demo, 12, prefix="large")]
    with CaptureQueriesContext(connection) as small:
        sender.post_event(mention("UALICE", QUESTION, ts="3000.000001", channel="CSMALL"))
    # A few unlinked members are asked about one by one: here only chris.
    assert [call["body"]["user"] for call in demo.of("users.info")] == ["UCHRIS"]
    assert demo.of("users.list") == []
    with CaptureQueriesContext(connection) as large:
        sender.post_event(mention("UALICE", QUESTION, ts="3000.000002", channel="CLARGE"))
    assert len(demo.posts()) == 2
    assert all("everyone in this channel can read" in blocks_text(p["body"]["blocks"]) for p in demo.posts())
    # The same identity work for 268 members as for 5: the linked ones in one query, the emails in another, and
    # the principals of all of them expanded together.
    assert identity_queries(large) == identity_queries(small)
    # Slack is not asked about each member: the member list and the workspace's user list, a page per 200.
    assert len(demo.of("conversations.members")) == 1 + 2
    assert len(demo.of("users.list")) == 2
    assert [call["body"]["user"] for call in demo.of("users.info")] == ["UCHRIS"]  # cached since


def questions_counted(outcome: str, halt: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("citewise_bot_questions_total",
                                     {"platform": "slack", "outcome": outcome, "halt": halt}) or 0.0


def test_each_question_is_counted_by_what_became_of_it_and_why(demo, sender, client, settings):
    answered, ignored = questions_counted("answered", "none"), questions_counted("ignored", "channel_disabled")
    sender.post_event(mention("UALICE", QUESTION, ts="3100.000001"))
    ChannelSettings.objects.create(team_id=TEAM, channel_id="COFF", enabled=False)
    sender.post_event(mention("UALICE", QUESTION, ts="3100.000002", channel="COFF"))
    assert questions_counted("answered", "none") == answered + 1
    assert questions_counted("ignored", "channel_disabled") == ignored + 1
    settings.CITEWISE_METRICS_TOKEN = "a-long-random-metrics-scrape-token"
    scrape = client.get("/metrics", headers={"Authorization": "Bearer a-long-random-metrics-scrape-token"})
    assert 'citewise_bot_questions_total{halt="none",outcome="answered",platform="slack"}' in scrape.content.decode()
