"""Connector credentials are stored encrypted, never shown back in full, and survive a key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from connectors import secrets, selectors, services
from connectors.models import Source
from connectors.sources import connector_for
from core.errors import InvalidInput

pytestmark = pytest.mark.django_db
TOKEN = "ATATT3xFfGF0-very-secret-token-1234"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def use_keys(settings, *keys: str) -> None:
    settings.CITEWISE = settings.CITEWISE.replace(encryption_key=",".join(keys))


def confluence_source(**kwargs) -> Source:
    return services.ensure_source("confluence", "https://corp.atlassian.net", config={"email": "bot@corp.example"},
                                  **kwargs)


def test_credentials_are_stored_encrypted_and_read_back(settings):
    use_keys(settings, OLD_KEY)
    source = confluence_source(secrets={"api_token": TOKEN})
    stored = Source.objects.values_list("encrypted_secrets", flat=True).get(pk=source.pk)
    assert TOKEN not in stored and "api_token" not in stored and stored
    assert TOKEN not in str(Source.objects.values_list("config", flat=True).get(pk=source.pk))
    assert selectors.source_secrets(Source.objects.get(pk=source.pk)) == {"api_token": TOKEN}
    connector = connector_for(Source.objects.get(pk=source.pk))
    assert connector._client.auth is not None and TOKEN not in repr(connector)


def test_a_credential_in_the_config_is_refused():
    with pytest.raises(InvalidInput, match="api_token is a credential"):
        services.ensure_source("confluence", "https://corp.atlassian.net", config={"api_token": TOKEN})


def test_without_a_key_credentials_cannot_be_stored_and_the_error_says_what_to_set(settings):
    use_keys(settings)
    with pytest.raises(secrets.SecretsUnavailable, match="CITEWISE_ENCRYPTION_KEY is not set"):
        confluence_source(secrets={"api_token": TOKEN})
    use_keys(settings, "not-a-fernet-key")
    with pytest.raises(secrets.SecretsUnavailable, match="not a Fernet key"):
        confluence_source(secrets={"api_token": TOKEN})


def test_a_key_is_rotated_by_putting_a_new_one_first_and_re_encrypting(settings, capsys):
    use_keys(settings, OLD_KEY)
    source = confluence_source(secrets={"api_token": TOKEN})
    use_keys(settings, NEW_KEY, OLD_KEY)  # the new key encrypts, both decrypt
    assert selectors.source_secrets(Source.objects.get(pk=source.pk)) == {"api_token": TOKEN}
    call_command("rotate_secrets")
    assert "1 source(s)" in capsys.readouterr().out
    use_keys(settings, NEW_KEY)  # the old key dropped: what was rotated is still readable
    assert selectors.source_secrets(Source.objects.get(pk=source.pk)) == {"api_token": TOKEN}
    use_keys(settings, OLD_KEY)  # ... and no longer readable with the old key alone
    with pytest.raises(secrets.SecretsUnavailable, match="no longer holds"):
        selectors.source_secrets(Source.objects.get(pk=source.pk))


def test_new_key_prints_a_usable_key(capsys):
    call_command("rotate_secrets", "--new-key")
    Fernet(capsys.readouterr().out.strip().encode())  # raises if it is not a Fernet key


def test_mask_never_shows_a_whole_secret():
    assert secrets.mask(TOKEN) == "••••1234"
    assert secrets.mask("short") == "••••"
    assert secrets.mask("") == ""


def test_the_console_shows_credentials_masked_and_sets_them_write_only(settings, client):
    use_keys(settings, OLD_KEY)
    source = confluence_source(secrets={"api_token": TOKEN})
    client.force_login(get_user_model().objects.create_superuser("root", "root@corp.example", "pw"))
    url = reverse("admin:connectors_source_change", args=[source.pk])
    page = client.get(url).content.decode()
    assert TOKEN not in page and "••••1234" in page
    form = {"name": source.name, "location": source.location, "index_name": "", "search_backend": "",
            "config__deployment": "cloud", "config__email": "bot@corp.example",
            "secret__api_token": "rotated-token-abcd-9876"}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert selectors.source_secrets(Source.objects.get(pk=source.pk)) == {"api_token": "rotated-token-abcd-9876"}
    kept = client.post(url, {**form, "secret__api_token": ""})  # empty keeps what is stored
    assert kept.status_code == 302
    assert selectors.source_secrets(Source.objects.get(pk=source.pk)) == {"api_token": "rotated-token-abcd-9876"}
    # The config has no field for a credential: the typed form offers none, and the schema refuses one.
    assert 'name="config__api_token"' not in client.get(url).content.decode()
    refused = client.post(url, {**form, "config__deployment": "data_center"})  # `email` is a Cloud setting
    assert refused.status_code == 200 and "Data Center signs in with" in refused.content.decode()
