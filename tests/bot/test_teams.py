"""The Teams bot end to end: activities with Bot Framework JWTs posted to the Django app, tokens checked against a
local OpenID/JWKS stand-in, and every Bot Connector call (replies, typing, member lookups) recorded by a local
connector-service stand-in."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from answers.models import Answer, Feedback
from bot.models import ChannelSettings, ProcessedEvent, ThreadConversation
from connectors.models import Document
from identity.models import ExternalIdentity
from identity.selectors import principals_for
from tests.fixtures import merge, payload
from tests.standins.teams import MEMBER_ROUTES, BotFrameworkIdentityStandIn, ConnectorStandIn

pytestmark = pytest.mark.django_db

APP_ID = "5c8b7f54-2d61-4d1a-9d0c-4f1f1b1e2a33"
APP_PASSWORD = "teams-test-client-secret"
TENANT = "0d7b2a3c-1f4e-4b5a-8c9d-6e7f8a9b0c1d"
BOT = f"28:{APP_ID}"
TEAM = "19:kestrel-team@thread.tacv2"
CHANNEL = "19:general@thread.tacv2"
QUESTION = "How much extra pay do I get for a week of on-call?"
# Teams user id, AAD object id, display name, email, UPN.
USERS = {
    "alice": ("29:1alice", "a11ce000-0000-4000-8000-000000000001", "Alice Example", "alice@kestrelrobotics.com",
              "alice@kestrelrobotics.com"),
    # Ben's mailbox address is not in the directory response; his UPN is (different case) his email.
    "ben": ("29:1ben", "b0000000-0000-4000-8000-000000000002", "Ben Example", "", "Ben@KestrelRobotics.com"),
    "chris": ("29:1chris", "c0000000-0000-4000-8000-000000000003", "Chris Contractor",
              "Chris@northbridge-contracting.example", "chris_northbridge#EXT#@kestrel.onmicrosoft.com"),
    "nobody": ("29:1nobody", "d0000000-0000-4000-8000-000000000004", "Alice Example",  # same display name as Alice
               "nobody@elsewhere.example", "nobody@elsewhere.example"),
}
_ids = itertools.count(1000)


@pytest.fixture
def teams(settings):
    identity = BotFrameworkIdentityStandIn(app_id=APP_ID, app_password=APP_PASSWORD).start()
    connector = ConnectorStandIn(tenant_id=TENANT, accepted_tokens=lambda: identity.issued_tokens).start()
    settings.TEAMS_ENABLED = True
    settings.TEAMS_APP_ID, settings.TEAMS_APP_PASSWORD, settings.TEAMS_APP_TENANT_ID = APP_ID, APP_PASSWORD, ""
    settings.TEAMS_OPENID_METADATA_URL = identity.openid_metadata_url
    settings.TEAMS_EMULATOR_OPENID_METADATA_URL = identity.emulator_openid_metadata_url
    settings.TEAMS_TOKEN_URL = identity.url + "/{tenant}/oauth2/v2.0/token"
    settings.TEAMS_ALLOWED_SERVICE_HOSTS = ["127.0.0.1"]
    # A multi-tenant bot that trusts its home tenant's directory: emails and UPNs from TENANT may match accounts.
    settings.TEAMS_IDENTITY_TENANT_IDS = [TENANT]
    settings.CONSOLE_URL = ""
    cache.clear()
    forget_cached_credentials(identity)
    yield SimpleNamespace(identity=identity, connector=connector)
    connector.stop()
    identity.stop()
    forget_cached_credentials(identity)
    cache.clear()


def forget_cached_credentials(identity: BotFrameworkIdentityStandIn) -> None:
    """Signing keys are cached per metadata URL (by botframework-connector, for a day) and outbound tokens per token
    URL (ClientCredentials, until they expire). A later stand-in that gets the same port, so the same URLs, has new
    keys under the same key ids and accepts only the tokens it issued itself: neither cache may outlive a test."""
    from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

    from bot.teams.auth import ClientCredentials

    for url in (identity.openid_metadata_url, identity.emulator_openid_metadata_url):
        JwtTokenExtractor.metadataCache.pop(url, None)
    with ClientCredentials._lock:
        ClientCredentials._tokens.clear()


@pytest.fixture
def demo(load_demo, teams):
    load_demo()
    # Alice is linked by her AAD identity; Ben and Chris are found through the members endpoint (UPN, email).
    alice = get_user_model().objects.get(username="alice")
    ExternalIdentity.objects.create(user=alice, principal=f"teams:{TENANT}:user:{USERS['alice'][1]}")
    for name, (user_id, aad, display, email, upn) in USERS.items():
        for conversation in (personal_conversation(name), TEAM):
            teams.connector.add_member(conversation, id=user_id, aad_object_id=aad, name=display, email=email,
                                       upn=upn)
    return teams


def personal_conversation(name: str) -> str:
    return f"a:1personal-{name}"


def account(name: str) -> dict:
    user_id, aad, display, _email, _upn = USERS[name]
    return {"id": user_id, "name": display, "aadObjectId": aad}


def teams_activity(teams, kind: str, name: str, **fields) -> dict:
    """An activity of tests/fixtures/teams/<kind>.json from `name`, with a new id, sent through the stand-in
    Connector, in `name`'s personal chat unless `fields` say otherwise."""
    made = payload(f"teams/{kind}", id=str(next(_ids)), serviceUrl=teams.connector.service_url,
                   recipient={"id": BOT, "name": "Citewise"},
                   conversation={"id": personal_conversation(name), "tenantId": TENANT},
                   channelData={"tenant": {"id": TENANT}})
    made["from"] = account(name)
    return merge(made, fields)


def personal_message(teams, name: str, text: str, **extra) -> dict:
    return teams_activity(teams, "message_personal", name, text=text, **extra)


def channel_mention(teams, name: str, text: str, *, thread: str | None = None, channel: str = CHANNEL) -> dict:
    mentioned = teams_activity(teams, "message_channel_mention", name, text=f"<at>Citewise</at> {text}",
                               channelData={"teamsChannelId": channel, "teamsTeamId": TEAM,
                                            "channel": {"id": channel}, "team": {"id": TEAM}})
    mentioned["conversation"]["id"] = f"{channel};messageid={thread or mentioned['id']}"
    return mentioned


def send(client, teams, activity: dict, *, token: str | None = None, header: str | None = None):
    if header is None:
        header = "Bearer " + (token or teams.identity.channel_token(service_url=activity["serviceUrl"]))
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    return client.post("/api/teams/messages", data=json.dumps(activity), content_type="application/json", **extra)


def card_of(activity: dict) -> dict:
    [attachment] = activity["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    return attachment["content"]


def card_text(card: dict) -> str:
    return "\n".join(block.get("text", "") for block in card["body"])


def actions(card: dict) -> dict:
    out = {}
    for action in card["actions"]:
        if action["type"] == "Action.Execute":
            out[f"{action['verb']}:{action['data'].get('kind', '')}"] = action["data"]["answer_id"]
        elif action["type"] == "Action.ShowCard":
            [send_flag] = action["card"]["actions"]
            out[f"show:{action['title']}"] = send_flag["data"]["answer_id"]
    return out


def invoke(teams, name: str, verb: str, data: dict, *, conversation: str | None = None) -> dict:
    clicked = teams_activity(teams, "invoke_adaptive_card_action", name,
                             conversation={"id": conversation} if conversation else {})
    clicked["value"]["action"].update(verb=verb, data=data)
    return clicked


# -- answering ---------------------------------------------------------------------------------------

def test_personal_question_gets_a_card_with_citations_after_a_typing_indicator(demo, client):
    activity = personal_message(demo, "alice", QUESTION)
    response = send(client, demo, activity)
    assert response.status_code == 200
    sent = demo.connector.activities()
    assert [a["type"] for a in sent] == ["typing", "message"]
    reply = sent[1]
    assert reply["_conversation"] == personal_conversation("alice") and reply["_reply_to"] == activity["id"]
    card = card_of(reply)
    text = card_text(card)
    assert "$400 per week" in text and "Sources" in text and "[1]" in text
    answer = Answer.objects.get()
    assert answer.user.username == "alice" and answer.surface == "teams"
    assert set(actions(card).values()) == {str(answer.id)}
    assert set(actions(card)) == {"citewise.feedback:up", "citewise.feedback:down", "show:Flag"}
    # Replies carry the bot's token from the (stand-in) Microsoft identity platform.
    reply_call = demo.connector.calls_to("reply", ok_only=True)[-1]
    assert reply_call.headers["authorization"] == f"Bearer {demo.identity.issued_tokens[-1]}"
    # A multi-tenant bot gets its token from the botframework.com tenant, with its own app id and secret.
    [token_request] = demo.identity.requests_to("/botframework.com/oauth2/v2.0/token")
    assert token_request.form["client_id"] == APP_ID and token_request.form["client_secret"] == APP_PASSWORD
    assert token_request.form["scope"] == "https://api.botframework.com/.default"


def test_two_users_with_different_permissions_get_different_answers(demo, client):
    send(client, demo, personal_message(demo, "alice", QUESTION))
    send(client, demo, personal_message(demo, "chris", QUESTION))
    alice, chris = demo.connector.messages()
    assert alice["_conversation"] == personal_conversation("alice")
    assert chris["_conversation"] == personal_conversation("chris")
    assert "$400 per week" in card_text(card_of(alice))
    chris_text = card_text(card_of(chris))
    assert "$400" not in chris_text and "couldn't find an answer" in chris_text
    assert Answer.objects.get(user__username="chris").refused


def test_identity_comes_from_the_aad_object_id_and_the_members_endpoint_not_the_display_name(demo, client):
    # "nobody" shares Alice's display name; only the AAD object id and the directory's addresses count.
    send(client, demo, personal_message(demo, "nobody", QUESTION))
    text = card_text(card_of(demo.connector.messages()[0]))
    assert "$400" not in text and "public documents only" in text and "link your Teams account" in text
    assert Answer.objects.get().user is None
    # Ben is found by his UPN (case-insensitively), looked up once and then cached.
    send(client, demo, personal_message(demo, "ben", QUESTION))
    send(client, demo, personal_message(demo, "ben", "And who approves it?"))
    assert Answer.objects.filter(user__username="ben").count() == 2
    ben_lookups = [c for c in demo.connector.calls_to("member") if c.member_id == USERS["ben"][0]]
    assert len(ben_lookups) == 1


def test_follow_up_in_a_personal_chat_continues_the_conversation(demo, client):
    send(client, demo, personal_message(demo, "alice", QUESTION))
    send(client, demo, personal_message(demo, "alice", "And who approves it?"))
    first, second = Answer.objects.order_by("created_at")
    assert first.conversation_id == second.conversation_id
    assert second.search_query != "And who approves it?"  # rewritten with the conversation as context
    assert ThreadConversation.objects.count() == 1


def test_a_quiet_personal_chat_starts_a_new_conversation(demo, client, settings):
    send(client, demo, personal_message(demo, "alice", QUESTION))
    ThreadConversation.objects.update(last_used_at=ThreadConversation.objects.get().last_used_at
                                      - timedelta(minutes=settings.TEAMS_CHAT_IDLE_MINUTES + 1))
    send(client, demo, personal_message(demo, "alice", "What is the travel policy for hotels?"))
    first, second = Answer.objects.order_by("created_at")
    assert first.conversation_id != second.conversation_id


def test_channel_mention_is_answered_privately_by_default(demo, client):
    activity = channel_mention(demo, "alice", QUESTION)
    assert send(client, demo, activity).status_code == 200
    [created] = demo.connector.calls_to("create", ok_only=True)
    assert [m["id"] for m in created.body["members"]] == [USERS["alice"][0]]
    assert created.body["channelData"]["tenant"]["id"] == TENANT and created.body["isGroup"] is False
    private = [m for m in demo.connector.messages() if m["_conversation"] == created.response["id"]]
    in_thread = [m for m in demo.connector.messages() if m["_conversation"] == activity["conversation"]["id"]]
    [card_message] = private
    assert "$400 per week" in card_text(card_of(card_message))
    assert "visible only to you" in card_text(card_of(card_message))
    [note] = in_thread
    assert note["_reply_to"] == activity["id"] and "private chat" in note["text"]
    assert "$400" not in json.dumps(note)
    assert Answer.objects.get().user.username == "alice"


def test_private_answer_that_cannot_be_delivered_is_not_shown_in_the_channel(demo, client):
    demo.connector.fail("create", status=403, times=None)
    activity = channel_mention(demo, "alice", QUESTION)
    send(client, demo, activity)
    [note] = demo.connector.messages()
    assert note["_conversation"] == activity["conversation"]["id"] and "personal chat" in note["text"]
    assert "attachments" not in note or not note["attachments"]


def test_channel_safe_channel_answers_in_the_thread_from_what_every_member_can_read(demo, client):
    ChannelSettings.objects.create(platform="teams", team_id=TEAM, channel_id=CHANNEL, visibility="channel_safe")
    first = channel_mention(demo, "alice", QUESTION)
    send(client, demo, first)
    follow_up = channel_mention(demo, "alice", "And who approves it?", thread=first["id"])
    send(client, demo, follow_up)
    replies = demo.connector.messages()
    assert [r["_conversation"] for r in replies] == [first["conversation"]["id"]] * 2
    assert demo.connector.calls_to("create") == []
    texts = [card_text(card_of(r)) for r in replies]
    assert all("everyone in this channel can read" in t for t in texts)
    assert "$400" not in texts[0]  # Chris, an outside contractor, is a member of this team
    members = [get_user_model().objects.get(username=n) for n in ("alice", "ben", "chris")]
    cited = [c["document_id"] for a in Answer.objects.all() for c in a.citations]
    for document in Document.objects.filter(id__in=cited):
        for member in members:
            assert document.acl_public or set(document.acl_principals) & principals_for(member), (document, member)
    first_answer, second_answer = Answer.objects.order_by("created_at")
    assert first_answer.conversation_id == second_answer.conversation_id  # the thread is the conversation
    assert demo.connector.calls_to("pagedmembers", ok_only=True)


def test_channel_settings_can_turn_the_bot_off(demo, client):
    ChannelSettings.objects.create(platform="teams", team_id=TEAM, channel_id=CHANNEL, enabled=False)
    assert send(client, demo, channel_mention(demo, "alice", QUESTION)).status_code == 200
    assert demo.connector.activities() == [] and Answer.objects.count() == 0


def test_members_lookup_failure_gives_a_public_only_answer_with_a_hint(demo, client):
    demo.connector.fail(*MEMBER_ROUTES, status=500, times=None)
    assert send(client, demo, personal_message(demo, "ben", QUESTION)).status_code == 200
    [reply] = demo.connector.messages()
    text = card_text(card_of(reply))
    assert "could not tell me who you are" in text and "public documents only" in text
    answer = Answer.objects.get()
    assert answer.user is None
    assert all(Document.objects.get(id=c["document_id"]).acl_public for c in answer.citations)
    assert ProcessedEvent.objects.get().status == "done"
    # Once the directory answers again, Ben gets his own permissions (nothing cached from the failure).
    demo.connector.clear(*MEMBER_ROUTES)
    send(client, demo, personal_message(demo, "ben", QUESTION))
    assert Answer.objects.filter(user__username="ben").count() == 1


def test_channel_member_list_failure_falls_back_to_public_documents(demo, client):
    ChannelSettings.objects.create(platform="teams", team_id=TEAM, channel_id=CHANNEL, visibility="channel_safe")
    send(client, demo, personal_message(demo, "alice", "warm the member cache"))
    demo.connector.fail(*MEMBER_ROUTES, status=500, times=None)
    send(client, demo, channel_mention(demo, "alice", QUESTION))
    reply = demo.connector.messages()[-1]
    text = card_text(card_of(reply))
    assert "could not list this channel's members" in text and "$400" not in text
    answer = Answer.objects.filter(question=QUESTION).get()
    assert all(Document.objects.get(id=c["document_id"]).acl_public for c in answer.citations)


def _events(outcome: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("citewise_bot_events_total", {"platform": "teams", "outcome": outcome}) or 0.0


def test_a_redelivered_activity_is_answered_once(demo, client, settings):
    done, duplicate = _events("done"), _events("duplicate")
    activity = personal_message(demo, "alice", QUESTION)
    send(client, demo, activity)
    send(client, demo, activity)
    assert len(demo.connector.messages()) == 1 and Answer.objects.count() == 1
    assert ProcessedEvent.objects.get(platform="teams").status == "done"
    assert (_events("done") - done, _events("duplicate") - duplicate) == (1, 1)
    settings.CITEWISE_METRICS_TOKEN = "a-long-random-metrics-scrape-token"
    scrape = client.get("/metrics", headers={"Authorization": "Bearer a-long-random-metrics-scrape-token"})
    assert 'citewise_bot_answer_seconds_count{platform="teams"}' in scrape.content.decode()


def test_a_throttled_reply_is_retried_after_retry_after(demo, client, bot_clock):
    demo.connector.fail("reply", status=429, retry_after=1)
    send(client, demo, personal_message(demo, "alice", QUESTION))
    attempts = demo.connector.calls_to("reply")
    assert [a.status for a in attempts] == [429, 201, 201]
    assert attempts[0].body == attempts[1].body  # the same activity, sent again
    assert bot_clock.waits == [1]  # Retry-After: 1
    assert "$400 per week" in card_text(card_of(demo.connector.messages()[0]))


def test_asking_too_fast_is_answered_with_a_wait_and_other_users_are_unaffected(demo, client, settings):
    """Reproduces issue 10 item 18: the Teams bot answers however fast one person asks (here an unlinked one,
    counted by their Teams identity)."""
    settings.RATELIMIT_CACHE_PREFIX = f"citewise-test-rl-{uuid.uuid4().hex}:"
    settings.CITEWISE = settings.CITEWISE.replace(ask_rate_per_user="1/d")  # per day: no window rolls over mid-test
    send(client, demo, personal_message(demo, "nobody", QUESTION))
    send(client, demo, personal_message(demo, "nobody", "Where is the bike storage?"))
    answered, told = demo.connector.messages()
    assert card_of(answered) and "You are asking questions too quickly" in told["text"] and "wait" in told["text"]
    assert Answer.objects.count() == 1
    assert ProcessedEvent.objects.filter(status="done").count() == 2
    send(client, demo, personal_message(demo, "alice", QUESTION))
    assert "$400 per week" in card_text(card_of(demo.connector.messages()[-1])) and Answer.objects.count() == 2


def test_search_outage_is_explained_and_a_redelivery_answers(demo, client, settings):
    from retrieval import services as retrieval_services

    working = settings.CITEWISE
    settings.CITEWISE = working.replace(search_backend="elasticsearch", elasticsearch_url="http://127.0.0.1:9",
                         elasticsearch_timeout_s=2)
    retrieval_services._backends.clear()
    activity = personal_message(demo, "alice", QUESTION)
    send(client, demo, activity)
    [apology] = demo.connector.messages()
    assert "unavailable" in apology["text"]
    assert ProcessedEvent.objects.get().status == "failed"
    settings.CITEWISE = working
    retrieval_services._backends.clear()
    send(client, demo, activity)
    assert "$400 per week" in card_text(card_of(demo.connector.messages()[-1]))


def test_a_personal_install_is_greeted_and_an_empty_message_gets_help(teams, client, isolated_index):
    install = teams_activity(teams, "installation_update_add", "alice")
    assert send(client, teams, install).status_code == 200
    assert send(client, teams, personal_message(teams, "alice", "  <p>&nbsp;</p> ")).status_code == 200
    welcome, help_message = teams.connector.messages()
    assert "I'm Citewise" in welcome["text"] and "Ask me a question" in help_message["text"]
    assert Answer.objects.count() == 0


def test_the_bot_added_to_a_team_says_nothing(teams, client, isolated_index):
    added = teams_activity(teams, "conversation_update_members_added", "alice",
                           conversation={"id": CHANNEL}, channelData={"team": {"id": TEAM}})
    added["membersAdded"] = [{"id": BOT}]
    assert send(client, teams, added).status_code == 200
    assert teams.connector.activities() == [] and ProcessedEvent.objects.count() == 0


# -- feedback ----------------------------------------------------------------------------------------

def _answer_card(demo, client, name="alice") -> tuple[dict, Answer]:
    send(client, demo, personal_message(demo, name, QUESTION))
    return card_of(demo.connector.messages()[-1]), Answer.objects.latest("created_at")


def test_thumbs_up_from_the_card_is_recorded(demo, client):
    card, answer = _answer_card(demo, client)
    [up] = [a for a in card["actions"] if a.get("data", {}).get("kind") == "up"]
    response = send(client, demo, invoke(demo, "alice", up["verb"], up["data"]))
    assert response.status_code == 200
    body = response.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    assert "recorded" in body["value"]
    feedback = Feedback.objects.get()
    assert (feedback.kind, feedback.user.username, feedback.answer_id) == ("up", "alice", answer.id)


def test_flag_with_reason_and_comment_reaches_the_review_queue(demo, client):
    card, answer = _answer_card(demo, client)
    [show] = [a for a in card["actions"] if a["type"] == "Action.ShowCard"]
    reasons = {c["value"] for c in show["card"]["body"][0]["choices"]}
    assert reasons == {"wrong", "missing_citation", "harmful", "other"}
    [send_flag] = show["card"]["actions"]
    no_reason = send(client, demo, invoke(demo, "alice", send_flag["verb"], send_flag["data"]))
    assert "Choose what is wrong" in no_reason.json()["value"] and Feedback.objects.count() == 0
    # Teams merges the inputs' values into the action's data.
    data = {**send_flag["data"], "reason": "wrong", "comment": "Out of date since March"}
    response = send(client, demo, invoke(demo, "alice", send_flag["verb"], data))
    assert "flagged" in response.json()["value"]
    flag = Feedback.objects.get()
    assert (flag.kind, flag.reason, flag.comment, flag.user.username) == ("flag", "wrong", "Out of date since March",
                                                                          "alice")
    assert flag.answer_id == answer.id


def test_action_submit_fallback_and_other_users_feedback(demo, client):
    card, _answer = _answer_card(demo, client)
    [down] = [a for a in card["actions"] if a.get("data", {}).get("kind") == "down"]
    submit = personal_message(demo, "alice", "", value=down["fallback"]["data"])
    send(client, demo, submit)
    assert Feedback.objects.get().kind == "down"
    assert "recorded" in demo.connector.messages()[-1]["text"]
    # Someone else cannot rate Alice's answer.
    response = send(client, demo, invoke(demo, "chris", down["verb"], down["data"]))
    assert "Only the person who asked" in response.json()["value"] and Feedback.objects.count() == 1


# -- security ----------------------------------------------------------------------------------------

FORGERIES = {
    "forged signature": lambda ident, url: ident.channel_token(service_url=url, sign_with="bf-unknown"),
    "unknown key": lambda ident, url: ident.channel_token(service_url=url, kid="bf-unknown"),
    "key not endorsed for Teams": lambda ident, url: ident.channel_token(service_url=url, kid="bf-key-other-channel"),
    "expired": lambda ident, url: ident.channel_token(service_url=url, expires_in=-3600),
    "wrong audience": lambda ident, url: ident.channel_token(service_url=url, audience="another-bots-app-id"),
    "wrong issuer": lambda ident, url: ident.channel_token(service_url=url, issuer="https://evil.example"),
    "serviceUrl mismatch": lambda ident, url: ident.channel_token(service_url="http://127.0.0.1:9/elsewhere/"),
    "no serviceurl claim": lambda ident, url: ident.channel_token(service_url=url, include_service_url=False),
    "not a JWT": lambda ident, url: "not-a-jwt",
}


@pytest.mark.parametrize("case", [*FORGERIES, "no header", "basic auth"])
def test_bad_tokens_are_refused_with_401_before_any_work(teams, client, case, isolated_index):
    demo = teams
    activity = personal_message(demo, "alice", QUESTION)
    if case == "no header":
        response = send(client, demo, activity, header="")
    elif case == "basic auth":
        response = send(client, demo, activity, header="Basic YWxpY2U6cGFzc3dvcmQ=")
    else:
        response = send(client, demo, activity, token=FORGERIES[case](demo.identity, activity["serviceUrl"]))
    assert response.status_code == 401, response.content
    assert Answer.objects.count() == 0 and ProcessedEvent.objects.count() == 0
    assert demo.connector.calls == []


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_emulator_tokens_are_refused_unless_the_emulator_is_allowed(teams, client, settings, isolated_index,
                                                                     version):
    """Reproduces issue 10 item 4: botframework-connector accepted a token from the Bot Framework Emulator's issuer
    (checked only against TEAMS_EMULATOR_OPENID_METADATA_URL's keys, without the serviceurl claim) whenever an app
    id was set, with DEBUG off too."""
    token = teams.identity.emulator_token(version=version)
    response = send(client, teams, personal_message(teams, "alice", " "), token=token)
    assert response.status_code == 401, response.content
    assert teams.connector.calls == [] and ProcessedEvent.objects.count() == 0
    # A developer running the Emulator against their own bot turns it on (never in production settings).
    settings.TEAMS_ALLOW_EMULATOR = True
    assert send(client, teams, personal_message(teams, "alice", " "), token=token).status_code == 200
    [answered] = teams.connector.messages()
    assert answered["_conversation"] == personal_conversation("alice")
    another_bot = teams.identity.emulator_token(version=version, app_id="another-bots-app-id")
    assert send(client, teams, personal_message(teams, "alice", " "), token=another_bot).status_code == 401


def test_feedback_with_a_forged_token_is_not_recorded(demo, client):
    _card, answer = _answer_card(demo, client)
    activity = invoke(demo, "alice", "citewise.feedback", {"kind": "down", "answer_id": str(answer.id)})
    token = demo.identity.channel_token(service_url=activity["serviceUrl"], sign_with="bf-unknown")
    assert send(client, demo, activity, token=token).status_code == 401
    assert Feedback.objects.count() == 0


def test_service_url_off_the_allowlist_gets_nothing_posted(teams, client, isolated_index):
    demo = teams
    # A validly signed activity whose serviceUrl (and serviceurl claim) names a host that is not allow-listed.
    activity = personal_message(demo, "alice", QUESTION)
    activity["serviceUrl"] = activity["serviceUrl"].replace("127.0.0.1", "localhost")
    response = send(client, demo, activity)
    assert response.status_code == 403
    assert demo.connector.calls == [] and Answer.objects.count() == 0


def test_no_connector_is_ever_built_for_a_service_url_off_the_allowlist(teams, isolated_index):
    # Defence in depth: even a queued answer task carrying a foreign serviceUrl cannot post there.
    from bot.teams.auth import ServiceUrlNotAllowed
    from bot.teams.platform import process_activity

    activity = personal_message(teams, "alice", QUESTION)
    activity["serviceUrl"] = activity["serviceUrl"].replace("127.0.0.1", "localhost")
    with pytest.raises(ServiceUrlNotAllowed):
        process_activity({"activity": activity, "app_id": APP_ID})
    assert teams.connector.calls == [] and Answer.objects.count() == 0


def test_activities_from_other_tenants_are_refused_when_tenants_are_restricted(demo, client, settings):
    settings.TEAMS_ALLOWED_TENANT_IDS = ["11111111-2222-4333-8444-555555555555"]
    response = send(client, demo, personal_message(demo, "alice", QUESTION))
    assert response.status_code == 403
    assert demo.connector.calls == [] and Answer.objects.count() == 0
    # A single-tenant bot accepts its own tenant only, without listing it again.
    settings.TEAMS_ALLOWED_TENANT_IDS, settings.TEAMS_APP_TENANT_ID = [], TENANT.upper()
    assert send(client, demo, personal_message(demo, "alice", QUESTION)).status_code == 200
    assert "$400 per week" in card_text(card_of(demo.connector.messages()[0]))
    assert demo.identity.requests_to(f"/{TENANT.upper()}/oauth2/v2.0/token")  # the tenant's own token endpoint


def test_the_allowlist_rule():
    from django.test import override_settings

    from bot.teams.auth import service_url_allowed

    with override_settings(TEAMS_ALLOWED_SERVICE_HOSTS=["127.0.0.1"]):
        assert service_url_allowed("http://127.0.0.1:8/teams/")  # plain http only for a loopback address
        assert not service_url_allowed("http://localhost:8/teams/")
    with override_settings(TEAMS_ALLOWED_SERVICE_HOSTS=["smba.trafficmanager.net", "*.botframework.com"]):
        assert service_url_allowed("https://smba.trafficmanager.net/amer/")
        assert service_url_allowed("https://europe.webchat.botframework.com/")
        assert not service_url_allowed("http://smba.trafficmanager.net/amer/")  # https only off loopback
        assert not service_url_allowed("https://smba.trafficmanager.net.evil.example/")
        assert not service_url_allowed("https://evilbotframework.com/")
        assert not service_url_allowed("https://botframework.com@evil.example/")
        assert not service_url_allowed("https://user:pw@smba.trafficmanager.net/")
        assert not service_url_allowed("")
        assert not service_url_allowed(None)


def test_unreadable_openid_metadata_is_503_and_runs_nothing(settings, teams, client, isolated_index):
    settings.TEAMS_OPENID_METADATA_URL = "http://127.0.0.1:9/v1/.well-known/openidconfiguration"
    activity = personal_message(teams, "alice", QUESTION)
    response = send(client, teams, activity)
    assert response.status_code == 503
    assert Answer.objects.count() == 0 and teams.connector.calls == []


NO_SENDER = json.dumps({"type": "message", "serviceUrl": "http://127.0.0.1:9/teams/", "text": "hi",
                        "conversation": {"id": "a:1x"}, "recipient": {"id": BOT}})


DEEPLY_NESTED = "[" * 100_000 + "]" * 100_000


def post_raw(client, body: str | bytes, header: str):
    return client.post("/api/teams/messages", data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"type": "message"}), "", NO_SENDER,
                                  b"\xff\xfe not utf-8"],
                         ids=["not json", "list", "no conversation", "empty", "no sender", "not utf-8"])
def test_malformed_requests_with_a_valid_token_are_400(teams, client, body):
    token = teams.identity.channel_token(service_url="http://127.0.0.1:9/teams/")
    response = post_raw(client, body, f"Bearer {token}")
    assert response.status_code == 400, response.content
    assert "not a Bot Framework activity" in response.json()["error"] or "needs" in response.json()["error"]


def test_a_deeply_nested_body_with_a_valid_token_is_400(teams, client):
    """Reproduces issue 10 item 16: 100,000 nested `[` made Python's json raise RecursionError, a 500."""
    token = teams.identity.channel_token(service_url="http://127.0.0.1:9/teams/")
    response = post_raw(client, DEEPLY_NESTED, f"Bearer {token}")
    assert response.status_code == 400, response.content
    assert "nested too deeply" in response.json()["error"]


@pytest.mark.parametrize("body", [DEEPLY_NESTED, "not json", "[1, 2]"], ids=["deeply nested", "not json", "list"])
@pytest.mark.parametrize("header", ["Bearer x", "forged"])
def test_an_unauthenticated_body_is_refused_before_it_is_parsed(teams, client, body, header):
    """Reproduces issue 10 item 16: the Teams endpoint parsed the body before checking the token, so anyone could
    make it parse anything: 100,000 nested `[` raised RecursionError (500), and a bad body got 400, not 401."""
    if header == "forged":
        header = "Bearer " + teams.identity.channel_token(service_url="http://127.0.0.1:9/teams/",
                                                          sign_with="bf-unknown")
    response = post_raw(client, body, header)
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "unauthorized"}


def test_a_body_larger_than_django_accepts_is_413(teams, client, settings):
    """Reproduces issue 10 item 16 (body size): Django refused it, but with its bare HTML 400 page."""
    token = teams.identity.channel_token(service_url="http://127.0.0.1:9/teams/")
    activity = json.dumps({"type": "message", "text": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = post_raw(client, activity, f"Bearer {token}")
    assert response.status_code == 413 and "larger" in response.json()["error"]


def test_no_app_id_outside_debug_is_503_not_anonymous(teams, client, settings):
    settings.TEAMS_APP_ID = ""
    settings.DEBUG = False
    activity = personal_message(teams, "alice", QUESTION)
    response = client.post("/api/teams/messages", data=json.dumps(activity), content_type="application/json")
    assert response.status_code == 503 and "TEAMS_APP_ID" in response.json()["error"]
    assert teams.connector.calls == []


# -- whose directory counts ----------------------------------------------------------------------------------

FOREIGN_TENANT = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


def stranger(teams, name: str, *, email: str, tenant: str = TENANT, user_role: str = "user",
             member_tenant: str | None = None, conversations: tuple[str, ...] = ()) -> dict:
    """A Teams account that is not one of the demo's people, registered with the connector; returns `from`."""
    user_id, aad = f"29:1{name}", f"e0000000-0000-4000-8000-{name.encode().hex()[:12]:0>12}"
    for conversation in (personal_conversation(name), *conversations):
        teams.connector.add_member(conversation, id=user_id, aad_object_id=aad, name=name.title(), email=email,
                                   tenant_id=member_tenant or tenant, user_role=user_role)
    return {"id": user_id, "name": name.title(), "aadObjectId": aad}


def message_from(teams, sender: dict, name: str, text: str, *, tenant: str = TENANT) -> dict:
    activity = personal_message(teams, "alice", text)
    activity["from"] = sender
    activity["conversation"] = {"id": personal_conversation(name), "conversationType": "personal", "tenantId": tenant}
    activity["channelData"] = {"tenant": {"id": tenant}}
    return activity


@pytest.mark.parametrize("spelling", ["tenantId", "tenantID"])
def test_an_activity_naming_two_tenants_is_refused_before_anything_runs(demo, client, settings, spelling):
    """Reproduces issue 10 item 1: the tenant check read channelData.tenant.id while identity used
    conversation.tenantId; an activity where they disagree must be refused (403) before anything runs."""
    settings.TEAMS_ALLOWED_TENANT_IDS = [TENANT]
    activity = personal_message(demo, "alice", QUESTION)
    del activity["conversation"]["tenantId"]
    activity["conversation"][spelling] = FOREIGN_TENANT
    response = send(client, demo, activity)
    assert response.status_code == 403, response.content
    assert demo.connector.calls == [] and Answer.objects.count() == 0 and ProcessedEvent.objects.count() == 0
    # The same tenant in both places (in any case) is one tenant.
    activity = personal_message(demo, "alice", QUESTION)
    activity["conversation"][spelling] = TENANT.upper()
    assert send(client, demo, activity).status_code == 200
    assert "$400 per week" in card_text(card_of(demo.connector.messages()[-1]))


def test_another_tenants_directory_never_maps_to_a_local_account(demo, client):
    """Reproduces issue 10 item 1: a user of another tenant whose directory reports alice's email was answered
    as alice, and could rate alice's answers."""
    _card, answer = _answer_card(demo, client)
    mallory = stranger(demo, "mallory", email=USERS["alice"][3], tenant=FOREIGN_TENANT)
    send(client, demo, message_from(demo, mallory, "mallory", QUESTION, tenant=FOREIGN_TENANT))
    text = card_text(card_of(demo.connector.messages()[-1]))
    assert "$400" not in text and "guest or from another organisation" in text
    assert Answer.objects.latest("created_at").user is None
    vote = invoke(demo, "alice", "citewise.feedback", {"kind": "down", "answer_id": str(answer.id)},
                  conversation=personal_conversation("mallory"))
    vote["from"], vote["conversation"]["tenantId"] = mallory, FOREIGN_TENANT
    vote["channelData"] = {"tenant": {"id": FOREIGN_TENANT}}
    assert "Link your account" in send(client, demo, vote).json()["value"]
    assert Feedback.objects.count() == 0


def test_guests_and_members_from_other_tenants_are_not_matched_by_email(demo, client):
    """Reproduces issue 10 item 1: a B2B guest (userRole guest) or a member whose tenantId is another tenant's,
    reporting an employee's address in our tenant's conversation, was answered as that employee."""
    ben_upn = USERS["ben"][4]
    guest = stranger(demo, "gina", email=ben_upn, user_role="guest")
    shared = stranger(demo, "sam", email=ben_upn, member_tenant=FOREIGN_TENANT)
    send(client, demo, message_from(demo, guest, "gina", QUESTION))
    send(client, demo, message_from(demo, shared, "sam", QUESTION))
    assert Answer.objects.count() == 2 and Answer.objects.filter(user__isnull=False).count() == 0
    for reply in demo.connector.messages():
        assert "guest or from another organisation" in card_text(card_of(reply))
    # Ben himself, a full member of the tenant, still is.
    send(client, demo, personal_message(demo, "ben", QUESTION))
    assert Answer.objects.filter(user__username="ben").count() == 1


def test_email_matching_is_off_unless_a_tenants_directory_is_trusted(demo, client, settings):
    """Reproduces issue 10 item 1: a multi-tenant bot open to every tenant matched any tenant's directory emails;
    with no trusted tenant (TEAMS_IDENTITY_TENANT_IDS, TEAMS_APP_TENANT_ID, TEAMS_ALLOWED_TENANT_IDS all unset)
    only linked identities count."""
    settings.TEAMS_IDENTITY_TENANT_IDS = []
    send(client, demo, personal_message(demo, "ben", QUESTION))
    assert Answer.objects.get().user is None
    send(client, demo, personal_message(demo, "alice", QUESTION))  # linked by her Entra object id
    assert Answer.objects.latest("created_at").user.username == "alice"
    # A single-tenant bot trusts its own tenant's directory.
    settings.TEAMS_APP_TENANT_ID = TENANT
    send(client, demo, personal_message(demo, "ben", "What is the travel policy for hotels?"))
    assert Answer.objects.latest("created_at").user.username == "ben"


def test_channel_safe_counts_a_guest_with_an_employees_email_as_unlinked(demo, client):
    """Reproduces issue 10 item 1 (channel-safe member resolution): a guest in a team with alice, reporting ben's
    UPN, counted as ben, so the channel was shown what alice and ben can both read."""
    team, channel = "19:partners-team@thread.tacv2", "19:partners@thread.tacv2"
    ChannelSettings.objects.create(platform="teams", team_id=team, channel_id=channel, visibility="channel_safe")
    user_id, aad, display, email, upn = USERS["alice"]
    demo.connector.add_member(team, id=user_id, aad_object_id=aad, name=display, email=email, upn=upn)
    stranger(demo, "gina", email=USERS["ben"][4], user_role="guest", conversations=(team,))
    activity = channel_mention(demo, "alice", "What is the travel policy for hotels?", channel=channel)
    activity["channelData"].update({"teamsTeamId": team, "team": {"id": team}})
    send(client, demo, activity)
    text = card_text(card_of(demo.connector.messages()[-1]))
    assert "Some members aren't linked" in text
    answer = Answer.objects.get()
    assert all(Document.objects.get(id=c["document_id"]).acl_public for c in answer.citations)


# -- channel-safe member resolution in bulk ------------------------------------------------------------------

IDENTITY_TABLES = ("connectors_externalidentity", "connectors_account", "connectors_groupmembership")


def identity_queries(captured) -> int:
    return sum(any(table in query["sql"] for table in IDENTITY_TABLES) for query in captured.captured_queries)


def test_channel_safe_resolves_the_teams_members_in_bulk(demo, client):
    """Reproduces issue 11 item 3: channel-safe answers resolved each member of the team on its own (an identity
    query, an email query and a principal expansion each), so the work grew with the team."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from identity.models import Group, GroupMembership
    from identity.principals import local_principal

    small_team, small_channel = "19:small-team@thread.tacv2", "19:small@thread.tacv2"
    for team, channel in ((small_team, small_channel), (TEAM, CHANNEL)):
        ChannelSettings.objects.create(platform="teams", team_id=team, channel_id=channel, visibility="channel_safe")
    for name in ("alice", "ben"):
        user_id, aad, display, email, upn = USERS[name]
        demo.connector.add_member(small_team, id=user_id, aad_object_id=aad, name=display, email=email, upn=upn)
    group, _ = Group.objects.get_or_create(principal="group:bulk-staff")
    for n in range(12):
        user = get_user_model().objects.create_user(f"staff{n}", f"staff{n}@kestrelrobotics.com")
        aad = f"57aff000-0000-4000-8000-{n:012d}"
        ExternalIdentity.objects.create(user=user, principal=f"teams:{TENANT}:user:{aad}")
        GroupMembership.objects.create(group=group, member=local_principal(user.username))
        demo.connector.add_member(TEAM, id=f"29:1staff{n}", aad_object_id=aad, name=f"Staff {n}")
    for n in range(4):
        demo.connector.add_member(TEAM, id=f"29:1temp{n}", aad_object_id=f"7e3b0000-0000-4000-8000-{n:012d}",
                                  name=f"Temp {n}", email=f"temp{n}@kestrelrobotics.com")

    def ask(team: str, channel: str):
        activity = channel_mention(demo, "alice", QUESTION, channel=channel)
        activity["channelData"].update({"teamsTeamId": team, "team": {"id": team}})
        with CaptureQueriesContext(connection) as captured:
            send(client, demo, activity)
        return captured

    small = ask(small_team, small_channel)
    lookups_before = len(demo.connector.calls_to("member"))
    large = ask(TEAM, CHANNEL)
    replies = demo.connector.messages()
    assert len(replies) == 2 and all("everyone in this channel can read" in card_text(card_of(r)) for r in replies)
    # The same identity work for 20 members as for 2.
    assert identity_queries(large) == identity_queries(small)
    # The member list already says who everyone is: no lookup per member.
    assert len(demo.connector.calls_to("member")) == lookups_before
