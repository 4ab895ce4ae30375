"""Ids every log line carries while one piece of work runs: the web request, the answer, the chat event, the Celery
task. structlog's context variables hold them (per thread and per asyncio task); the JSON log format
(CITEWISE_LOG_FORMAT=json) merges them into each line, so one grep finds everything one question caused.

A web request's id also travels with the tasks it queues (a message header), so a worker's lines carry the id of the
request that caused them.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request(offered: str | None = None) -> str:
    """Start a fresh context for a request or task: the caller's id when it is a plausible one, else a new one."""
    request_id = offered if offered and _ACCEPTED_ID.fullmatch(offered) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def bind(**ids: Any) -> None:
    structlog.contextvars.bind_contextvars(**{name: str(value) for name, value in ids.items() if value})


def current_ids() -> dict[str, Any]:
    return structlog.contextvars.get_contextvars()


def clear() -> None:
    structlog.contextvars.clear_contextvars()
