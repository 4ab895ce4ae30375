"""POST /api/teams/messages: the Bot Framework messaging endpoint for Teams."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from asgiref.sync import async_to_sync
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

if TYPE_CHECKING:
    from bot.teams.listeners import Reply


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _reply(reply: Reply) -> HttpResponse:
    if reply.body is None:
        return HttpResponse(status=reply.status)
    return JsonResponse(reply.body, status=reply.status, safe=False)


@csrf_exempt
@require_POST
def messages(request: HttpRequest) -> HttpResponse:
    # botbuilder takes over half a second to import: only processes that serve Teams pay for it.
    from botbuilder.schema import Activity

    from bot.teams.listeners import TeamsNotConfigured, authenticate_header, check_configured, receive

    try:
        check_configured()
    except TeamsNotConfigured as exc:
        return _error(503, f"Teams is not configured: {exc}")
    auth_header = request.headers.get("Authorization")
    # The token first: the body of a request that is not from the Bot Connector is never read, let alone parsed.
    refusal = async_to_sync(authenticate_header)(auth_header)
    if refusal is not None:
        return _reply(refusal)
    try:
        body = request.body  # at most DATA_UPLOAD_MAX_MEMORY_SIZE
    except RequestDataTooBig:
        return _error(413, "the body is larger than an activity can be")
    try:
        data = json.loads(body or b"")
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        activity = Activity().deserialize(data)
    except RecursionError:
        return _error(400, "the body is not a Bot Framework activity: JSON nested too deeply")
    except (ValueError, TypeError, AttributeError) as exc:  # msrest's DeserializationError is a ValueError
        return _error(400, f"the body is not a Bot Framework activity: {exc}")
    if not activity.type or not activity.service_url or not (activity.conversation and activity.conversation.id):
        return _error(400, "the activity needs type, serviceUrl and conversation.id")
    if activity.type in ("message", "invoke") and not (activity.from_property and activity.from_property.id
                                                        and activity.recipient and activity.recipient.id):
        return _error(400, "a message or invoke activity needs from.id and recipient.id")
    return _reply(async_to_sync(receive)(activity, auth_header, data))
