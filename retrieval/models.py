"""Retrieval's records: the embedding cache, one vector per (model, exact text embedded)."""

from __future__ import annotations

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
