"""The one error base every Citewise failure a user can meet derives from.

Each error says, once, what it is (``code``: stable, for clients and metrics), how HTTP reports it (``http_status``)
and what a person may be told (``user_message``: no internal host names, URLs, stack traces or other users' data).
The API's exception handler (api/errors.py), the console and both bots all show ``user_message``; ``str(error)``
keeps the internal detail, for logs only.
"""

from __future__ import annotations


class CitewiseError(Exception):
    code: str = "internal_error"
    http_status: int = 500
    user_message: str = "Something went wrong on our side. Please try again."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.user_message)
        if user_message is not None:
            self.user_message = user_message


class InvalidInput(CitewiseError):
    """What was sent cannot be used as given; the detail says why, in words meant for the person who sent it."""

    code = "invalid_input"
    http_status = 400
    user_message = "The request is not valid."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail, user_message=user_message if user_message is not None else (detail or None))


class NotFound(CitewiseError):
    code = "not_found"
    http_status = 404
    user_message = "Not found."


class Conflict(CitewiseError):
    code = "conflict"
    http_status = 409
    user_message = "That conflicts with work already under way; try again shortly."


class RateLimited(CitewiseError):
    code = "rate_limited"
    http_status = 429
    user_message = "Too many requests; please wait a moment."

    def __init__(self, detail: str = "", *, retry_after: int = 60, user_message: str | None = None) -> None:
        super().__init__(detail, user_message=user_message)
        self.retry_after = retry_after


class ServiceUnavailable(CitewiseError):
    code = "service_unavailable"
    http_status = 503
    user_message = "Search is unavailable right now; please try again in a few minutes."
