"""Signing out, who is signed in, the console link for staff only, and friendly error pages without DEBUG."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.views.defaults import permission_denied

pytestmark = pytest.mark.django_db

LOGOUT = "/accounts/logout/"


def csrf_token(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.parametrize("page", ["/chat/", "/"])
def test_the_pages_show_who_is_signed_in_and_a_sign_out_form(client, alice, page):
    client.force_login(alice)
    html = client.get(page).content.decode()
    assert re.search(r'Signed in as <strong id="signed-in-user">alice</strong>', html)
    form = re.search(r'<form method="post" action="/accounts/logout/" class="sign-out">(.*?)</form>', html, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group(1) and "Sign out" in form.group(1)


def test_the_console_link_is_for_staff_only(client, alice, admin_user):
    client.force_login(alice)
    assert 'href="/admin/"' not in client.get("/chat/").content.decode()
    client.force_login(admin_user)
    assert 'href="/admin/">Console</a>' in client.get("/chat/").content.decode()


def test_a_get_of_sign_out_asks_to_confirm_and_signs_nobody_out(alice):
    """Reproduces issue 15: GET /accounts/logout/ was a 405."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    page = client.get(LOGOUT)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sign out?" in html and "alice" in html and 'method="post" action="/accounts/logout/"' in html
    assert client.get("/chat/").status_code == 200  # still signed in

    # Without the CSRF token (another site's form): refused with a readable page, still signed in.
    refused = client.post(LOGOUT)
    assert refused.status_code == 403 and b"Please try again" in refused.content
    assert client.get("/chat/").status_code == 200

    signed_out = client.post(LOGOUT, {"csrfmiddlewaretoken": csrf_token(html)})
    assert signed_out.status_code == 302 and signed_out["Location"] == "/accounts/login/"
    chat = client.get("/chat/")
    assert chat.status_code == 302 and chat["Location"].startswith("/accounts/login/")
    assert "You are signed out" in client.get(LOGOUT).content.decode()


def test_errors_are_friendly_pages_not_debug_pages(client, alice, settings):
    settings.DEBUG = False
    client.force_login(alice)
    missing = client.get("/no-such-page/")
    html = missing.content.decode()
    assert missing.status_code == 404 and "Page not found" in html and 'href="/chat/"' in html
    assert "URLconf" not in html and "Traceback" not in html
    # Under /api/ a 404 stays JSON.
    assert client.get("/api/v1/no-such-endpoint").json()["code"] == "not_found"

    # A view that refuses (PermissionDenied) gets the site's 403 page through Django's handler.
    forbidden = permission_denied(RequestFactory().get("/somewhere"), PermissionDenied())
    assert forbidden.status_code == 403 and b"Not allowed" in forbidden.content and b'href="/chat/"' in forbidden.content
