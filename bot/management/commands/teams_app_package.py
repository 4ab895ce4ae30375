"""Build the Microsoft Teams app package (the zip for Teams' "Upload a custom app") for this Citewise install.

The package is bot/teams/app_package/manifest.json with its placeholders filled in, plus the two icons, all at
the root of the zip, which is where Teams looks for them. {{TEAMS_APP_ID}} becomes both the manifest id and the
bot id: an app that is a single bot may reuse the bot's Microsoft App ID as its app id, so there is one GUID to
manage. The icons are committed PNGs (a white "[1]" citation mark), so building a package needs no Pillow.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

APP_PACKAGE_DIR = Path(__file__).resolve().parents[2] / "teams" / "app_package"
MANIFEST = "manifest.json"
ICONS = ("color.png", "outline.png")

# The manifest schema's own patterns (v1.17 "guid" and "semver" definitions), so a package that passes here is
# not refused by Teams for its id or version.
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
SEMVER_RE = re.compile(r"^([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)$")
# A DNS name with at least two labels. Teams only reaches bots over public HTTPS, so single-label names
# (localhost) and IP addresses (an all-digit last label) would give a package that cannot work.
HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
PLACEHOLDER_RE = re.compile(r"\{\{\s*[A-Za-z0-9_]+\s*\}\}")

# Fixed zip entry times make the package reproducible: the same arguments always give the same bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def validate_app_id(value: str) -> str:
    """Return the app id in canonical (lower-case) form, or raise CommandError if it is not a GUID."""
    value = value.strip()
    if not value:
        raise CommandError("no app id: pass --app-id or set TEAMS_APP_ID (the Azure Bot's Microsoft App ID, "
                           "under Azure Bot → Configuration)")
    if not GUID_RE.match(value):
        raise CommandError(f"--app-id must be a GUID like 00000000-0000-0000-0000-000000000000 (the Azure Bot's "
                           f"Microsoft App ID), got {value!r}")
    return value.lower()


def validate_host(value: str) -> str:
    """Return the host name in lower case, or raise CommandError unless it is a bare public DNS name."""
    value = value.strip()
    if "://" in value or "/" in value:
        raise CommandError(f"--host takes a bare host name like citewise.example.com, not a URL: got {value!r}")
    if ":" in value:
        # The bot endpoint is https://<host>/api/teams/messages; validDomains entries cannot carry a port.
        raise CommandError(f"--host takes a host name without a port (Teams needs HTTPS on 443): got {value!r}")
    host = value.lower()
    labels = host.split(".")
    if (len(host) > 253 or len(labels) < 2 or not all(HOST_LABEL_RE.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise CommandError(f"--host must be the public DNS name Citewise is served on, like "
                           f"citewise.example.com: got {value!r}")
    return host


def validate_version(value: str) -> str:
    """Return the version, or raise CommandError unless it is MAJOR.MINOR.PATCH as Teams requires."""
    value = value.strip()
    if not SEMVER_RE.match(value):
        raise CommandError(f"--version must be MAJOR.MINOR.PATCH, like 1.0.0: got {value!r}")
    return value


def fill(template: Any, values: dict[str, str]) -> Any:
    """Replace {{NAME}} placeholders in every string of a parsed JSON document.

    Substituting after parsing (rather than in the raw text) means a value can never break the JSON.
    """
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{{" + name + "}}", value)
        return template
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(item, values) for key, item in template.items()}
    return template


def build_manifest(app_id: str, host: str, version: str) -> dict[str, Any]:
    """Load the manifest template and fill it in; raise CommandError if a placeholder is left over."""
    try:
        template = json.loads((APP_PACKAGE_DIR / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CommandError(f"the manifest template is missing: {exc.filename}") from exc
    manifest = fill(template, {"TEAMS_APP_ID": app_id, "CITEWISE_HOST": host, "VERSION": version})
    leftover = PLACEHOLDER_RE.findall(json.dumps(manifest))
    if leftover:
        # Only happens if the template gains a placeholder this command does not know about.
        raise CommandError(f"unfilled placeholders in {MANIFEST}: {', '.join(sorted(set(leftover)))}")
    return manifest


def write_package(output: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json and the icons at the root of the zip at output."""
    entries: list[tuple[str, bytes]] = [(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))]
    for icon in ICONS:
        try:
            entries.append((icon, (APP_PACKAGE_DIR / icon).read_bytes()))
        except FileNotFoundError as exc:
            raise CommandError(f"an app icon is missing: {exc.filename}") from exc
    try:
        with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as package:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                package.writestr(info, data)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from exc


class Command(BaseCommand):
    help = ("Build the Microsoft Teams app package (a zip to upload in Teams under Apps → Manage your apps → "
            "Upload an app) for the Citewise bot served at https://<host>/api/teams/messages.")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Let add_arguments take over --version, which Django reserves for its own version by default."""
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app-id", default="",
                            help="the Azure Bot's Microsoft App ID (a GUID); defaults to TEAMS_APP_ID")
        parser.add_argument("--host", required=True,
                            help="the host name Citewise is served on, e.g. citewise.example.com (no https://)")
        parser.add_argument("--output", default="citewise-teams.zip", help="zip to write (default: %(default)s)")
        # Replaces Django's own --version (which prints Django's version); see create_parser.
        parser.add_argument("--version", dest="app_version", default="1.0.0",
                            help="app version, MAJOR.MINOR.PATCH (default: %(default)s); raise it to update an "
                                 "app that is already uploaded")

    def handle(self, *args: Any, **options: Any) -> None:
        app_id = validate_app_id(options["app_id"] or getattr(settings, "TEAMS_APP_ID", ""))
        host = validate_host(options["host"])
        version = validate_version(options["app_version"])
        output = Path(options["output"])
        if output.is_dir():
            raise CommandError(f"--output is a directory; give a file name such as {output / 'citewise-teams.zip'}")
        if not output.parent.is_dir():
            raise CommandError(f"--output: the directory {output.parent} does not exist")

        write_package(output, build_manifest(app_id, host, version))
        self.stdout.write(self.style.SUCCESS(f"Wrote {output} (app {app_id}, version {version}, host {host})."))
        self.stdout.write(f"Messaging endpoint for the Azure Bot: https://{host}/api/teams/messages")
        self.stdout.write("Upload it in Teams: Apps → Manage your apps → Upload an app.")
