"""Request ids for the logs; the admin console answers a signed-in employee who is not an administrator with 403,
not a login form."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import reverse

from core import logcontext


class AdminConsoleForStaffOnly:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefix = reverse("admin:index")
        self.logout = reverse("admin:logout")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (request.path.startswith(self.prefix) and request.path != self.logout and user is not None
                and user.is_authenticated and not (user.is_active and user.is_staff)):
            return HttpResponseForbidden("The admin console is for administrators.")
        return self.get_response(request)


class RequestIds:
    """Each request gets an id (the proxy's X-Request-ID when it sends a plausible one) that its log lines carry and
    its response echoes, so a user's report or a proxy's access log leads to the lines of that request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Not cleared on the way out: a streamed response (the chat's events) still runs after this returns. The next
        # request on this thread starts afresh.
        request_id = logcontext.new_request(request.headers.get(logcontext.REQUEST_ID_HEADER))
        response = self.get_response(request)
        response[logcontext.REQUEST_ID_HEADER] = request_id
        return response
