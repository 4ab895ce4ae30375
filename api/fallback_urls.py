"""Included last under /api/ (console/urls.py): a path no endpoint claimed is a JSON 404, even with DEBUG on."""

from django.urls import re_path

from api import errors

urlpatterns = [re_path(r"", errors.not_found)]
