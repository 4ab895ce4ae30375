"""Chat-bot state: which platform events were handled, which thread continues which conversation, channel settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ProcessedEvent(models.Model):
    """A platform event (Slack `event_id`, Teams activity) claimed by a worker; the unique constraint makes retries answer once.

    `status` is "processing" while an answer is being prepared, "done" once it was posted and "failed" when the
    attempt gave up: a platform retry of a failed event is answered again, one of a done event never is. A
    "processing" claim is a lease (`lease_expires_at`) that its worker renews as it goes: one left to run out is
    taken to have died with its worker, and a retry takes the event over.
    """

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    platform = models.CharField(max_length=16)
    event_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    attempts = models.PositiveIntegerField(default=1)
    error = models.TextField(blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "event_id"], name="unique_event_per_platform")]

    def __str__(self) -> str:
        return f"{self.platform}:{self.event_id} ({self.status})"


class ThreadConversation(models.Model):
    """A chat thread, per asker and answer scope, mapped to the Citewise conversation that answers follow-ups."""

    platform = models.CharField(max_length=16)
    team_id = models.CharField(max_length=64)
    channel_id = models.CharField(max_length=255)
    thread_id = models.CharField(max_length=255)
    platform_user_id = models.CharField(max_length=64)
    scope = models.CharField(max_length=16)
    conversation = models.ForeignKey("answers.Conversation", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Chats without threads (a Teams personal chat) start a fresh conversation after a quiet spell.
    last_used_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["platform", "team_id", "channel_id", "thread_id", "platform_user_id", "scope"],
            name="unique_thread_conversation")]


class ChannelSettings(models.Model):
    """An admin's rules for one chat channel: whether the bot answers there, and who may see the answer."""

    class Platform(models.TextChoices):
        SLACK = "slack", "Slack"
        TEAMS = "teams", "Microsoft Teams"

    class Visibility(models.TextChoices):
        # The stored value predates Teams; on Teams a private answer goes to the asker's 1:1 chat with the bot.
        EPHEMERAL = "ephemeral", "Privately to the asker, with their permissions"
        CHANNEL_SAFE = "channel_safe", "Everyone sees it, from documents every member can read"

    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.SLACK)
    team_id = models.CharField(max_length=64, help_text="Slack workspace id, or the Teams team id")
    channel_id = models.CharField(max_length=255, help_text="Slack channel id (C…), or the Teams channel id (19:…)")
    name = models.CharField(max_length=200, blank=True, help_text="for the admin's reference only")
    enabled = models.BooleanField(default=True)
    respond_only_when_mentioned = models.BooleanField(default=True)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.EPHEMERAL)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        verbose_name = "channel settings"
        verbose_name_plural = "channel settings"
        constraints = [models.UniqueConstraint(fields=["platform", "team_id", "channel_id"],
                                               name="unique_channel_per_platform")]

    def __str__(self) -> str:
        return self.name or f"{self.get_platform_display()} {self.team_id}/{self.channel_id}"
