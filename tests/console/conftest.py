"""A small corpus with one restricted folder, and two signed-in users who read it differently.

alice is in group:finance (by her email identity) and may read finance/*; bob is not. public/* is public.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache, caches
from rest_framework.authtoken.models import Token

from connectors import services as connectors
from connectors.models import Document, Source
from identity.models import Account, ExternalIdentity

BUDGET_QUESTION = "What is the travel budget for 2025?"
KITCHEN_QUESTION = "When is the espresso machine descaled?"


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty local-memory cache (never flush a shared Redis database)."""
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        cache.clear()
    yield
    if isinstance(caches["default"], LocMemCache):
        cache.clear()


def write_manifest(folder: Path, *, finance_members: list[str], finance_readers: list[str] | None = None) -> None:
    (folder / ".citewise-acl.json").write_text(json.dumps({
        "groups": {"group:finance": finance_members},
        "rules": [
            {"paths": ["public/*"], "public": True},
            {"paths": ["finance/*"], "principals": finance_readers or ["group:finance"]},
        ],
    }))


def write_corpus(folder: Path) -> Path:
    (folder / "public").mkdir(parents=True)
    (folder / "finance").mkdir()
    (folder / "public" / "kitchen.md").write_text(
        "# Kitchen\n\nThe espresso machine is descaled every Friday by the facilities team.\n")
    (folder / "finance" / "travel-budget.md").write_text(
        "# Travel budget\n\nThe company travel budget for 2025 is 40,000 euros, approved by the finance "
        "committee in January.\n")
    write_manifest(folder, finance_members=["email:alice@corp.example"])
    return folder


def index_corpus(folder: Path) -> Source:
    source = connectors.ensure_source("filesystem", folder, name=f"corpus-{uuid.uuid4().hex[:6]}")
    report = connectors.sync_source(source)
    assert (report.indexed, report.failed) == (2, 0), report.errors
    connectors.sync_permissions(source)
    return source


def make_user(username: str, **extra):
    user = get_user_model().objects.create_user(username, f"{username}@corp.example", "pw", **extra)
    ExternalIdentity.objects.create(user=user, principal=f"email:{username}@corp.example")
    Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
    return user


def finance_document(source: Source) -> Document:
    return Document.objects.get(source=source, external_id="finance/travel-budget.md")


def public_document(source: Source) -> Document:
    return Document.objects.get(source=source, external_id="public/kitchen.md")


def auth(user) -> dict[str, str]:
    return {"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"}


@pytest.fixture
def main_index(configured_backend: str) -> str:
    """The configured main index on each backend, fresh and dropped afterwards (tests/conftest.py)."""
    return configured_backend


@pytest.fixture
def corpus(tmp_path, isolated_index, db):
    folder = write_corpus(tmp_path / "docs")
    return folder, index_corpus(folder)


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("root", "root@corp.example", "pw")
