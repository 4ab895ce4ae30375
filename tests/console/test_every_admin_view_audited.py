"""Every page of the console is audited: the list of every registered model, whoever registered it (ours, Django's,
DRF's), writes an admin.view event naming the model when an administrator opens it."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_opening_any_list_in_the_console_is_audited(client, admin_user):
    client.force_login(admin_user)
    unaudited = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        before = AuditEvent.objects.filter(actor=admin_user, action="admin.view").count()
        response = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert response.status_code == 200, (opts.label, response.status_code)
        after = AuditEvent.objects.filter(actor=admin_user, action="admin.view")
        if after.count() != before + 1 or after.first().object_type != f"{opts.app_label}.{opts.model_name}":
            unaudited.append(f"{opts.label} ({type(model_admin).__name__})")
    assert unaudited == []
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert {"connectors.source", "connectors.sourcefreshness", "auth.user", "auth.group", "authtoken.tokenproxy",
            "bot.channelsettings", "console.flaggedanswer", "identity.externalidentity"} <= registered
