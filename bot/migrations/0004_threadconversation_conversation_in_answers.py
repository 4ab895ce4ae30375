"""A thread's conversation is the answers app's Conversation now (answers 0001): the same table and rows, so only
Django's state changes; the foreign key follows the table when answers 0002 renames it."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("bot", "0003_processedevent_lease_expires_at"),
        ("answers", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="threadconversation",
                    name="conversation",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                            to="answers.conversation"),
                ),
            ],
            database_operations=[],
        ),
    ]
