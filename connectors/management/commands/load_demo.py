"""manage.py load_demo — index the bundled demo corpus and make a local admin account."""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from connectors import services

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


class Command(BaseCommand):
    help = "Ingest the bundled demo corpus (a fictional company's handbook, policies, runbooks and specs)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--no-admin", action="store_true", help="do not create the local admin account")

    def handle(self, *args, **options) -> None:
        source = services.ensure_source("filesystem", DEMO_CORPUS, name="Demo corpus (Northwind Robotics)")
        report = services.sync_source(source, progress=True)
        self.stdout.write(f"Demo corpus: {report.indexed} indexed, {report.unchanged} unchanged, "
                          f"{report.failed} failed, {report.chunks} chunks in {report.seconds:.1f}s")
        if options["no_admin"]:
            return
        username = os.environ.get("CITEWISE_DEMO_ADMIN", "admin")
        password = os.environ.get("CITEWISE_DEMO_ADMIN_PASSWORD", "citewise-demo")
        users = get_user_model().objects
        if not users.filter(username=username).exists():
            users.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"Admin console: http://127.0.0.1:8000/admin/  user {username!r}, password {password!r}")
