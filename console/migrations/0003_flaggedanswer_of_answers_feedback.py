"""The review queue is a proxy of the answers app's Feedback now (answers 0001). A proxy has no table, and a
model's bases cannot be altered in place, so the state drops and re-creates it; its content type and permissions
(console.flaggedanswer) stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("console", "0002_auditevent_moved_to_audit"),
        ("answers", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="FlaggedAnswer"),
                migrations.CreateModel(
                    name="FlaggedAnswer",
                    fields=[],
                    options={
                        "verbose_name": "flagged answer",
                        "verbose_name_plural": "review queue (flagged answers)",
                        "proxy": True,
                        "indexes": [],
                        "constraints": [],
                    },
                    bases=("answers.feedback",),
                ),
            ],
            database_operations=[],
        ),
    ]
