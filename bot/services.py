"""The platform-neutral messaging core: question in, answer out; feedback; flags; identity; threads; de-duplication.

Platform modules (bot/slack, bot/teams) translate their events into these calls and render the results;
they never touch the search index or other apps' models themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from answers.models import Feedback
from answers.services import (
    AnswerNotFound,
    AnswerResult,
    FeedbackError,
    InvalidQuestion,
    RateLimited,
    ask,
    record_feedback,
)
from bot.metrics import BOT_ANSWER_SECONDS, BOT_EVENTS
from bot.models import ProcessedEvent, ThreadConversation
from core.errors import CitewiseError, ServiceUnavailable
from identity.models import ExternalIdentity
from identity.principals import normalize_principal
from identity.selectors import principals_for, principals_of
from search.types import SearchUnavailable

logger = logging.getLogger("citewise.bot")

SCOPE_PERSONAL = "personal"   # the asker's permissions (DM, or ephemeral in a channel)
SCOPE_CHANNEL = "channel"     # documents every member of the channel can read


@dataclass(frozen=True)
class DirectoryUser:
    """What a platform's directory says about one of its users: their verified addresses, and whether they are
    one of the organisation's own members."""

    addresses: tuple[str, ...] = ()
    # A member of the installing workspace / org or of a trusted tenant, and not a guest. Only such a user's
    # addresses may stand for a Citewise account: another organisation's admins choose their users' emails.
    internal: bool = False
    # An app or bot account rather than a person: it reads nothing itself, so it does not narrow what a channel's
    # members are shown.
    bot: bool = False


# Platform user ids → what the platform's directory says about each of them, in one go; a user it does not know is
# missing or None. Raises IdentityLookupFailed when the directory cannot be asked right now.
Directory = Callable[[Sequence[str]], "Mapping[str, DirectoryUser | None]"]


class IdentityLookupFailed(Exception):
    """The platform could not tell who the user is right now (its directory API failed)."""


@dataclass(frozen=True)
class Asker:
    platform: str
    team_id: str
    user_id: str
    user: Any = None  # the Citewise user, or None when the platform user is not linked
    lookup_failed: bool = False  # unlinked because the platform's directory could not be asked, not by choice
    outside: bool = False  # unlinked because the directory says guest or another organisation: email not trusted
    bot: bool = False  # unlinked, and the directory says an app or bot account

    @property
    def linked(self) -> bool:
        return self.user is not None


@dataclass
class BotAnswer:
    result: AnswerResult
    asker: Asker
    scope: str
    members_unlinked: int = 0
    members_lookup_failed: bool = False  # channel-safe: the member list could not be read, public documents only


class BotError(CitewiseError):
    """A failure to report to the asker as a short, friendly message (`user_message`)."""

    code = "bot_error"

    def __init__(self, user_message: str, *, retryable: bool = False):
        super().__init__(user_message, user_message=user_message)
        # A retry of the same platform event may succeed (search was down): the event is not marked done.
        self.retryable = retryable


# -- identity ----------------------------------------------------------------------------------------

def platform_principal(platform: str, team_id: str, user_id: str) -> str:
    return f"{platform}:{team_id}:user:{user_id}"


def resolve_user(platform: str, team_id: str, user_id: str, directory: Directory | None = None) -> Asker:
    """The Citewise user behind a platform user: a linked platform identity, else their verified email.

    The email counts only for the organisation's own members (`DirectoryUser.internal`): a guest, or a user of
    another workspace or tenant reporting an employee's address, stays unlinked (public documents only) unless
    an admin linked their platform identity. A failing directory lookup leaves the asker unlinked with
    `lookup_failed` set, so the answer can say why instead of the question failing.
    """
    return resolve_users(platform, team_id, [user_id], directory)[0]


def resolve_users(platform: str, team_id: str, user_ids: Sequence[str],
                  directory: Directory | None = None) -> list[Asker]:
    """resolve_user for many users of one workspace or tenant (a channel's members), in order, in two queries
    however many they are: one for linked platform identities, one for the verified emails of the rest.

    `directory` is asked once, and only about users no platform identity links, since those are the only ones
    whose directory entry can change the outcome.
    """
    principals = {user_id: platform_principal(platform, team_id, user_id) for user_id in user_ids}
    linked = {identity.principal: identity for identity in ExternalIdentity.objects.select_related("user")
              .filter(principal__in=set(principals.values()))} if principals else {}
    unlinked = [user_id for user_id in dict.fromkeys(user_ids) if principals[user_id] not in linked]
    found: Mapping[str, DirectoryUser | None] = {}
    lookup_failed = False
    if unlinked and directory is not None:
        try:
            found = directory(unlinked)
        except IdentityLookupFailed:
            logger.warning("identity lookup failed for %s users %s/%s", platform, team_id, ",".join(unlinked[:20]),
                           exc_info=True)
            lookup_failed = True
    emails: dict[str, set[str]] = {}
    for user_id in unlinked:
        entry = found.get(user_id)
        if entry is not None and not entry.internal:
            logger.info("%s user %s/%s is a guest or from another organisation: not matched by email", platform,
                        team_id, user_id)
        elif entry is not None:
            emails[user_id] = {normalize_principal(f"email:{address}") for address in entry.addresses if address}
    wanted = set().union(*emails.values()) if emails else set()
    # Of several accounts with one of a user's addresses, the one linked first (as a single lookup took).
    by_email: dict[str, ExternalIdentity] = {}
    for candidate in (ExternalIdentity.objects.select_related("user").filter(principal__in=wanted).order_by("id")
                      if wanted else ()):
        by_email.setdefault(candidate.principal, candidate)
    askers = []
    for user_id in user_ids:
        identity: ExternalIdentity | None = linked.get(principals[user_id]) or min(
            (by_email[p] for p in emails.get(user_id, ()) if p in by_email), key=lambda i: i.pk, default=None)
        user = identity.user if identity is not None and identity.user.is_active else None
        entry = found.get(user_id)
        askers.append(Asker(platform, team_id, user_id, user,
                            lookup_failed=lookup_failed and principals[user_id] not in linked,
                            outside=entry is not None and not entry.internal and user is None,
                            bot=entry is not None and entry.bot and user is None))
    return askers


def asker_principals(asker: Asker) -> frozenset[str]:
    """An unlinked asker reads as nobody: public documents only."""
    return principals_for(asker.user) if asker.user is not None else frozenset()


def shared_principals(askers: Iterable[Asker]) -> tuple[frozenset[str], int]:
    """Principals every one of `askers` holds, and how many are unlinked; their groups are expanded together.

    A document is readable by everyone in the group if it is public or its ACL names one of these principals,
    since every member then holds that principal. Any unlinked member makes this empty: public documents only.
    """
    askers = list(askers)
    expanded = principals_of(asker.user for asker in askers if asker.user is not None)
    shared: frozenset[str] | None = None
    unlinked = 0
    for asker in askers:
        principals = expanded[asker.user.pk] if asker.user is not None else frozenset()
        if not asker.linked:
            unlinked += 1
        shared = principals if shared is None else shared & principals
    return shared or frozenset(), unlinked


# -- threads -----------------------------------------------------------------------------------------

def _thread_conversation(asker: Asker, channel_id: str, thread_id: str, scope: str) -> ThreadConversation | None:
    return (ThreadConversation.objects.select_related("conversation")
            .filter(platform=asker.platform, team_id=asker.team_id, channel_id=channel_id, thread_id=thread_id,
                    platform_user_id=asker.user_id, scope=scope).first())


def answer_question(
    asker: Asker,
    *,
    channel_id: str,
    thread_id: str,
    text: str,
    scope: str = SCOPE_PERSONAL,
    principals: frozenset[str] | None = None,
    members_unlinked: int = 0,
    fresh_after: timedelta | None = None,
    now: datetime | None = None,
) -> BotAnswer:
    """Answer `text` for `asker` in a thread; a follow-up in the same thread continues its conversation.

    `principals` overrides the asker's own (a channel-safe answer passes the members' shared principals).
    `fresh_after`: for chats without threads, a question after this much quiet (until `now`) starts a new
    conversation. Raises BotError with a message fit for the asker.
    """
    now = now or timezone.now()
    if principals is None:
        principals = asker_principals(asker)
    mapping = _thread_conversation(asker, channel_id, thread_id, scope)
    conversation_id = mapping.conversation_id if mapping else None
    if mapping is not None and mapping.conversation.user_id != (asker.user.pk if asker.user else None):
        conversation_id = None  # the account link changed since: start afresh rather than fail
    if mapping is not None and fresh_after is not None and mapping.last_used_at < now - fresh_after:
        conversation_id = None
    try:
        with BOT_ANSWER_SECONDS.labels(asker.platform).time():
            result = ask(text, principals=principals, user=asker.user, conversation_id=conversation_id,
                         surface=asker.platform,
                         requester=platform_principal(asker.platform, asker.team_id, asker.user_id),
                         channel=f"{asker.platform}:{asker.team_id}:{channel_id}")
    except InvalidQuestion as exc:
        raise BotError(f"I can't answer that: {exc.user_message}.") from exc
    except RateLimited as exc:
        # Not retryable: the event is done, so a redelivery does not ask again.
        raise BotError(exc.user_message) from exc
    except ServiceUnavailable as exc:
        # Search down: a platform retry a minute later may find it back. An index not ready yet will not be.
        raise BotError(exc.user_message, retryable=isinstance(exc, SearchUnavailable)) from exc
    if mapping is None:
        try:
            with transaction.atomic():
                ThreadConversation.objects.create(
                    platform=asker.platform, team_id=asker.team_id, channel_id=channel_id, thread_id=thread_id,
                    platform_user_id=asker.user_id, scope=scope, conversation_id=result.conversation_id)
        except IntegrityError:
            pass  # a concurrent first question in the same thread won; later follow-ups use that one
    else:
        ThreadConversation.objects.filter(pk=mapping.pk).update(conversation_id=result.conversation_id,
                                                                last_used_at=now)
    return BotAnswer(result=result, asker=asker, scope=scope, members_unlinked=members_unlinked)


# -- feedback ----------------------------------------------------------------------------------------

def give_feedback(asker: Asker, answer_id: str, kind: str, reason: str = "", comment: str = "") -> Feedback:
    """Record feedback from the asker of an answer. Raises BotError with a message for the user."""
    if asker.user is None:
        raise BotError("Link your account to Citewise to give feedback on answers.")
    try:
        return record_feedback(answer_id, asker.user, kind, reason=reason, comment=comment)
    except AnswerNotFound as exc:
        raise BotError("Only the person who asked can give feedback on this answer.") from exc
    except FeedbackError as exc:
        raise BotError(f"That feedback could not be recorded: {exc.user_message}.") from exc


def flag_reasons() -> list[tuple[str, str]]:
    return [(value, str(label)) for value, label in Feedback.Reason.choices]


# -- de-duplication ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """A worker's hold on a platform event. `attempt` tells this hold from a later one: a worker presumed dead whose
    event a retry took over can no longer renew it or mark it finished."""

    platform: str
    event_id: str
    attempt: int


def event_lease() -> timedelta:
    """How long a claim lasts unless its worker renews it (settings.BOT_EVENT_LEASE_S)."""
    return timedelta(seconds=settings.BOT_EVENT_LEASE_S)


def claim_event(platform: str, event_id: str, *, now: datetime | None = None) -> Claim | None:
    """A claim if this worker should handle the event: first delivery, or a retry of one that failed or whose
    worker died (its lease ran out). None for a duplicate."""
    now = now or timezone.now()
    lease_expires_at = now + event_lease()
    try:
        with transaction.atomic():
            ProcessedEvent.objects.create(platform=platform, event_id=event_id, lease_expires_at=lease_expires_at)
        return Claim(platform, event_id, 1)
    except IntegrityError:
        pass
    rows = ProcessedEvent.objects.filter(platform=platform, event_id=event_id)
    attempt = rows.values_list("attempts", flat=True).first()
    if attempt is None:
        return None  # deleted meanwhile (by an admin): nothing to take over
    # One UPDATE whose WHERE tests the row itself, attempts included. PostgreSQL re-evaluates such a WHERE on the
    # row as a concurrent takeover left it, once that commits, so of two retries only one matches; predicates in a
    # subquery (`pk IN (SELECT …)`) are not re-evaluated there, and both retries would win.
    taken = rows.filter(
        Q(status=ProcessedEvent.Status.FAILED)
        | Q(status=ProcessedEvent.Status.PROCESSING, lease_expires_at__lt=now)
        # A claim made without a lease (before leases, or by such a worker during an upgrade) keeps its old 5 minutes.
        | Q(status=ProcessedEvent.Status.PROCESSING, lease_expires_at__isnull=True,
            updated_at__lt=now - timedelta(minutes=5)),
        attempts=attempt,
    ).update(status=ProcessedEvent.Status.PROCESSING, attempts=attempt + 1, error="",
             lease_expires_at=lease_expires_at, updated_at=now)
    if taken != 1:
        BOT_EVENTS.labels(platform, "duplicate").inc()
        return None
    return Claim(platform, event_id, attempt + 1)


def renew_claim(claim: Claim, *, now: datetime | None = None) -> bool:
    """Extend the claim's lease while its worker is still at it. False if the claim is no longer this worker's: its
    lease ran out and a retry took the event over (that retry answers it)."""
    now = now or timezone.now()
    return ProcessedEvent.objects.filter(
        platform=claim.platform, event_id=claim.event_id, attempts=claim.attempt,
        status=ProcessedEvent.Status.PROCESSING,
    ).update(lease_expires_at=now + event_lease(), updated_at=now) == 1


def finish_event(platform: str, event_id: str, *, error: str = "", attempt: int | None = None,
                 now: datetime | None = None) -> bool:
    """Mark a claimed event done (answer posted) or failed (a retry may answer it).

    With `attempt` (Claim.attempt), only while that claim is still the event's: a worker whose event was taken over
    leaves the outcome to the retry. Returns whether the event was marked.
    """
    status = ProcessedEvent.Status.FAILED if error else ProcessedEvent.Status.DONE
    rows = ProcessedEvent.objects.filter(platform=platform, event_id=event_id)
    if attempt is not None:
        rows = rows.filter(attempts=attempt)
    marked = rows.update(status=status, error=error[:2000], lease_expires_at=None,
                         updated_at=now or timezone.now()) == 1
    if marked:
        BOT_EVENTS.labels(platform, status).inc()
    else:
        logger.warning("%s event %s is no longer this claim's (a retry took it over); not marking it %s", platform,
                       event_id, status)
    return marked
