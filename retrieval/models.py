"""Retrieval's records: the embedding cache, one vector per (model, exact text embedded), and reviewers' ranking
rules."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EmbeddingCacheEntry(models.Model):
    model_name = models.CharField(max_length=300)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the exact text the model embedded")
    dimensions = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_name", "content_hash"], name="unique_embedding_per_model_and_text")
        ]

    def __str__(self) -> str:
        return f"{self.model_name}:{self.content_hash[:12]}"


class RankingRule(models.Model):
    """A reviewer's decision about one document's place in results: boost, demote or hide it, for every question
    (`question_hash` blank) or for one (retrieval.ranking.question_hash). Undoing a rule keeps it, with who removed it
    and when, so the history stays readable; only rules without `removed_at` apply."""

    class Effect(models.TextChoices):
        BOOST = "boost", "Boost"
        DEMOTE = "demote", "Demote"
        HIDE = "hide", "Hide"

    document_id = models.CharField(max_length=64, db_index=True)
    effect = models.CharField(max_length=8, choices=Effect.choices)
    question_hash = models.CharField(max_length=64, blank=True, db_index=True,
                                     help_text="blank: every question; else retrieval.ranking.question_hash of the "
                                               "one question it applies to")
    question = models.TextField(blank=True, help_text="the question as asked, for reviewers")
    note = models.TextField(blank=True, max_length=4000)
    source_feedback = models.ForeignKey("answers.Feedback", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="ranking_rules")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    removed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["document_id", "question_hash"], condition=models.Q(removed_at=None),
                                    name="one_active_ranking_rule_per_document_and_scope"),
        ]

    def __str__(self) -> str:
        scope = f"for {self.question!r}" if self.question_hash else "everywhere"
        return f"{self.effect} {self.document_id} {scope}"

    @property
    def is_global(self) -> bool:
        return not self.question_hash
