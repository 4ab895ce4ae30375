"""POST /slack/events: the Events API and interactivity, verified and dispatched by bolt's Django adapter."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_bolt.adapter.django import SlackRequestHandler

from bot.slack.app import SlackNotConfigured, get_app

_handlers: dict[int, SlackRequestHandler] = {}


@csrf_exempt
@require_POST
def events(request: HttpRequest) -> HttpResponse:
    try:
        app = get_app()
    except SlackNotConfigured:
        return HttpResponse("Slack is not configured", status=503, content_type="text/plain")
    handler = _handlers.get(id(app))
    if handler is None:
        _handlers.clear()
        handler = _handlers[id(app)] = SlackRequestHandler(app)
    return handler.handle(request)
