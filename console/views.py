"""The web pages the console serves beside the admin: a search page, health and metrics."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from search import selectors
from search.services import get_backend
from search.types import SearchMode, SearchUnavailable


def search_page(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:1000]
    hits, error = [], ""
    if query:
        try:
            # Until identities arrive (issue 4) every reader sees public documents only.
            hits = selectors.search(query, principals=frozenset(), mode=SearchMode.HYBRID, limit=10)
        except SearchUnavailable as exc:
            error = f"Search is unavailable right now: {exc}"
    return render(request, "console/search.html", {"query": query, "hits": hits, "error": error})


def health(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        connection.ensure_connection()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        checks["database"] = f"error: {exc}"
    try:
        info = get_backend().index_info()
        checks["search"] = "ok" if info else "empty"
    except SearchUnavailable as exc:
        checks["search"] = f"error: {exc}"
    healthy = all(v in ("ok", "empty") for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": checks,
                         "backend": settings.CITEWISE["SEARCH_BACKEND"]}, status=200 if healthy else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    if not (request.user.is_authenticated and request.user.is_staff) and request.META.get("REMOTE_ADDR") not in (
        "127.0.0.1", "::1"
    ):
        return HttpResponseForbidden("metrics are for staff or local scrapers")
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
