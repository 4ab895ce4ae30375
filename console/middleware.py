"""The admin console answers a signed-in employee who is not an administrator with 403, not a login form."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import reverse


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
