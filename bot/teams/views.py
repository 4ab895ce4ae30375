"""POST /api/teams/messages: the Bot Framework messaging endpoint for Teams."""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def messages(request: HttpRequest) -> HttpResponse:
    # botbuilder takes over half a second to import: only processes that serve Teams pay for it.
    from botbuilder.schema import Activity

    from bot.teams.adapter import TeamsNotConfigured, check_configured, receive

    try:
        check_configured()
    except TeamsNotConfigured as exc:
        return _error(503, f"Teams is not configured: {exc}")
    auth_header = request.headers.get("Authorization")
    if not auth_header and settings.TEAMS_APP_ID:
        return _error(401, "missing Authorization header")
    try:
        data = json.loads(request.body or b"")
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        activity = Activity().deserialize(data)
    except (ValueError, TypeError, AttributeError) as exc:
        return _error(400, f"the body is not a Bot Framework activity: {exc}")
    if not activity.type or not activity.service_url or not (activity.conversation and activity.conversation.id):
        return _error(400, "the activity needs type, serviceUrl and conversation.id")
    if activity.type in ("message", "invoke") and not (activity.from_property and activity.from_property.id
                                                        and activity.recipient and activity.recipient.id):
        return _error(400, "a message or invoke activity needs from.id and recipient.id")
    reply = async_to_sync(receive)(activity, auth_header, data)
    if reply.body is None:
        return HttpResponse(status=reply.status)
    return JsonResponse(reply.body, status=reply.status, safe=False)
