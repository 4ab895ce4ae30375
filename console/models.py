"""The console's own records: the review queue (flags and thumbs-down) as the admin shows it."""

from __future__ import annotations

from answers.models import Feedback


class FlaggedAnswer(Feedback):
    """Feedback of kind "flag" or "down": the admin's review queue (console/admin.py: ReviewQueueAdmin)."""

    class Meta:
        proxy = True
        verbose_name = "review item"
        verbose_name_plural = "review queue (flags and thumbs-down)"
