"""Chat-bot state: which platform events were handled, which thread continues which conversation, channel settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ProcessedEvent(models.Model):
    """A platform event (Slack `event_id`) claimed by a worker; the unique constraint makes retries answer once.

    `status` is "processing" while an answer is being prepared, "done" once it was posted and "failed" when the
    attempt gave up: a platform retry of a failed event is answered again, one of a done event never is.
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
    channel_id = models.CharField(max_length=64)
    thread_id = models.CharField(max_length=200)
    platform_user_id = models.CharField(max_length=64)
    scope = models.CharField(max_length=16)
    conversation = models.ForeignKey("search.Conversation", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["platform", "team_id", "channel_id", "thread_id", "platform_user_id", "scope"],
            name="unique_thread_conversation")]


class SlackChannelSettings(models.Model):
    class Visibility(models.TextChoices):
        EPHEMERAL = "ephemeral", "Only the asker sees the answer, with their permissions"
        CHANNEL_SAFE = "channel_safe", "Everyone sees it, from documents every member can read"

    team_id = models.CharField(max_length=64)
    channel_id = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True, help_text="for the admin's reference only")
    enabled = models.BooleanField(default=True)
    respond_only_when_mentioned = models.BooleanField(default=True)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.EPHEMERAL)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        verbose_name = "Slack channel settings"
        verbose_name_plural = "Slack channel settings"
        constraints = [models.UniqueConstraint(fields=["team_id", "channel_id"], name="unique_slack_channel")]

    def __str__(self) -> str:
        return self.name or f"{self.team_id}/{self.channel_id}"
