"""Every question asked, what Citewise answered, and the feedback on it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    surface = models.CharField(max_length=32, default="api")
    created_at = models.DateTimeField(auto_now_add=True)
    # The asker's own name for it in their history; blank shows the first question.
    title = models.CharField(max_length=200, blank=True)
    # Deleted by the asker: gone from their history and never continued; its answers stay on record for the audit
    # trail, the review queue and analytics.
    deleted_at = models.DateTimeField(null=True, blank=True)


class Answer(models.Model):
    """One question and what Citewise answered: the base for analytics and the review queue."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    surface = models.CharField(max_length=32, default="api")
    question = models.TextField()
    search_query = models.TextField(blank=True, help_text="the question rewritten with the conversation's context")
    text = models.TextField(blank=True)
    refused = models.BooleanField(default=False)
    status = models.CharField(max_length=16, default="answered")  # answered | refused | failed
    error = models.TextField(blank=True)
    composer = models.CharField(max_length=32, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    fallback_reason = models.TextField(blank=True)
    citations = models.JSONField(default=list)
    retrieved = models.JSONField(default=list, help_text="chunks given to the composer, with scores")
    timings = models.JSONField(default=dict)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=10, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_at"]), models.Index(fields=["refused"])]


class Feedback(models.Model):
    class ReviewStatus(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    class Kind(models.TextChoices):
        UP = "up", "Helpful"
        DOWN = "down", "Not helpful"
        FLAG = "flag", "Flagged for review"

    class Reason(models.TextChoices):
        WRONG = "wrong", "Wrong or outdated"
        MISSING_CITATION = "missing_citation", "Citation does not support it"
        HARMFUL = "harmful", "Harmful or sensitive"
        OTHER = "other", "Other"

    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True)
    comment = models.TextField(blank=True, max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    # The review queue's state (flags and thumbs-down): who is on it, and how it ended.
    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.OPEN,
                                     db_index=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_reviews", limit_choices_to={"is_staff": True})
    resolution_note = models.TextField(blank=True, max_length=4000)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.answer.question[:60]!r}"


class EvaluationCase(models.Model):
    """A reviewer's correction of an answer, kept as a question the answer-level evaluation asks
    (`manage.py evaluate_answers --include-reviewed`; answers/evaluation.py: reviewed_questions)."""

    question = models.TextField()
    asker_email = models.EmailField(help_text="who asks it in the evaluation: a person of the set with this email")
    correct_answer = models.TextField(help_text="what the answer should have said")
    must_contain = models.JSONField(default=list, help_text="facts a correct answer states")
    expected_doc_ids = models.JSONField(default=list, help_text="documents it must cite, as the evaluation names "
                                                                "them (their path without the extension)")
    document_ids = models.JSONField(default=list, help_text="the same documents' Citewise ids")
    source_feedback = models.ForeignKey(Feedback, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="evaluation_cases")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.question[:80]
