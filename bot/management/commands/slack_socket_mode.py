"""Run the Slack bot over Socket Mode (no public URL needed): the same App and listeners as POST /slack/events."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.slack.app import SlackNotConfigured, get_app


class Command(BaseCommand):
    help = "Connect to Slack over Socket Mode and answer mentions and DMs (needs SLACK_APP_TOKEN=xapp-…)."

    def add_arguments(self, parser):
        parser.add_argument("--app-token", default="", help="app-level token; defaults to SLACK_APP_TOKEN")

    def handle(self, *args, **options):
        app_token = options["app_token"] or settings.SLACK_APP_TOKEN
        if not app_token:
            raise CommandError("set SLACK_APP_TOKEN (an app-level xapp- token with connections:write)")
        try:
            app = get_app()
        except SlackNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Connecting to Slack over Socket Mode…")
        SocketModeHandler(app, app_token).start()
