"""/api/v1: the HTTP API, its OpenAPI schema and the docs UI."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from api import errors, views

app_name = "api"

urlpatterns = [
    path("ask", views.AskView.as_view(), name="ask"),
    path("search", views.SearchView.as_view(), name="search"),
    path("answers/<uuid:answer_id>/feedback", views.FeedbackView.as_view(), name="feedback"),
    path("conversations", views.ConversationsView.as_view(), name="conversations"),
    path("conversations/<uuid:conversation_id>", views.ConversationView.as_view(), name="conversation"),
    path("documents/<str:document_id>", views.DocumentView.as_view(), name="document"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    # Anything else under /api/v1/, a malformed id included: a JSON 404 even with DEBUG on (no HTML debug page).
    re_path(r"", errors.not_found),
]
