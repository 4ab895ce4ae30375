"""The one question workflow (bot.workflow) against an in-memory Platform: where it halts, what it tells the asker,
how the claim ends, and how citewise_bot_questions_total labels it. The end-to-end tests (test_slack, test_teams)
run the same workflow through the real adapters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from bot import services, workflow
from bot.models import ChannelSettings, ProcessedEvent
from bot.services import BotError, DirectoryUser
from bot.workflow import Delivery, Halt, Outcome, Question

pytestmark = pytest.mark.django_db


class FakePlatform:
    """A Platform that records what the workflow asked of it; `on_progress` runs when progress is shown."""

    def __init__(self, members: Sequence[str] | None = (), *, on_progress=None, directory_error=None,
                 members_error=None, failure_error=None):
        self.members, self.on_progress = members, on_progress
        self.directory_error, self.members_error, self.failure_error = directory_error, members_error, failure_error
        self.asked: list[list[str]] = []  # every directory request, with the users it named
        self.delivered: list[tuple[str, object, Delivery]] = []
        self.progress: list[str] = []

    def show_progress(self) -> None:
        self.progress.append("shown")
        if self.on_progress:
            self.on_progress()

    def stop_progress(self) -> None:
        self.progress.append("stopped")

    def directory(self, user_ids: Sequence[str]) -> dict[str, DirectoryUser | None]:
        self.asked.append(list(user_ids))
        if self.directory_error:
            raise self.directory_error
        return {user_id: DirectoryUser(addresses=(f"{user_id.lower()}@elsewhere.example",), internal=True)
                for user_id in user_ids}

    def channel_members(self) -> list[str] | None:
        if self.members_error:
            raise self.members_error
        return None if self.members is None else list(self.members)

    def deliver_answer(self, answer, delivery: Delivery) -> None:
        self.delivered.append(("answer", answer, delivery))

    def deliver_failure(self, message: str, delivery: Delivery) -> None:
        if self.failure_error:
            raise self.failure_error
        self.delivered.append(("failure", message, delivery))


def question(event_id: str, *, channel: str | None = "C1", text: str = "What is the on-call pay?",
             mentioned: bool = True) -> Question:
    return Question(platform="slack", event_id=event_id, team_id="T1", user_id="UASKER", text=text,
                    channel_id=channel or "D1", thread_id="1.0", settings_key=("T1", channel) if channel else None,
                    mentioned=mentioned, reference=f"ref-{event_id}", log_context=f"event={event_id}")


def counted(outcome: Outcome, halt: Halt) -> float:
    return REGISTRY.get_sample_value("citewise_bot_questions_total",
                                     {"platform": "slack", "outcome": outcome.value, "halt": halt.value}) or 0.0


@pytest.mark.parametrize("settings_kwargs, mentioned, halt", [
    ({"enabled": False}, True, Halt.CHANNEL_DISABLED),
    ({"respond_only_when_mentioned": True}, False, Halt.NOT_MENTIONED),
])
def test_a_channel_whose_settings_say_no_is_ignored_before_anything_is_claimed(bot_clock, settings_kwargs, mentioned,
                                                                              halt):
    ChannelSettings.objects.create(team_id="T1", channel_id="C1", **settings_kwargs)
    before = counted(Outcome.IGNORED, halt)
    platform = FakePlatform()
    assert workflow.answer(question("EvOFF", mentioned=mentioned), platform, clock=bot_clock) is Outcome.IGNORED
    assert counted(Outcome.IGNORED, halt) == before + 1
    assert platform.progress == platform.delivered == [] and ProcessedEvent.objects.count() == 0


def test_a_redelivery_of_a_claimed_event_is_a_duplicate(bot_clock):
    assert services.claim_event("slack", "EvTWICE", now=bot_clock.now())
    before = counted(Outcome.DUPLICATE, Halt.ALREADY_CLAIMED)
    platform = FakePlatform()
    assert workflow.answer(question("EvTWICE"), platform, clock=bot_clock) is Outcome.DUPLICATE
    assert counted(Outcome.DUPLICATE, Halt.ALREADY_CLAIMED) == before + 1
    assert platform.progress == platform.delivered == []


def test_a_worker_whose_lease_ran_out_leaves_the_question_to_the_retry_that_took_it_over(bot_clock):
    def stall_until_a_retry_takes_over() -> None:
        # The worker hangs past its lease (the clock, not a sleep), and the platform's retry claims the event.
        bot_clock.advance(services.event_lease().total_seconds() + 1)
        assert services.claim_event("slack", "EvSTALLED", now=bot_clock.now()) is not None

    before = counted(Outcome.SUPERSEDED, Halt.CLAIM_LOST)
    platform = FakePlatform(on_progress=stall_until_a_retry_takes_over)
    assert workflow.answer(question("EvSTALLED"), platform, clock=bot_clock) is Outcome.SUPERSEDED
    assert counted(Outcome.SUPERSEDED, Halt.CLAIM_LOST) == before + 1
    # Nothing said, the progress sign left to the retry, and the claim the retry's.
    assert platform.delivered == [] and platform.progress == ["shown"]
    claim = ProcessedEvent.objects.get(event_id="EvSTALLED")
    assert (claim.status, claim.attempts) == ("processing", 2)


def test_channel_members_are_resolved_with_one_directory_request_and_a_final_error_is_explained(bot_clock):
    ChannelSettings.objects.create(team_id="T1", channel_id="C1", visibility="channel_safe")
    members = [f"UMEMBER{n}" for n in range(40)] + ["UASKER"]
    platform = FakePlatform(members)
    before = counted(Outcome.EXPLAINED, Halt.FINAL_ERROR)
    # An empty question fails once the audience is known: a BotError a retry would meet again.
    outcome = workflow.answer(question("EvEMPTY", text=""), platform, clock=bot_clock)
    assert outcome is Outcome.EXPLAINED and counted(Outcome.EXPLAINED, Halt.FINAL_ERROR) == before + 1
    # The asker, then every other member at once.
    assert platform.asked == [["UASKER"], [f"UMEMBER{n}" for n in range(40)]]
    [(kind, message, delivery)] = platform.delivered
    assert kind == "failure" and delivery is Delivery.CHANNEL and message
    assert platform.progress == ["shown", "stopped"]
    assert ProcessedEvent.objects.get(event_id="EvEMPTY").status == "done"  # a retry is a duplicate


def test_a_channel_too_large_to_list_is_explained_to_the_asker(bot_clock):
    ChannelSettings.objects.create(team_id="T1", channel_id="C1", visibility="channel_safe")
    platform = FakePlatform(members_error=BotError("This channel is too large."))
    assert workflow.answer(question("EvLARGE"), platform, clock=bot_clock) is Outcome.EXPLAINED
    assert platform.delivered == [("failure", "This channel is too large.", Delivery.CHANNEL)]


def test_an_unexpected_error_is_explained_with_a_reference_and_left_to_the_retry(bot_clock):
    before = counted(Outcome.FAILED, Halt.UNEXPECTED_ERROR)
    platform = FakePlatform(directory_error=RuntimeError("directory client bug"))
    assert workflow.answer(question("EvBUG", channel=None), platform, clock=bot_clock) is Outcome.FAILED
    assert counted(Outcome.FAILED, Halt.UNEXPECTED_ERROR) == before + 1
    [(kind, message, delivery)] = platform.delivered
    assert kind == "failure" and "ref-EvBUG" in message and delivery is Delivery.IN_PLACE
    claim = ProcessedEvent.objects.get(event_id="EvBUG")
    assert claim.status == "failed" and "directory client bug" in claim.error
    # The platform's retry, a minute later, may try again.
    bot_clock.advance(timedelta(minutes=1).total_seconds())
    assert services.claim_event("slack", "EvBUG", now=bot_clock.now()) is not None


def test_a_failure_that_cannot_even_be_explained_is_failed(bot_clock):
    platform = FakePlatform(directory_error=RuntimeError("down"), failure_error=RuntimeError("still down"))
    assert workflow.answer(question("EvDOWN", channel=None), platform, clock=bot_clock) is Outcome.FAILED
    assert platform.delivered == [] and platform.progress == ["shown", "stopped"]
