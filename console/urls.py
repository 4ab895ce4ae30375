from django.contrib import admin
from django.urls import path

from console import views

urlpatterns = [
    path("", views.search_page, name="search"),
    path("healthz", views.health, name="health"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
