"""manage.py rotate_secrets [--new-key] — re-encrypt connector credentials with the newest encryption key."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connectors import secrets, services


class Command(BaseCommand):
    help = ("Re-encrypt every source's credentials with the first key of CITEWISE_ENCRYPTION_KEY (put a new key in "
            "front, run this, then drop the old one); --new-key prints a fresh key instead.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--new-key", action="store_true", help="print a new Fernet key and change nothing")

    def handle(self, *args, **options) -> None:
        if options["new_key"]:
            self.stdout.write(secrets.generate_key())
            return
        try:
            rotated = services.rotate_secrets()
        except secrets.SecretsUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted the credentials of {rotated} source(s) with the newest key")
