"""Conversation, Answer and Feedback move here from the search app, keeping their rows: this migration only tells
Django's state that the models are the answers app's now (their tables are still search_*); search 0003 removes them
from the search app's state (after the bot's thread mapping and the console's review queue point here) and 0002
here renames the tables."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("search", "0002_conversation_answer_feedback_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Conversation",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True,
                                                serialize=False)),
                        ("surface", models.CharField(default="api", max_length=32)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("user", models.ForeignKey(blank=True, null=True,
                                                   on_delete=django.db.models.deletion.SET_NULL,
                                                   to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "search_conversation"},
                ),
                migrations.CreateModel(
                    name="Answer",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True,
                                                serialize=False)),
                        ("surface", models.CharField(default="api", max_length=32)),
                        ("question", models.TextField()),
                        ("search_query", models.TextField(
                            blank=True, help_text="the question rewritten with the conversation's context")),
                        ("text", models.TextField(blank=True)),
                        ("refused", models.BooleanField(default=False)),
                        ("status", models.CharField(default="answered", max_length=16)),
                        ("error", models.TextField(blank=True)),
                        ("composer", models.CharField(blank=True, max_length=32)),
                        ("prompt_version", models.CharField(blank=True, max_length=32)),
                        ("fallback_reason", models.TextField(blank=True)),
                        ("citations", models.JSONField(default=list)),
                        ("retrieved", models.JSONField(default=list,
                                                       help_text="chunks given to the composer, with scores")),
                        ("timings", models.JSONField(default=dict)),
                        ("input_tokens", models.PositiveIntegerField(default=0)),
                        ("output_tokens", models.PositiveIntegerField(default=0)),
                        ("cost_usd", models.DecimalField(decimal_places=6, default=0, max_digits=10)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("user", models.ForeignKey(blank=True, null=True,
                                                   on_delete=django.db.models.deletion.SET_NULL,
                                                   to=settings.AUTH_USER_MODEL)),
                        ("conversation", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                           related_name="answers", to="answers.conversation")),
                    ],
                    options={
                        "db_table": "search_answer",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["created_at"], name="search_answ_created_a6121c_idx"),
                                    models.Index(fields=["refused"], name="search_answ_refused_dd4c8d_idx")],
                    },
                ),
                migrations.CreateModel(
                    name="Feedback",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("kind", models.CharField(choices=[("up", "Helpful"), ("down", "Not helpful"),
                                                           ("flag", "Flagged for review")], max_length=8)),
                        ("reason", models.CharField(blank=True, choices=[
                            ("wrong", "Wrong or outdated"), ("missing_citation", "Citation does not support it"),
                            ("harmful", "Harmful or sensitive"), ("other", "Other")], max_length=32)),
                        ("comment", models.TextField(blank=True, max_length=4000)),
                        ("reviewed", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("answer", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                     related_name="feedback", to="answers.answer")),
                        ("user", models.ForeignKey(blank=True, null=True,
                                                   on_delete=django.db.models.deletion.SET_NULL,
                                                   to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "search_feedback"},
                ),
            ],
            database_operations=[],
        ),
    ]
