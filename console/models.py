"""The console's own records: the review queue (flagged answers) as the admin shows it."""

from __future__ import annotations

from answers.models import Feedback


class FlaggedAnswer(Feedback):
    """Feedback of kind "flag" that nobody has reviewed yet: the admin's review queue."""

    class Meta:
        proxy = True
        verbose_name = "flagged answer"
        verbose_name_plural = "review queue (flagged answers)"
