"""Run the Slack bot over Socket Mode (no public URL needed): the same App and listeners as POST /slack/events."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.slack.app import SlackNotConfigured, get_app

HEARTBEAT_INTERVAL_S = 20  # console/healthcheck.py calls the service unhealthy after three missed beats


class Command(BaseCommand):
    help = "Connect to Slack over Socket Mode and answer mentions and DMs (needs SLACK_APP_TOKEN=xapp-…)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--app-token", default="", help="app-level token; defaults to SLACK_APP_TOKEN")
        parser.add_argument("--heartbeat-file", type=Path, default=None,
                            help="touched while the WebSocket to Slack is connected, for a container health check")
        parser.add_argument("--heartbeat-interval", type=float, default=HEARTBEAT_INTERVAL_S)

    def handle(self, *args: Any, **options: Any) -> None:
        app_token = options["app_token"] or settings.SLACK_APP_TOKEN
        if not app_token:
            raise CommandError("set SLACK_APP_TOKEN (an app-level xapp- token with connections:write)")
        try:
            app = get_app()
        except SlackNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Connecting to Slack over Socket Mode…")
        handler = SocketModeHandler(app, app_token)
        handler.connect()
        heartbeat: Path | None = options["heartbeat_file"]
        try:
            while True:
                # The client reconnects by itself; only a live connection refreshes the heartbeat.
                if heartbeat is not None and handler.client.is_connected():
                    heartbeat.touch()
                time.sleep(options["heartbeat_interval"])
        finally:
            handler.close()
