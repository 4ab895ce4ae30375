"""A clock for tests of code that waits (core.clock.Clock): time moves only when a test,
or a wait of the code under test, moves it; every wait is recorded, so a test asserts how long the code meant to
wait without waiting."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone


class FakeClock:
    def __init__(self) -> None:
        self.current = timezone.now()
        self.waits: list[float] = []

    def now(self) -> datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
