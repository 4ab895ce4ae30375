"""POST /slack/events: the Events API and interactivity, verified and dispatched by bolt's Django adapter.

Before bolt sees a request, it is checked here: bolt parses the body before it verifies the signature, lets a
timestamp that is not a number raise, and hands any JSON shape to the listeners. So the signature is verified
first (an unsigned body is never parsed), then the signed body's shape, and anything odd is a 4xx with a JSON
`error`, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_bolt.adapter.django import SlackRequestHandler

from bot.slack.app import SlackNotConfigured, get_app

_handlers: dict[int, SlackRequestHandler] = {}

MAX_SIGNATURE_AGE_S = 5 * 60  # as bolt: Slack's replay window
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Interactivity payloads the listeners read the user of.
_PAYLOADS_WITH_A_USER = {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}


class BadRequest(ValueError):
    pass


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _signature_problem(secret: str, timestamp: str, signature: str, body: bytes) -> str | None:
    """Slack's v0 signature (HMAC-SHA256 of `v0:<timestamp>:<raw body>`), over the raw bytes."""
    if not _TIMESTAMP.fullmatch(timestamp):
        return "X-Slack-Request-Timestamp must be a Unix time in seconds"
    if abs(time.time() - int(timestamp)) > MAX_SIGNATURE_AGE_S:
        return "X-Slack-Request-Timestamp is too old or in the future"
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "invalid request signature"
    return None


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError:
        raise BadRequest(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} is not a JSON object")
    return value


def _check_event(body: dict[str, Any]) -> None:
    if not isinstance(body.get("type"), str):
        raise BadRequest("the request has no type")
    if body["type"] == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise BadRequest("an event_callback needs an event object with a type")


def _check_payload(payload: dict[str, Any]) -> None:
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise BadRequest("the interactivity payload has no type")
    if kind in _PAYLOADS_WITH_A_USER:
        user = payload.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise BadRequest(f"a {kind} payload needs user.id")
    if kind == "block_actions" and not isinstance(payload.get("actions"), list):
        raise BadRequest("a block_actions payload needs actions")
    if kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        state = view.get("state") if isinstance(view, dict) else None
        if not isinstance(state, dict) or not isinstance(state.get("values"), dict):
            raise BadRequest(f"a {kind} payload needs view.state.values")


def check_shape(body: bytes, content_type: str | None) -> None:
    """Raise BadRequest unless a signed body is one bolt and the listeners can take. Decides JSON or form as bolt's
    own parser (slack_bolt.request.internals.parse_body) does, so both read the body the same way."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    if not text:
        raise BadRequest("the body is empty")
    if content_type == "application/json" or text.startswith("{"):
        _check_event(_json_object(text, "the body"))
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            _check_payload(_json_object(payload, "the interactivity payload"))


@csrf_exempt
@require_POST
def events(request: HttpRequest) -> HttpResponse:
    try:
        app = get_app()
    except SlackNotConfigured:
        return HttpResponse("Slack is not configured", status=503, content_type="text/plain")
    try:
        body = request.body  # at most DATA_UPLOAD_MAX_MEMORY_SIZE
    except RequestDataTooBig:
        return _error(413, "the body is larger than a Slack request can be")
    problem = _signature_problem(settings.SLACK_SIGNING_SECRET, request.headers.get("X-Slack-Request-Timestamp", ""),
                                 request.headers.get("X-Slack-Signature", ""), body)
    if problem is not None:
        return _error(401, problem)
    try:
        check_shape(body, (request.content_type or "").split(";")[0] or None)
    except BadRequest as exc:
        return _error(400, str(exc))
    handler = _handlers.get(id(app))
    if handler is None:
        _handlers.clear()
        handler = _handlers[id(app)] = SlackRequestHandler(app)
    return handler.handle(request)
