"""What an answer in the making reports as it goes, for a surface that shows it live (the web chat's stream).

Stages, in order: "searching", "reading" (passages=N), "writing", "checking"; a composer that streams adds "draft"
(text=the next piece of its unverified draft). A question asked again with its conversation's context starts over
at "searching". Nobody listening (the API, Slack, Teams, the evaluation) costs nothing, and a listener that fails
never breaks answering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

logger = logging.getLogger("citewise.answering")

Listener = Callable[[str, dict[str, Any]], None]
_listener: ContextVar[Listener | None] = ContextVar("answer_progress_listener", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Report the progress of answers asked inside the block (in this thread) to `listener(stage, data)`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def report(stage: str, **data: Any) -> None:
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(stage, data)
    except Exception:  # a surface that stopped listening must not fail the answer it will record
        logger.exception("progress listener failed on %s", stage)


def wants_drafts() -> bool:
    """Whether a composer should stream its draft: only when someone shows it."""
    return _listener.get() is not None
