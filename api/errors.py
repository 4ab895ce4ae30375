"""Every error the API returns, in one shape: JSON `{"detail": <what a person may be told>, "code": <stable id>}`.

Citewise's own errors (core.errors.CitewiseError) carry their status and message; DRF's (validation, authentication,
parsing) keep theirs and gain a code; anything else is a 500 whose body names nothing internal (the detail goes to the
log with a reference the body repeats). Unknown /api/ URLs are JSON 404s too, with DEBUG on or off.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import CitewiseError, RateLimited

logger = logging.getLogger("citewise.api")


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The body is larger than the API accepts (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    default_code = "request_too_large"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: the one place an exception becomes an API response."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, CitewiseError):
        if exc.http_status >= 500:
            logger.warning("%s: %s", exc.code, exc)
        body: dict[str, Any] = {"detail": exc.user_message, "code": exc.code}
        headers = {}
        if isinstance(exc, RateLimited):
            body["retry_after"] = exc.retry_after
            headers["Retry-After"] = str(exc.retry_after)
        return Response(body, status=exc.http_status, headers=headers)
    response = drf_exception_handler(exc, context)
    if response is None:
        reference = uuid.uuid4().hex[:12]
        logger.error("unexpected error answering %s (ref %s)", _path(context), reference, exc_info=exc)
        return Response({"detail": f"{CitewiseError.user_message} (ref {reference})", "code": CitewiseError.code},
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(response.data, dict) and "detail" in response.data:
        response.data["code"] = getattr(response.data["detail"], "code", None) or "error"
    elif isinstance(response.data, dict):  # field errors, {"field": ["problem"]}: kept, with the shared keys added
        response.data = {"detail": "Invalid input: see the fields named.", "code": "invalid_input", **response.data}
    return response


def _path(context: dict[str, Any]) -> str:
    request = context.get("request")
    return getattr(request, "path", "?")


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """An /api/ URL that names no endpoint, or a malformed id in one: a JSON 404, never Django's HTML page."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 handler (console/urls.py): JSON under /api/, the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return not_found(request)
    return defaults.page_not_found(request, exception or Http404())


def handler500(request: HttpRequest) -> HttpResponse:
    """Django's 500 handler (console/urls.py), for errors outside DRF's views: JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": CitewiseError.user_message, "code": CitewiseError.code}, status=500)
    return defaults.server_error(request)
