from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import dashboards, views

urlpatterns = [
    path("", views.search_page, name="search"),
    path("chat/", views.chat_page, name="chat"),
    path("chat/stream", views.chat_stream, name="chat-stream"),
    path("documents/<str:document_id>/open", views.open_document, name="open-document"),
    path("documents/<str:document_id>", views.document_page, name="document"),
    path("api/v1/", include("api.urls")),
    path("", include("bot.urls")),
    path("healthz", views.health, name="health"),
    path("readyz", views.ready, name="ready"),
    path("metrics", views.metrics, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("accounts/logout/", views.SignOutView.as_view(), name="logout"),
    path("admin/analytics/", admin.site.admin_view(dashboards.analytics_page), name="console-analytics"),
    path("admin/", admin.site.urls),
    path("api/", include("api.fallback_urls")),  # last: whatever else is under /api/ is a JSON 404
]

# Under /api/ errors are JSON (api/errors.py), elsewhere the site's pages. Named by string: console imports no api code.
handler404 = "api.errors.handler404"
handler500 = "api.errors.handler500"
