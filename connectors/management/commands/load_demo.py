"""manage.py load_demo — index the bundled demo corpus with its ACLs, and make the demo employees."""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from connectors import services
from identity import services as identity_services
from identity.models import Account, ExternalIdentity

DEMO_CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"
# Who they are at Kestrel Robotics; connectors/demo/corpus/.citewise-acl.json says what each may read.
# (email, is_external, role): an external email identity makes the account a guest, anyone else an employee.
DEMO_EMPLOYEES = {
    "alice": ("alice@kestrelrobotics.com", False, "engineer"),
    "dave": ("dave@kestrelrobotics.com", False, "platform engineer (platform ⊂ engineering ⊂ all employees)"),
    "ben": ("ben@kestrelrobotics.com", False, "people team"),
    "chris": ("chris@northbridge-contracting.example", True, "outside contractor"),
}


class Command(BaseCommand):
    help = "Ingest the bundled demo corpus (Kestrel Robotics' handbook, policies, runbooks and specs) with its ACLs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-admin", action="store_true", help="do not create the local admin account")

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        password = os.environ.get("CITEWISE_DEMO_PASSWORD", "citewise-demo")
        for username, (email, external, _) in DEMO_EMPLOYEES.items():
            user, created = users.get_or_create(username=username, defaults={"email": email})
            if created:
                user.set_password(password)
                user.save()
            ExternalIdentity.objects.update_or_create(principal=f"email:{email}",
                                                      defaults={"user": user, "is_external": external})
            identity_services.set_account_status(
                user, Account.Status.GUEST if external else Account.Status.EMPLOYEE, surface="cli")
        source = services.ensure_source("filesystem", DEMO_CORPUS, name="Demo corpus (Kestrel Robotics)")
        report = services.sync_source(source, progress=True)
        permissions = services.sync_permissions(source)
        self.stdout.write(f"Demo corpus: {report.indexed} indexed, {report.unchanged} unchanged, "
                          f"{report.failed} failed, {report.chunks} chunks in {report.seconds:.1f}s; "
                          f"{permissions.groups} groups, {permissions.changed} permission changes")
        self.stdout.write(f"Demo employees (password {password!r}): " + ", ".join(
            f"{name} ({role})" for name, (_, _, role) in DEMO_EMPLOYEES.items()))
        if options["no_admin"]:
            return
        username = os.environ.get("CITEWISE_DEMO_ADMIN", "admin")
        admin_password = os.environ.get("CITEWISE_DEMO_ADMIN_PASSWORD", "citewise-demo")
        if not users.filter(username=username).exists():
            users.create_superuser(username, f"{username}@example.com", admin_password)
            self.stdout.write(f"Admin console: http://127.0.0.1:8000/admin/  user {username!r}, "
                              f"password {admin_password!r}")
