"""One chat question, answered at most once: the steps both bots take, whatever the platform.

A platform adapter (bot/slack/platform.py, bot/teams/platform.py) turns its event into a `Question` and gives
`answer` a `Platform` for it; `answer` applies the admin's channel settings, claims the event so that a platform's
retry is answered once, shows progress, resolves the asker (and for a channel-safe answer every member of the
channel, in bulk), answers through bot.services, delivers, and says how it ended (`Outcome`) and, when it stopped
short, why (`Halt`); the two label citewise_bot_questions_total. Failures reach the asker as a short message with a
reference; a retryable one leaves the event to the platform's retry.

The workflow is synchronous, as the ORM is: a platform whose client is async (Teams) bridges its own calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from bot import selectors, services
from bot.clock import clock as bot_clock
from bot.metrics import BOT_QUESTIONS
from bot.services import SCOPE_CHANNEL, SCOPE_PERSONAL, Asker, BotAnswer, BotError, Claim, DirectoryUser
from core import logcontext
from core.clock import Clock

FAILURE_MESSAGE = ("Sorry, something went wrong while answering. Please try again; if it keeps happening, tell your"
                   " admin (ref {ref}).")


class Outcome(StrEnum):
    """What became of a question; the values label citewise_bot_questions_total."""

    ANSWERED = "answered"      # the answer was delivered
    EXPLAINED = "explained"    # not answered, and the asker was told why
    FAILED = "failed"          # not answered, and not even the explanation could be delivered, or nothing said why
    IGNORED = "ignored"        # the channel's settings say not to answer here
    DUPLICATE = "duplicate"    # another delivery of the same event was, or is being, answered
    SUPERSEDED = "superseded"  # this worker's claim ran out and a retry took the event over: the retry answers


class Halt(StrEnum):
    """Why the workflow stopped short of delivering an answer ("none" when it did not); labels
    citewise_bot_questions_total with the outcome."""

    NONE = "none"
    CHANNEL_DISABLED = "channel_disabled"  # an admin turned the bot off in this channel
    NOT_MENTIONED = "not_mentioned"        # the channel answers only @mentions, and this was none
    ALREADY_CLAIMED = "already_claimed"    # a duplicate delivery: the event is, or was, someone else's
    CLAIM_LOST = "claim_lost"              # the lease ran out mid-way and a retry took over
    RETRYABLE_ERROR = "retryable_error"    # a BotError a retry may get past (search down): left to the retry
    FINAL_ERROR = "final_error"            # a BotError a retry would meet again (rate limited, too large a channel)
    UNEXPECTED_ERROR = "unexpected_error"  # anything else (a bug, a platform outage): left to the retry


class Delivery(StrEnum):
    """Where the answer goes, and so whose permissions build it."""

    IN_PLACE = "in_place"  # a DM or personal chat: where it was asked, with the asker's permissions
    PRIVATE = "private"    # a channel, seen by the asker alone, with their permissions
    CHANNEL = "channel"    # a channel, seen by everyone: documents every member can read


@dataclass(frozen=True)
class Question:
    platform: str
    event_id: str  # unique per platform: the de-duplication key
    team_id: str  # whose users: the Slack workspace, the Teams tenant (the namespace of their identities)
    user_id: str  # the asker, as the platform's identities name them
    text: str
    channel_id: str  # the conversation, and the thread in it, that follow-ups continue
    thread_id: str
    # (team, channel) an admin's channel settings are keyed by; None in a DM or personal chat, which has none.
    settings_key: tuple[str, str] | None
    mentioned: bool  # the bot was @mentioned (channels may be set to answer only then)
    reference: str  # named in the failure message, so an admin can find the logs
    log_context: str  # ids for log lines
    # For chats without threads: a question after this much quiet starts a new conversation.
    fresh_after: timedelta | None = None


class Platform(Protocol):
    """What the workflow needs from a chat platform, for one question."""

    def show_progress(self) -> None:
        """A sign that an answer is being prepared (a reaction, a typing indicator); failing quietly."""

    def stop_progress(self) -> None:
        """Take the sign away again, once the question is answered or explained."""

    def directory(self, user_ids: Sequence[str]) -> Mapping[str, DirectoryUser | None]:
        """What the platform's directory says about these users, in as few calls as it can (a user it does not
        know is missing or None); services.Directory. Raises services.IdentityLookupFailed when it cannot be asked
        right now."""

    def channel_members(self) -> list[str] | None:
        """The user ids of the question's channel, without the bot; None when the list cannot be read (the answer
        then uses public documents only). Raises BotError when the channel is too large."""

    def deliver_answer(self, answer: BotAnswer, delivery: Delivery) -> None:
        """Render and send the answer where `delivery` says."""

    def deliver_failure(self, message: str, delivery: Delivery) -> None:
        """Tell the asker the question was not answered, and why."""


class _ClaimLost(Exception):
    """This worker's claim ran out and a retry of the event took it over: the retry answers, this worker stops."""


def answer(question: Question, platform: Platform, *, clock: Clock | None = None) -> Outcome:
    """Answer `question` on `platform`, at most once per event; returns what became of it."""
    logcontext.bind(platform=question.platform, event_id=question.event_id)
    outcome, halt = _answer(question, platform, clock or bot_clock())
    BOT_QUESTIONS.labels(question.platform, outcome.value, halt.value).inc()
    return outcome


def _answer(question: Question, platform: Platform, clock: Clock) -> tuple[Outcome, Halt]:
    log = logging.getLogger(f"citewise.bot.{question.platform}")
    ids = question.log_context
    policy = (None if question.settings_key is None
              else selectors.channel_policy(question.platform, *question.settings_key))
    if policy is not None and not policy.enabled:
        return Outcome.IGNORED, Halt.CHANNEL_DISABLED
    if policy is not None and policy.respond_only_when_mentioned and not question.mentioned:
        return Outcome.IGNORED, Halt.NOT_MENTIONED
    claim = services.claim_event(question.platform, question.event_id, now=clock.now())
    if claim is None:
        log.info("%s event already handled, ignoring the redelivery: %s", question.platform, ids)
        return Outcome.DUPLICATE, Halt.ALREADY_CLAIMED
    delivery = (Delivery.IN_PLACE if policy is None
                else Delivery.CHANNEL if policy.visibility == selectors.CHANNEL_SAFE else Delivery.PRIVATE)

    def keep_claim() -> None:
        # Renewed before every step that can take long, so only a dead worker's claim runs out.
        if not services.renew_claim(claim, now=clock.now()):
            raise _ClaimLost

    platform.show_progress()
    superseded = False
    try:
        keep_claim()
        [asker] = services.resolve_users(question.platform, question.team_id, [question.user_id],
                                         platform.directory)
        principals, unlinked, members_unknown = None, 0, False
        if delivery is Delivery.CHANNEL:
            principals, unlinked, members_unknown = _channel_audience(question, platform, asker)
        keep_claim()
        result = services.answer_question(
            asker, channel_id=question.channel_id, thread_id=question.thread_id, text=question.text,
            scope=SCOPE_CHANNEL if delivery is Delivery.CHANNEL else SCOPE_PERSONAL, principals=principals,
            members_unlinked=unlinked, fresh_after=question.fresh_after, now=clock.now())
        result.members_lookup_failed = members_unknown
        keep_claim()  # last chance to leave the answer to a retry that took over, rather than answer twice
        platform.deliver_answer(result, delivery)
    except _ClaimLost:
        superseded = True
        log.warning("%s event taken over by a retry while this worker was at it; leaving it to that: %s",
                    question.platform, ids)
        return Outcome.SUPERSEDED, Halt.CLAIM_LOST
    except BotError as exc:
        log.warning("%s question not answered (%s): %s", question.platform, exc.user_message, ids)
        outcome = _deliver_failure(platform, exc.user_message, delivery, log, ids)
        _finish(question, claim, clock, error=exc.user_message if exc.retryable else "")
        return outcome, Halt.RETRYABLE_ERROR if exc.retryable else Halt.FINAL_ERROR
    except Exception as exc:
        log.exception("%s answer failed: %s", question.platform, ids)
        _deliver_failure(platform, FAILURE_MESSAGE.format(ref=question.reference), delivery, log, ids)
        _finish(question, claim, clock, error=f"{type(exc).__name__}: {exc}")
        return Outcome.FAILED, Halt.UNEXPECTED_ERROR
    finally:
        if not superseded:
            platform.stop_progress()
    _finish(question, claim, clock)
    log.info("%s question answered: %s answer=%s", question.platform, ids, result.result.answer_id)
    return Outcome.ANSWERED, Halt.NONE


def _channel_audience(question: Question, platform: Platform, asker: Asker) -> tuple[frozenset[str], int, bool]:
    """(principals every member of the channel holds, members unlinked, whether the member list was unreadable).

    Members are resolved together (services.resolve_users, services.shared_principals): one identity query and one
    group expansion for all of them, and one directory request about those no identity links. Apps and bots are
    left out, since they read nothing themselves.
    """
    member_ids = platform.channel_members()
    if member_ids is None:
        return frozenset(), 0, True
    others = [user_id for user_id in dict.fromkeys(member_ids) if user_id != asker.user_id]
    members = [member for member in services.resolve_users(question.platform, question.team_id, others,
                                                           platform.directory) if not member.bot]
    principals, unlinked = services.shared_principals([asker, *members])
    return principals, unlinked, False


def _deliver_failure(platform: Platform, message: str, delivery: Delivery, log: logging.Logger,
                     ids: str) -> Outcome:
    try:
        platform.deliver_failure(message, delivery)
    except Exception:
        log.exception("could not post the failure message either: %s", ids)
        return Outcome.FAILED
    return Outcome.EXPLAINED


def _finish(question: Question, claim: Claim, clock: Clock, *, error: str = "") -> None:
    # Failed (error set): the platform's retry may answer it. Done: a retry is a duplicate.
    services.finish_event(question.platform, question.event_id, error=error, attempt=claim.attempt, now=clock.now())
