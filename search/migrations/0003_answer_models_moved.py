"""Conversation, Answer and Feedback are the answers app's now (answers 0001): removed from the search app's state
only, their rows stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("search", "0002_conversation_answer_feedback_and_more"),
        ("answers", "0001_initial"),
        # Nothing may point at search's models when they leave its state.
        ("bot", "0004_threadconversation_conversation_in_answers"),
        ("console", "0003_flaggedanswer_of_answers_feedback"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Feedback"),
                migrations.DeleteModel(name="Answer"),
                migrations.DeleteModel(name="Conversation"),
            ],
            database_operations=[],
        ),
    ]
